"""The Speech Commands v2 folder layout: its 35 words, its 12-class task and its speaker-wise split.

Layout: ``root/<word>/<speaker>_nohash_<n>.wav``, ``root/validation_list.txt`` and
``root/testing_list.txt`` (relative paths; everything else trains) and
``root/_background_noise_/*.wav``.  The real set and the project's own espeak-ng set
(:mod:`ember_neuro.audio.keywords`) share it, so one loader serves both.  The layout is checked up
front: a missing folder, list or word is one line naming it, not a KeyError an epoch later.

The 12-class task is the TensorFlow tutorial's: the 10 keywords, ``_silence_`` (1-s crops of the
background noise, about 10 % of each split, at a seeded volume) and ``_unknown_`` (every other word;
unlike the TF pipeline, which keeps 10 % of them, all are kept).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import sys
import wave
from pathlib import Path

import numpy as np

from ember_neuro.audio.features import DEFAULT_SPEC, FeatureSpec, log_mel, mel_basis
from ember_neuro.audio.wav import AudioError, read_clip, read_wav
from ember_neuro.errors import BadInput

WORDS_35 = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go",
    "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
    "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero",
)
KEYWORDS_10 = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE, UNKNOWN = "_silence_", "_unknown_"
BACKGROUND = "_background_noise_"
TASKS = ("35", "12")
SPLITS = ("training", "validation", "testing")
LISTS = {"validation": "validation_list.txt", "testing": "testing_list.txt"}
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # ~134M
SILENCE_PERCENTAGE = 10.0  # the TF pipeline's default
SILENCE_SEED = 20170822  # fixed: the same _silence_ crops on every machine and run

Item = tuple[str, int]


def task_labels(task: str) -> tuple[str, ...]:
    """The class names of a task, in label-index order."""
    if task == "35":
        return WORDS_35
    if task == "12":
        return (*KEYWORDS_10, SILENCE, UNKNOWN)
    raise BadInput(f"unknown Speech Commands task {task!r}; choose one of {', '.join(TASKS)}")


def which_set(filename: str, validation_percentage: float = 10, testing_percentage: float = 10) -> str:
    """The dataset README's split rule: a stable hash of the speaker (the name before ``_nohash_``),
    so one speaker's clips all land in the same split, and the split survives new clips."""
    base_name = os.path.basename(filename)
    hash_name = re.sub(r"_nohash_.*$", "", base_name)
    hash_name_hashed = hashlib.sha1(hash_name.encode("utf-8")).hexdigest()
    percentage_hash = ((int(hash_name_hashed, 16) % (MAX_NUM_WAVS_PER_CLASS + 1))
                       * (100.0 / MAX_NUM_WAVS_PER_CLASS))
    if percentage_hash < validation_percentage:
        return "validation"
    if percentage_hash < testing_percentage + validation_percentage:
        return "testing"
    return "training"


def _silence_tag(noise: str, offset: int, volume: float) -> str:
    return f"{SILENCE}:{noise}:{offset}:{volume:.6f}"


class SpeechCommands:
    """A Speech Commands v2 layout under `root`, for task "35" (every word) or "12" (keywords,
    silence, unknown).  Items are (relative path or silence tag, label index), sorted."""

    def __init__(self, root: str | os.PathLike, task: str = "35", spec: FeatureSpec = DEFAULT_SPEC,
                 basis: np.ndarray | None = None) -> None:
        self.root = Path(root)
        self.task = str(task)
        self.spec = spec
        self._labels = task_labels(self.task)
        self._basis = basis
        self._noise: dict[str, np.ndarray] = {}
        self._features: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        root = self.root
        if not root.is_dir():
            raise AudioError(f"Speech Commands folder {root} not found")
        for name in LISTS.values():
            if not (root / name).is_file():
                raise AudioError(f"{root} has no {name}: not a Speech Commands v2 layout")
        words = {d.name: sorted(f"{d.name}/{f.name}" for f in d.glob("*.wav"))
                 for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith("_")}
        words = {w: files for w, files in words.items() if files}
        if not words:
            raise AudioError(f"{root} has no word folders with wav files")
        need = WORDS_35 if self.task == "35" else KEYWORDS_10
        missing = [w for w in need if w not in words]
        if missing:
            raise AudioError(f"{root} has no wav files for {len(missing)} word(s) of task {self.task}: "
                             f"{', '.join(missing)}")
        extra = sorted(set(words) - set(WORDS_35)) if self.task == "35" else []
        if extra:
            raise AudioError(f"{root} has word folders outside the 35 words of task 35: {', '.join(extra)}")
        self._words = words
        files = {f for fs in words.values() for f in fs}
        split_of: dict[str, str] = {}
        for split in ("testing", "validation"):  # validation wins where a file is listed twice
            listed = self._read_list(root / LISTS[split])
            bad = [f for f in listed if f not in files]
            if bad:
                raise AudioError(f"{root / LISTS[split]} names {bad[0]}, which does not exist"
                                 f"{f' ({len(bad)} such entries)' if len(bad) > 1 else ''}")
            split_of.update(dict.fromkeys(listed, split))
        self._split_of = split_of
        self._background = self._scan_background() if self.task == "12" else {}
        self._items: dict[str, list[Item]] = {}

    @staticmethod
    def _read_list(path: Path) -> list[str]:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise AudioError(f"cannot read {path}: {' '.join(str(exc).split())}") from exc
        return [line.strip() for line in lines if line.strip()]

    def _scan_background(self) -> dict[str, int]:
        """{relative path: samples} of the background noise files the _silence_ crops come from."""
        folder = self.root / BACKGROUND
        paths = sorted(folder.glob("*.wav")) if folder.is_dir() else []
        if not paths:
            raise AudioError(f"{folder} has no wav files; task 12 crops its {SILENCE} clips from them")
        found = {}
        for p in paths:
            try:
                with wave.open(str(p), "rb") as w:
                    rate, n, channels = w.getframerate(), w.getnframes(), w.getnchannels()
            except (wave.Error, EOFError, OSError) as exc:
                raise AudioError(f"{p} is not a readable wav file ({' '.join(str(exc).split())})") from exc
            if rate != self.spec.sample_rate or channels != 1:
                raise AudioError(f"{p} has {rate} Hz audio in {channels} channel(s); the model takes "
                                 f"{self.spec.sample_rate} Hz mono")
            if n < self.spec.audio_length:
                raise AudioError(f"{p} has {n} samples, fewer than one clip ({self.spec.audio_length})")
            found[f"{BACKGROUND}/{p.name}"] = n
        return found

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    @property
    def source(self) -> str:
        """What the set is (its root and task): a cache key for anything derived from it."""
        return f"speech_commands:{self.root.resolve()}:task={self.task}"

    def __repr__(self) -> str:
        clips = sum(len(f) for f in self._words.values())
        return (f"SpeechCommands({str(self.root)!r}, task={self.task!r}, words={len(self._words)}, "
                f"clips={clips})")

    def _label(self, word: str) -> int:
        if self.task == "35":
            return WORDS_35.index(word)
        return self._labels.index(word if word in KEYWORDS_10 else UNKNOWN)

    def items(self, split: str) -> list[Item]:
        """(relative path or _silence_ tag, label index) of every clip of `split`, sorted."""
        if split not in SPLITS:
            raise BadInput(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        if split not in self._items:
            items = [(f, self._label(w)) for w, fs in self._words.items() for f in fs
                     if self._split_of.get(f, "training") == split]
            if self.task == "12":
                items += self._silence_items(split, math.ceil(len(items) * SILENCE_PERCENTAGE / 100))
            self._items[split] = sorted(items)
        return list(self._items[split])

    def _silence_items(self, split: str, count: int) -> list[Item]:
        """`count` seeded 1-s crops of the background files, each at a volume in [0, 1) (as TF's)."""
        rng = np.random.default_rng([SILENCE_SEED, SPLITS.index(split)])
        noises = sorted(self._background)
        label = self._labels.index(SILENCE)
        out = []
        for _ in range(count):
            noise = noises[int(rng.integers(len(noises)))]
            offset = int(rng.integers(0, self._background[noise] - self.spec.audio_length + 1))
            out.append((_silence_tag(noise, offset, float(rng.uniform(0.0, 1.0))), label))
        return out

    def clip(self, item: Item | str) -> np.ndarray:
        """The float32 wave (spec.audio_length samples) of an item: its file, or its silence crop."""
        ref = item if isinstance(item, str) else item[0]
        if ref.startswith(SILENCE + ":"):
            noise, offset, volume = ref[len(SILENCE) + 1:].rsplit(":", 2)
            if noise not in self._noise:
                samples, _rate = read_wav(self.root / noise)
                self._noise[noise] = samples
            start = int(offset)
            crop = self._noise[noise][start:start + self.spec.audio_length]
            return (crop * np.float32(volume)).astype(np.float32)
        return read_clip(self.root / ref, self.spec)

    def features(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(log-mel float32 (n, frames, n_mels), labels int64 (n,)) of a split, computed once and kept."""
        if split not in self._features:
            items = self.items(split)
            basis = mel_basis(self.spec) if self._basis is None else self._basis
            x = np.empty((len(items), self.spec.frames, self.spec.n_mels), np.float32)
            y = np.array([label for _, label in items], np.int64)
            for i, item in enumerate(_progress(items, f"features {split}")):
                x[i] = log_mel(self.clip(item), self.spec, basis)
            self._features[split] = (x, y)
        return self._features[split]


def _progress(items: list, desc: str):
    """A tqdm bar on a terminal; plain iteration where tqdm is absent (the torch-free bundle)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, unit="clip", disable=not sys.stderr.isatty(), leave=False)
