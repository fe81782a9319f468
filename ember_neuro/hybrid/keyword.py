"""Keyword spotting with the spiking gates in the loop: whole clips, or streamed as they arrive.

Audio Liquid Ember (models/audio.py) classifies 1-s clips from their log-mel frames; its CfC runs
on the host and every gate's fire on the spiking backend (the same hook as text models).

* :func:`classify`: each clip whole -- one gate call per layer for the whole batch of clips.
* :func:`stream`: as an always-on spotter runs -- the audio arrives ``chunk`` samples at a time
  (default one hop, 10 ms), the front end (audio/features.FrameStream) completes a frame when it
  has the samples, and each new frame goes through the layers with every CfC state and the pooled
  sum carried; the decision after the last frame is the clip's.  The gate sees the same values
  as in the whole clip (its fire is per value), so the decision is the whole clip's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ember_neuro.audio.features import FeatureSpec, FrameStream, log_mel, mel_basis
from ember_neuro.audio.wav import read_clip


@dataclass(frozen=True)
class Classification:
    """run's --wav / --stream: the clips to classify and how they arrive."""

    wavs: tuple[str, ...] = ()
    stream: bool = False
    chunk: int = 160  # samples per push when streaming (one hop: a new frame each push)
    batch_size: int = 8  # clips per gate window (the Lava network holds this many clips' frames)

    def batches(self, waves: np.ndarray) -> list[np.ndarray]:
        return [waves[i:i + self.batch_size] for i in range(0, len(waves), self.batch_size)]


def spec_of(config: Any) -> FeatureSpec:
    return FeatureSpec.from_config(config)


def read_clips(paths: Sequence[str], config: Any) -> np.ndarray:
    """(n, audio_length) float32; each file checked (one-line AudioError naming it)."""
    spec = spec_of(config)
    return np.stack([read_clip(p, spec) for p in paths])


def features(waves: np.ndarray, config: Any) -> torch.Tensor:
    """Whole-clip log-mel frames (n, frames, n_mels)."""
    spec = spec_of(config)
    basis = mel_basis(spec)
    return torch.from_numpy(np.stack([log_mel(w, spec, basis) for w in waves]))


@torch.no_grad()
def classify(model: torch.nn.Module, waves: np.ndarray, hook: Any = None) -> torch.Tensor:
    """Class logits (n, C) of whole clips, all in one batch."""
    device = next(model.parameters()).device
    return model(features(waves, model.config).to(device), hook=hook)[0].float().cpu()


@torch.no_grad()
def stream(model: torch.nn.Module, waves: np.ndarray, hook: Any = None, chunk: int = 160) -> torch.Tensor:
    """Class logits (n, C) after streaming every clip ``chunk`` samples at a time, all clips in
    lock-step (one gate call per layer per completed frame)."""
    if chunk < 1:
        raise ValueError(f"the streaming chunk must be >= 1 sample, got {chunk}")
    spec = spec_of(model.config)
    basis = mel_basis(spec)
    device = next(model.parameters()).device
    fronts = [FrameStream(spec, basis) for _ in waves]
    caches = model.new_caches()
    logits = None
    for start in range(0, waves.shape[1], chunk):
        new = [f.push(w[start:start + chunk]) for f, w in zip(fronts, waves, strict=True)]
        if len(new[0]):  # every clip has the same length: frames complete together
            logits = model.step(torch.from_numpy(np.stack(new)).to(device), caches, hook=hook)
    if logits is None:
        raise ValueError(f"a clip of {waves.shape[1]} samples completes no frame")
    return logits.float().cpu()

