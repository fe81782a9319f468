"""Hybrid inference: dense compute in PyTorch, every gate's `fire` on a spiking backend.

The host computes embeddings, QKV, softmax, CfC cells, MLPs, the leak product, the
row renormalisation and the head (CPU, or CUDA).  Each gate value goes to its
unit's neurons for one window of T steps on the chosen backend (any spiking entry
of ember_neuro.backends.registry); the host decodes the fire from the spike count
(n/(N T), or the level set's decode table: docs/mapping.md).  The model calls these through its hooks:

  attention gates (every LIF variant)    fire_fn(layer, p, theta, k, loads)
  Liquid Ember's per-neuron gates         fire_fn(layer, h, theta, k)
  temporal-lif's membrane, rate mode      membrane_fn(layer, v, importance) -> fire in [0, 1]
  temporal-lif's membrane, hard mode      membrane_fn(layer, v, importance) -> spike in {0, 1}
                                          of one LIF neuron per token, carried across layers

This module only converts tensors: the gate paths themselves are numpy
(ember_neuro/hybrid/paths.py), shared with the INRC bundle.  Lava channel payloads:
host -> chip graded spikes (round(x / scale 2^bits), int32 messages declared
24-bit), one per host connection and input slot; chip -> host one binary spike
per neuron per step (bit-packed raster per window).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ember_neuro.hybrid import paths as gatepath
from ember_neuro.hybrid.paths import AttentionPath, HardMembrane, HiddenPath, MembraneRate
from ember_neuro.mappers import MappedNetwork


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float64).numpy()


def _like(a: np.ndarray, ref: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(device=ref.device, dtype=ref.dtype)


class AttentionGates(AttentionPath):
    """`fire_fn` for attention probabilities p (B, H, Tq, Tk).  theta/k come from the model's hook
    signature and are ignored: the mapped neurons hold the trained parameters."""

    def fire_fn(self, layer: int, p: torch.Tensor, theta=None, k=None, loads: dict | None = None):
        loads_np = {name: _np(load) for name, load in (loads or {}).items()}
        return _like(self.fire(layer, _np(p), loads_np), p)


class HiddenGates(HiddenPath):
    """`fire_fn` for Liquid Ember: |h| (B, T, D) of CfC layer `layer`."""

    def fire_fn(self, layer: int, h: torch.Tensor, theta=None, k=None, loads: dict | None = None):
        return _like(self.fire(layer, _np(h)), h)


class MembraneGates(MembraneRate):
    """temporal-lif's `membrane_fn`, rate mode: fire = sigmoid(k (V - threshold)) rate-coded."""

    def membrane_fn(self, layer: int, v: torch.Tensor, importance: torch.Tensor | None = None):
        return _like(self.fire(layer, _np(v)), v)


class HardMembraneGates(HardMembrane):
    """temporal-lif's `membrane_fn`, hard mode: the per-token LIF neurons' spikes."""

    def membrane_fn(self, layer: int, v: torch.Tensor, importance: torch.Tensor):
        return _like(self.fire(layer, _np(importance)), importance)


@dataclass
class Hooks(gatepath.GatePaths):
    """Everything the model needs to run its gates as spikes, and the paths to start and stop."""

    fire_fn: object = None
    membrane_fn: object = None
    hard_membrane: bool = False
    paths: list = field(default_factory=list)

    def _paths(self) -> list:
        return self.paths

    def model_kwargs(self, stats: dict | None = None) -> dict:
        """Keyword arguments for the model's forward (its hooks)."""
        kw: dict = {"fire_fn": self.fire_fn}
        if self.membrane_fn is not None:
            kw.update(membrane_fn=self.membrane_fn, hard_membrane=self.hard_membrane, stats=stats)
        return kw

    @property
    def lava_steps(self) -> int:
        return sum(p.lava_steps for p in self.paths)

    @property
    def lava_seconds(self) -> float:
        return sum(p.lava_seconds for p in self.paths)

    @property
    def persistent(self) -> bool:
        return any(p.runner is not None for p in self.paths)

    def stats(self) -> dict:
        out: dict = {}
        for path in self.paths:
            for layer, st in path.stats.items():
                out[f"{path.group.name}/{layer}" if len(self.paths) > 1 else str(layer)] = dict(st)
        return out


def make_hooks(net: MappedNetwork | None, backend: str, slots: int = 64, timeout_s: float = 60.0,
               membrane: str = "rate", membrane_slots: int | None = None) -> Hooks:
    """The model's hooks for a mapped network on `backend` ("float": the trained sigmoids)."""
    if backend == "float" or net is None:
        return Hooks()
    hooks = Hooks()
    kw = {"slots": slots, "timeout_s": timeout_s}
    if "hidden" in net.groups:
        path = HiddenGates(net.group("hidden"), backend, **kw)
        hooks.fire_fn = path.fire_fn
        hooks.paths.append(path)
    if "attention" in net.groups:
        path = AttentionGates(net.group("attention"), backend, **kw)
        hooks.fire_fn = path.fire_fn
        hooks.paths.append(path)
    if "membrane" in net.groups:
        mkw = {"slots": membrane_slots or slots, "timeout_s": timeout_s}
        if membrane == "hard":
            path = HardMembraneGates(net.group("membrane_hard"), backend, **mkw)
            hooks.hard_membrane = True
        else:
            path = MembraneGates(net.group("membrane"), backend, **mkw)
        hooks.membrane_fn = path.membrane_fn
        hooks.paths.append(path)
    return hooks
