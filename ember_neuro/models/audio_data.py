"""Keyword clips as the batches training, calibration and evaluation take (torch side).

The clips come from a Speech Commands v2 folder (ember_neuro/audio/speech_commands.py): the
project's own espeak-ng keyword set by default (docs/keywords.md), or ``--data`` naming a real
Speech Commands v2 folder.  This wraps a split's log-mel features in the interface the text data
has (models/data.py: ``source``, ``get_batch``, ``val_batches``, ``evaluation``), with a clip's
class as its target, so map, run, validate and the window search take audio unchanged:

    validation split   calibration, the window search, training's best-checkpoint choice
    testing split      ``run --eval`` and the accuracy the README reports (never searched on)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ember_neuro.audio.features import FeatureSpec
from ember_neuro.audio.speech_commands import SpeechCommands

SPLITS = {"train": "training", "val": "validation", "test": "testing"}


@dataclass
class AudioData:
    """One Speech Commands task's clips as log-mel features, split by speaker."""

    commands: SpeechCommands
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def source(self) -> str:
        return self.commands.source

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.commands.labels)

    @property
    def vocab_size(self) -> int:  # what train's summary line prints for a text corpus
        return len(self.labels)

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (n, frames, n_mels) float32, labels (n,) int64) of train / val / test."""
        if name not in self._cache:
            x, y = self.commands.features(SPLITS[name])
            self._cache[name] = (torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y).long())
        return self._cache[name]

    def size(self, name: str) -> int:
        return len(self.commands.items(SPLITS[name]))

    def get_batch(self, split: str, batch_size: int, block_size: int = 0,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Random clips of a split (block_size: unused, every clip has its frames)."""
        x, y = self.split(split)
        ix = torch.randint(len(y), (batch_size,), generator=generator)
        return x[ix], y[ix]

    def sequential(self, split: str, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every clip of a split, in order, in batches."""
        x, y = self.split(split)
        return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(y), batch_size)]

    def val_batches(self, n_batches: int, batch_size: int, block_size: int = 0, seed: int = 0):
        """Seeded clips of the validation split, each at most once (calibration, the window
        search): n_batches x batch_size of them, or the whole split where it has fewer."""
        return self._shuffled("val", n_batches * batch_size, batch_size, seed)

    def evaluation(self, batches: int, batch_size: int, block_size: int = 0, seed: int = 0):
        """What ``run --eval`` scores: the testing split (all of it with batches = 0, else the first
        batches x batch_size clips of a seeded shuffle)."""
        if batches == 0:
            return self.sequential("test", batch_size)
        return self._shuffled("test", batches * batch_size, batch_size, seed)

    def _shuffled(self, split: str, clips: int, batch_size: int, seed: int):
        x, y = self.split(split)
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:clips]
        return [(x[order[i:i + batch_size]], y[order[i:i + batch_size]])
                for i in range(0, len(order), batch_size)]


def load_audio_data(path: str | os.PathLike | None = None, task: str = "35",
                    spec: FeatureSpec | None = None) -> AudioData:
    """A Speech Commands v2 folder (None: the project's keyword set, made on first use)."""
    from ember_neuro.audio import keywords

    root = Path(path) if path is not None else keywords.ensure_default()
    return AudioData(SpeechCommands(root, task=task, spec=spec or FeatureSpec()))
