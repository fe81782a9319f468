"""Make the project's own keyword set: the 35 Speech Commands v2 words spoken by espeak-ng.

Each "speaker" is a seeded draw of an espeak-ng English voice, a voice variant, pitch, speed and
amplitude; it says every word once.  A clip is espeak-ng's 22050 Hz output resampled to 16 kHz,
trimmed of leading and trailing near-silence, placed at a seeded offset in one second, mixed with a
seeded crop of one of the set's synthetic background noises at a seeded SNR and peak-normalised to
a seeded level.  The folders are Speech Commands v2's (speaker ids are 8 hex digits, the split is
the dataset README's hash of the speaker), so SpeechCommands (ember_neuro/audio/speech_commands.py)
loads it like the real set.  The same seed gives byte-identical files; see docs/keywords.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ember_neuro.audio.speech_commands import BACKGROUND, LISTS, SPLITS, WORDS_35, which_set
from ember_neuro.audio.wav import AudioError, read_wav, write_clip
from ember_neuro.errors import BadInput, RuntimeFault

KEYWORDS_VERSION = 1
DEFAULT_SPEAKERS = 96
DEFAULT_SEED = 0
DEFAULT_WORKERS = 2
SAMPLE_RATE = 16000
CLIP = SAMPLE_RATE  # samples: one second
ESPEAK = "espeak-ng"
ESPEAK_RATE = 22050  # espeak-ng writes 22050 Hz mono 16-bit; resample_poly(x, 320, 441) -> 16 kHz
ESPEAK_MISSING = ("espeak-ng not found: install Debian's espeak-ng "
                  "(apt-get install espeak-ng; `make setup` does)")
# English voices that need no mbrola; variants (espeak-ng --voices=variant) that sound like a person
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029",
          "en-us-nyc")
VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "croak",
            "klatt", "klatt2", "klatt3", "whisper", "Andy", "Annie", "aunty", "belinda", "benjamin",
            "edward", "grandma", "grandpa", "linda", "max", "paul", "quincy", "rob", "steph", "travis",
            "victor", "zac", "Alicia", "Andrea", "Michael")
PITCH = (25, 75)  # espeak-ng -p
SPEED = (120, 210)  # -s, words per minute
AMPLITUDE = (60, 160)  # -a (the speaker's gain; 100 is espeak-ng's default)
SNR_DB = (10.0, 30.0)
PEAK = (0.3, 0.9)
TRIM_FRACTION = 0.02  # near-silence: |x| below 2 % of the word's peak (-34 dB)
TRIM_MARGIN = 160  # samples (10 ms) kept either side of the word
NOISES = ("white", "pink", "brown", "hum", "tap", "babble")
NOISE_SECONDS = 30


def cache_dir() -> Path:
    """ember_neuro.models.data.cache_dir's one-liner, repeated here: that module imports torch."""
    return Path(os.environ.get("EMBER_NEURO_CACHE", Path.home() / ".cache" / "ember-neuro"))


def default_root() -> Path:
    """Where the default keyword set lives (made on first use by :func:`ensure_default`)."""
    return cache_dir() / f"keywords-v{KEYWORDS_VERSION}"


def _espeak_binary() -> str:
    found = shutil.which(ESPEAK)
    if found is None:
        raise AudioError(ESPEAK_MISSING)
    return found


def espeak_version() -> str:
    """espeak-ng's own version line, e.g. 'eSpeak NG text-to-speech: 1.51' (no data path)."""
    proc = subprocess.run([_espeak_binary(), "--version"], capture_output=True, text=True)
    return re.sub(r"\s+Data at:.*", "", proc.stdout.strip())


def _espeak(text: str, voice: str, pitch: int, speed: int, amplitude: int, tmp: Path) -> np.ndarray:
    """espeak-ng's samples (float32, 22050 Hz) of `text`, or RuntimeFault with its stderr's tail."""
    wav = tmp / "say.wav"
    cmd = [_espeak_binary(), "-v", voice, "-p", str(pitch), "-s", str(speed), "-a", str(amplitude),
           "-w", str(wav), text]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not wav.is_file():
        tail = " ".join(proc.stderr.split())[-200:] or f"exit status {proc.returncode}"
        raise RuntimeFault(f"espeak-ng failed saying {text!r} with voice {voice}: {tail}")
    samples, rate = read_wav(wav)
    if rate != ESPEAK_RATE or not np.abs(samples).max(initial=0) > 0:
        raise RuntimeFault(f"espeak-ng wrote {len(samples)} samples at {rate} Hz saying {text!r} "
                           f"with voice {voice}; expected speech at {ESPEAK_RATE} Hz")
    return samples


def _to_16k(samples: np.ndarray) -> np.ndarray:
    from scipy.signal import resample_poly

    return resample_poly(samples.astype(np.float64), 320, 441)


def _trim(x: np.ndarray) -> np.ndarray:
    """The word without its leading and trailing near-silence (TRIM_MARGIN kept either side)."""
    loud = np.flatnonzero(np.abs(x) > TRIM_FRACTION * np.abs(x).max())
    return x[max(loud[0] - TRIM_MARGIN, 0): loud[-1] + TRIM_MARGIN + 1]


@dataclass(frozen=True)
class Speaker:
    id: str
    voice: str
    variant: str
    pitch: int
    speed: int
    amplitude: int

    @property
    def espeak_voice(self) -> str:
        return f"{self.voice}+{self.variant}" if self.variant else self.voice


def speakers(seed: int, count: int) -> list[Speaker]:
    """The set's speakers: seeded draws, ids 8 hex digits of sha1(seed, index) (unique)."""
    out, seen = [], set()
    for i in range(count):
        rng = np.random.default_rng([seed, 0, i])
        j = 0
        while (sid := hashlib.sha1(f"ember-keywords:{seed}:{i}:{j}".encode()).hexdigest()[:8]) in seen:
            j += 1
        seen.add(sid)
        voice, variant = VOICES[int(rng.integers(len(VOICES)))], VARIANTS[int(rng.integers(len(VARIANTS)))]
        pitch, speed = int(rng.integers(PITCH[0], PITCH[1] + 1)), int(rng.integers(SPEED[0], SPEED[1] + 1))
        amplitude = int(rng.integers(AMPLITUDE[0], AMPLITUDE[1] + 1))
        out.append(Speaker(sid, voice, variant, pitch, speed, amplitude))
    return out


# -- background noise -------------------------------------------------------------------------------

def _shaped(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Gaussian noise with power ~ 1/f**exponent (0 white, 1 pink, 2 brown) above 20 Hz."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / SAMPLE_RATE), 20.0)
    return np.fft.irfft(spectrum / f ** (exponent / 2), n)


def _bandpass(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    return sosfiltfilt(butter(4, [lo, hi], btype="band", fs=SAMPLE_RATE, output="sos"), x)


def _babble(rng: np.random.Generator, n: int, tmp: Path) -> np.ndarray:
    """Five overlapping 'talkers' of random espeak-ng syllables: speech-like, no words of the set."""
    consonants, vowels = "bdfgklmnprstvz", ("a", "e", "i", "o", "u", "ai", "ou", "ee")
    phrases = []
    for _ in range(16):
        words = ["".join(consonants[int(rng.integers(len(consonants)))]
                         + vowels[int(rng.integers(len(vowels)))] for _ in range(int(rng.integers(2, 4))))
                 for _ in range(8)]
        voice = VOICES[int(rng.integers(len(VOICES)))]
        voice += "+" + VARIANTS[1 + int(rng.integers(len(VARIANTS) - 1))]
        said = _espeak(" ".join(words), voice, int(rng.integers(*PITCH)), int(rng.integers(*SPEED)), 100, tmp)
        phrases.append(_to_16k(said))
    mix = np.zeros(n)
    for _ in range(5):
        stream, filled = np.zeros(n), int(rng.integers(0, SAMPLE_RATE))
        while filled < n:
            p = phrases[int(rng.integers(len(phrases)))]
            take = min(len(p), n - filled)
            stream[filled:filled + take] = p[:take]
            filled += take + int(rng.integers(0, SAMPLE_RATE // 3))
        mix += rng.uniform(0.5, 1.0) * stream
    return mix


def make_noise(name: str, seed: int, tmp: Path) -> np.ndarray:
    """One seeded background noise of NOISE_SECONDS, peak 0.5 (float64, 16 kHz)."""
    n = NOISE_SECONDS * SAMPLE_RATE
    rng = np.random.default_rng([seed, 2, NOISES.index(name)])
    if name in ("white", "pink", "brown"):
        x = _shaped(rng, n, {"white": 0.0, "pink": 1.0, "brown": 2.0}[name])
    elif name == "hum":  # mains hum: 50 Hz and its harmonics, slowly wavering, over a little pink noise
        t = np.arange(n) / SAMPLE_RATE
        x = sum(np.sin(2 * np.pi * 50 * h * t + rng.uniform(0, 2 * np.pi)) / h for h in range(1, 13))
        x = x * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)) + 0.05 * _shaped(rng, n, 1.0)
        x = _bandpass(x, 40, 4000)
    elif name == "tap":  # running water: band-passed noise under a slow random envelope
        envelope = 0.7 + 0.3 * np.tanh(_bandpass(rng.standard_normal(n), 0.5, 4) * 20)
        x = _bandpass(rng.standard_normal(n), 300, 6000) * envelope
    elif name == "babble":
        x = _babble(rng, n, tmp)
    else:
        raise ValueError(f"unknown noise {name!r}")
    return 0.5 * x / np.abs(x).max()


# -- the clips --------------------------------------------------------------------------------------

_NOISE: list[np.ndarray] = []


def _init_worker(noises: list[np.ndarray]) -> None:
    _NOISE[:] = noises


def _speaker_clips(out: Path, seed: int, index: int, speaker: Speaker) -> int:
    """Write every word of one speaker (a worker's job; each clip depends only on its own draws)."""
    with tempfile.TemporaryDirectory(prefix="ember-espeak-") as tmp:
        for w, word in enumerate(WORDS_35):
            rng = np.random.default_rng([seed, 1, index, w])
            u_offset, k_noise, u_start = rng.uniform(), int(rng.integers(len(_NOISE))), rng.uniform()
            snr_db, peak = rng.uniform(*SNR_DB), rng.uniform(*PEAK)
            said = _trim(_to_16k(_espeak(word, speaker.espeak_voice, speaker.pitch, speaker.speed,
                                         speaker.amplitude, Path(tmp))))[:CLIP]
            speech = np.zeros(CLIP)
            offset = int(u_offset * (CLIP - len(said) + 1))
            speech[offset:offset + len(said)] = said
            noise = _NOISE[k_noise]
            start = int(u_start * (len(noise) - CLIP + 1))
            crop = noise[start:start + CLIP].astype(np.float64)
            gain = np.sqrt(np.mean(said ** 2) / (np.mean(crop ** 2) * 10 ** (snr_db / 10)))
            mix = speech + gain * crop
            write_clip(out / word / f"{speaker.id}_nohash_0.wav", peak * mix / np.abs(mix).max(), SAMPLE_RATE)
    return len(WORDS_35)


def _manifest(out: Path) -> dict | None:
    try:
        m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) else None


def is_up_to_date(out: str | os.PathLike, seed: int = DEFAULT_SEED, speakers: int = DEFAULT_SPEAKERS) -> bool:
    """Whether `out` holds a complete set of this version, seed and speaker count (its manifest is
    written last, and the folder appears in one rename, so a manifest means a complete set)."""
    m = _manifest(Path(out))
    return bool(m) and (m.get("version"), m.get("seed"), m.get("speakers")) == (
        KEYWORDS_VERSION, seed, speakers)


def _clear_stale(out: Path) -> None:
    """Remove temporary folders left by a killed run (their process is gone)."""
    for p in out.parent.glob(f"{out.name}.tmp-*"):
        try:
            os.kill(int(p.name.rsplit("-", 1)[1]), 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(p, ignore_errors=True)
        except PermissionError:
            pass


def _progress(total: int, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    # disable=None: a bar on a terminal only, not \r-lines in a log
    return tqdm(total=total, unit="speaker", desc="keywords", disable=None if enabled else True, leave=False)


def _build(tmp: Path, seed: int, count: int, progress: bool, workers: int) -> dict:
    people = speakers(seed, count)
    version = espeak_version()
    (tmp / BACKGROUND).mkdir(parents=True)
    for word in WORDS_35:
        (tmp / word).mkdir()
    noises = []
    with tempfile.TemporaryDirectory(prefix="ember-espeak-") as work:
        for name in NOISES:
            write_clip(tmp / BACKGROUND / f"{name}.wav", make_noise(name, seed, Path(work)), SAMPLE_RATE)
            noises.append(read_wav(tmp / BACKGROUND / f"{name}.wav")[0])  # mixed as stored
    bar = _progress(count, progress)
    if workers <= 1 or count <= 1:
        _init_worker(noises)
        for i, person in enumerate(people):
            _speaker_clips(tmp, seed, i, person)
            if bar is not None:
                bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(noises,)) as pool:
            jobs = [pool.submit(_speaker_clips, tmp, seed, i, person) for i, person in enumerate(people)]
            for job in as_completed(jobs):
                job.result()
                if bar is not None:
                    bar.update()
    if bar is not None:
        bar.close()
    split_of = {p.id: which_set(f"{p.id}_nohash_0.wav") for p in people}
    for split, name in LISTS.items():
        rows = [f"{word}/{p.id}_nohash_0.wav" for word in WORDS_35 for p in people if split_of[p.id] == split]
        (tmp / name).write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    manifest = {
        "generator": "ember_neuro.audio.keywords", "version": KEYWORDS_VERSION, "espeak_ng": version,
        "seed": seed, "speakers": count, "words": list(WORDS_35), "sample_rate": SAMPLE_RATE,
        "clip_samples": CLIP, "clips": count * len(WORDS_35),
        "splits": {s: {"speakers": sum(v == s for v in split_of.values()),
                       "clips": len(WORDS_35) * sum(v == s for v in split_of.values())} for s in SPLITS},
        "parameters": {"voices": list(VOICES), "variants": list(VARIANTS), "pitch": list(PITCH),
                       "speed_wpm": list(SPEED), "amplitude": list(AMPLITUDE), "snr_db": list(SNR_DB),
                       "peak": list(PEAK), "trim_fraction": TRIM_FRACTION, "trim_margin": TRIM_MARGIN,
                       "resample": "scipy.signal.resample_poly(x, 320, 441)", "noises": list(NOISES),
                       "noise_seconds": NOISE_SECONDS},
        "speaker_table": [{**asdict(p), "split": split_of[p.id]} for p in people],
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def make_keywords(out: str | os.PathLike, speakers: int = DEFAULT_SPEAKERS, seed: int = DEFAULT_SEED,
                  progress: bool = True, workers: int = DEFAULT_WORKERS) -> dict:
    """Write the set to `out` (built in `out.tmp-<pid>`, then renamed: never half-written); an
    up-to-date `out` is left as is.  Returns the manifest."""
    out = Path(out)
    if speakers < 1:
        raise BadInput(f"--speakers must be >= 1, got {speakers}")
    if is_up_to_date(out, seed, speakers):
        return _manifest(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and _manifest(out) is None)):
        raise BadInput(f"{out} exists and is not a keyword set made by ember_neuro.audio.keywords; "
                       "remove it or choose another --out")
    _espeak_binary()
    out.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(out)
    tmp = out.parent / f"{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        manifest = _build(tmp, seed, speakers, progress, workers)
        if out.exists():
            if is_up_to_date(out, seed, speakers):  # another process finished first
                return _manifest(out)
            old = out.parent / f"{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.replace(tmp, out)
            except OSError:
                if not is_up_to_date(out, seed, speakers):
                    raise
        return manifest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_default(progress: bool = True) -> Path:
    """The default keyword set's folder, made on first use (about a minute on 2 cores)."""
    root = default_root()
    if not is_up_to_date(root):
        print(f"keywords: making the default keyword set ({DEFAULT_SPEAKERS} espeak-ng speakers x "
              f"{len(WORDS_35)} words) in {root} ...", file=sys.stderr)
        make_keywords(root, progress=progress)
    return root


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


EPILOG = f"""
example:
  python -m ember_neuro.audio.keywords --out ~/.cache/ember-neuro/keywords-v{KEYWORDS_VERSION}
  (the default set: {DEFAULT_SPEAKERS} speakers, seed {DEFAULT_SEED}; ensure_default() makes it on first use)
"""


def build_parser():
    from ember_neuro import cli

    ap = cli.parser("ember_neuro.audio.keywords", __doc__, EPILOG)
    ap.add_argument("--out", required=True, metavar="DIR",
                    help="the folder to write (Speech Commands v2 layout)")
    ap.add_argument("--speakers", type=int, default=DEFAULT_SPEAKERS, metavar="N",
                    help=f"synthetic speakers, each saying all 35 words (default {DEFAULT_SPEAKERS})")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, metavar="S",
                    help=f"the set's seed (default {DEFAULT_SEED})")
    ap.add_argument("--workers", type=int, default=DEFAULT_WORKERS, metavar="N",
                    help=f"processes running espeak-ng (default {DEFAULT_WORKERS})")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def main(argv: list[str] | None = None) -> int:
    from ember_neuro import cli

    args = build_parser().parse_args(argv)

    def make(a) -> dict:
        out = Path(a.out).expanduser()
        if is_up_to_date(out, a.seed, a.speakers):
            return {"out": str(out), "up_to_date": True}
        t0 = time.perf_counter()
        manifest = make_keywords(out, a.speakers, a.seed, progress=not a.quiet, workers=a.workers)
        return {"out": str(out), "up_to_date": False, "seconds": time.perf_counter() - t0,
                "bytes": _size(out), "clips": manifest["clips"], "splits": manifest["splits"]}

    def report(r: dict) -> None:
        if r["up_to_date"]:
            print(f"keywords: {r['out']} is up to date")
            return
        splits = ", ".join(f"{s} {v['clips']}" for s, v in r["splits"].items())
        print(f"keywords: wrote {r['out']}: {r['clips']} clips ({splits}), "
              f"{r['bytes'] / 1e6:.0f} MB in {r['seconds']:.0f} s")

    return cli.run_and_report(make, args, "interrupted: nothing was written", report)


if __name__ == "__main__":
    sys.exit(main())
