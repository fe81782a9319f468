"""temporal-lif's membrane as one LIF neuron per token (hard mode), on any spiking backend.

The neuron's voltage *is* the membrane V: each layer is one step, the host sends
the layer's importance ||attn_out|| as the input, the neuron leaks by lambda,
spikes when V exceeds the threshold and resets to 0 (mappers/temporal.py).  A
spike means the layer's MLP runs; no spike means the host skips it.  The state
carries across the n_layer steps of a forward pass and resets at its start: on
Lava by LIFReset every n_layer windows (one window = one step), on the emulator
and the numpy reference by the same step functions (mappers/loihi.py) on state
kept here.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ember_neuro.backends import numpy_ref, registry
from ember_neuro.errors import BadInput
from ember_neuro.mappers import NeuronGroup


class HardMembrane:
    """`membrane_fn` returning 0/1 spikes of the per-token LIF neurons, layer by layer."""

    def __init__(self, group: NeuronGroup, backend: str, slots: int = 64, timeout_s: float = 60.0):
        self.backend = registry.require(backend)
        if not self.backend.spiking:
            raise BadInput(f"backend {backend!r} does not spike")
        self.group = group
        self.fixed = bool(self.backend.fixed)
        self.slots = int(slots)
        self.timeout_s = timeout_s
        self.array = group.layout(np.zeros(self.slots, np.int64), self.fixed)
        self.runner = None
        self.state = None
        self.windows = 0
        self.lava_steps = 0
        self.lava_seconds = 0.0
        self.saturated = 0
        self.values = 0
        self.stats: dict[int, dict[str, float]] = {}

    def start(self) -> HardMembrane:
        if self.backend.persistent and self.runner is None:
            self.runner = self.backend.open(self.array, self.timeout_s)
        return self

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
            self.runner = None

    def membrane_fn(self, layer: int, v: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
        """Spikes (0/1, the shape of `importance`) of the tokens' neurons at this layer's step."""
        imp = importance.detach().to("cpu", torch.float64).numpy().ravel()
        if imp.size > self.slots:
            raise BadInput(f"{imp.size} tokens in one forward pass exceed the {self.slots} membrane neurons")
        if self.windows % self.group.reset_windows != layer:
            raise RuntimeError(f"membrane step out of order: layer {layer} at window {self.windows}")
        values = np.zeros(self.slots)
        values[:imp.size] = imp
        self.values += imp.size
        self.saturated += self.group.saturated_count(imp, np.zeros(imp.size, np.int64))
        payload = self.group.encode(values, self.fixed, np.zeros(self.slots, np.int64))
        if self.runner is not None:
            t0 = time.perf_counter()
            spikes = self.runner.run_window(payload)[0]
            self.lava_seconds += time.perf_counter() - t0
            self.lava_steps += 1
        else:
            if layer == 0:
                self.state = None  # a forward pass starts from rest
            self.state, raster = numpy_ref.step_window(self.array, self.state, payload)
            spikes = raster[0]
        self.windows += 1
        fire = spikes[:imp.size].astype(np.float64)
        st = self.stats.setdefault(layer, {"gates": 0, "firing": 0, "spikes": 0.0})
        st["gates"] += int(imp.size)
        st["firing"] += int(fire.sum())
        st["spikes"] += float(fire.sum())
        return torch.from_numpy(fire.reshape(importance.shape)).to(device=importance.device,
                                                                   dtype=importance.dtype)
