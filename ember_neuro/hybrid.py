"""Hybrid inference: dense compute in PyTorch, every gate's `fire` on a spiking backend.

The host computes embeddings, QKV, softmax, CfC cells, MLPs, the leak product, the
row renormalisation and the head (CPU, or CUDA).  Each gate value goes to its
unit's neurons for one window of T steps on the chosen backend (any spiking entry
of ember_neuro.backends.registry); the host decodes fire = n/(N T) from the spike
count (docs/mapping.md).  The model calls these through its hooks:

  attention gates (every LIF variant)    fire_fn(layer, p, theta, k, loads)
  Liquid Ember's per-neuron gates         fire_fn(layer, h, theta, k)
  temporal-lif's membrane, rate mode      membrane_fn(layer, v, importance) -> fire in [0, 1]
  temporal-lif's membrane, hard mode      membrane_fn(layer, v, importance) -> spike in {0, 1}
                                          of one LIF neuron per token, carried across layers

Lava channel payloads: host -> chip graded spikes (round(x / scale 2^bits),
int32 messages declared 24-bit), one per host connection and input slot; chip ->
host one binary spike per neuron per step (bit-packed raster per window).

A persistent backend (Lava) is compiled and started once per run with a fixed
layout: every gate unit owns `slots` input slots; a call fills its units' slots
window by window (other units' slots idle at payload 0).  A stateless backend
(the emulators, the numpy reference) gets exactly the live inputs of each call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ember_neuro.backends import registry
from ember_neuro.errors import BadInput
from ember_neuro.mappers import MappedNetwork, NeuronGroup, gate_counts


class GateEvaluator:
    """Spike-rate fire of a neuron group's units for any values, on one backend."""

    def __init__(self, group: NeuronGroup, backend: str, slots: int = 64, timeout_s: float = 60.0):
        self.backend = registry.require(backend)
        if not self.backend.spiking:
            raise BadInput(f"backend {backend!r} does not spike; choose one of "
                           f"{', '.join(registry.names(spiking=True, hybrid=True))}")
        self.group = group
        self.fixed = bool(self.backend.fixed)
        self.slots = int(slots)
        self.timeout_s = timeout_s
        self.runner = None
        self.lava_steps = 0
        self.lava_seconds = 0.0
        self.saturated = 0  # host values beyond their payload scale (clipped in fixed point)
        self.values = 0
        self.stats: dict[int, dict[str, float]] = {}

    def start(self) -> GateEvaluator:
        if self.backend.persistent and self.runner is None:
            unit_index = np.repeat(np.arange(len(self.group.units)), self.slots)
            self.runner = self.backend.open(self.group.layout(unit_index, self.fixed), self.timeout_s)
        return self

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
            self.runner = None

    def __enter__(self) -> GateEvaluator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rates(self, unit_index: np.ndarray, values: dict[str, np.ndarray]) -> np.ndarray:
        """Decoded fire of unit ``unit_index[i]`` at ``values[source][i]`` (one window each)."""
        g, n = self.group, self.group.neurons_per_gate
        unit_index = np.asarray(unit_index, np.int64)
        self.values += unit_index.size
        self.saturated += g.saturated_count(values, unit_index)
        if self.runner is None:  # stateless backend: exactly these inputs, one vectorised call
            array = g.layout(unit_index, fixed=self.fixed)
            payload = g.encode(values, self.fixed, unit_index)[None]
            counts = self.backend.counts(array, payload, self.timeout_s)
            return g.decode(gate_counts(counts[0], n))
        s, n_units = self.slots, len(g.units)
        order = np.argsort(unit_index, kind="stable")
        rank = np.empty_like(order)  # position of each input among its unit's inputs
        starts = np.searchsorted(unit_index[order], np.arange(n_units))
        rank[order] = np.arange(order.size) - starts[unit_index[order]]
        windows = max(1, int(-(-(rank.max(initial=0) + 1) // s)))
        slot = unit_index * s + rank % s  # the input's slot in the layout
        enc = g.encode(values, self.fixed, unit_index).reshape(-1, unit_index.size)  # (S, I)
        width = n_units * s
        payload = np.zeros((windows, enc.shape[0] * width), dtype=np.int64 if self.fixed else np.float64)
        for j in range(enc.shape[0]):
            payload[rank // s, j * width + slot] = enc[j]
        t0 = time.perf_counter()
        rasters = self.runner.run_windows(payload)  # (W, T, width * N)
        self.lava_seconds += time.perf_counter() - t0
        self.lava_steps += windows * g.timesteps
        counts = gate_counts(rasters.sum(axis=1), n)  # (W, width)
        return g.decode(counts[rank // s, slot])

    def record(self, layer: int, rates: np.ndarray) -> None:
        st = self.stats.setdefault(layer, {"gates": 0, "firing": 0, "spikes": 0.0})
        st["gates"] += int(rates.size)
        st["firing"] += int((rates > 0).sum())
        st["spikes"] += float(rates.sum()) * self.group.timesteps * self.group.neurons_per_gate


class AttentionGates(GateEvaluator):
    """`fire_fn` for attention probabilities p (B, H, Tq, Tk), per head; refractory loads included."""

    def __init__(self, group: NeuronGroup, backend: str, **kw):
        super().__init__(group, backend, **kw)
        self.unit_of = {(u.layer, u.head): i for i, u in enumerate(group.units)}

    def fire_fn(self, layer: int, p: torch.Tensor, theta: torch.Tensor | None = None,
                k: torch.Tensor | None = None, loads: dict | None = None) -> torch.Tensor:
        """theta/k come from the model's hook signature and are ignored: the mapped neurons hold
        this layer's trained parameters; the loads (lif-refractory) become host payloads."""
        pd = p.detach().to("cpu", torch.float64)
        live = pd > 0  # masked (future) keys have p = 0 and contribute nothing either way
        heads = torch.arange(pd.shape[1]).view(1, -1, 1, 1).expand_as(pd)
        units = torch.tensor([self.unit_of[(layer, h)] for h in range(pd.shape[1])])[heads[live]]
        values = {"input": pd[live].numpy()}
        for name, load in (loads or {}).items():
            values[name] = load.detach().to("cpu", torch.float64).expand_as(pd)[live].numpy()
        rates = self.rates(units.numpy(), values)
        self.record(layer, rates)
        fire = torch.zeros_like(pd)
        fire[live] = torch.from_numpy(rates)
        return fire.to(device=p.device, dtype=p.dtype)


class HiddenGates(GateEvaluator):
    """`fire_fn` for Liquid Ember: |h| (B, T, D) of CfC layer `layer`, one unit per neuron."""

    def __init__(self, group: NeuronGroup, backend: str, **kw):
        super().__init__(group, backend, **kw)
        self.first = {}
        for i, u in enumerate(group.units):
            self.first.setdefault(u.layer, i)

    def fire_fn(self, layer: int, h: torch.Tensor, theta: torch.Tensor | None = None,
                k: torch.Tensor | None = None, loads: dict | None = None) -> torch.Tensor:
        hd = h.detach().to("cpu", torch.float64)
        units = self.first[layer] + np.broadcast_to(np.arange(hd.shape[-1]), hd.shape).ravel()
        rates = self.rates(units, {"input": hd.abs().numpy().ravel()})
        self.record(layer, rates)
        return torch.from_numpy(rates.reshape(hd.shape)).to(device=h.device, dtype=h.dtype)


class MembraneRate(GateEvaluator):
    """temporal-lif's `membrane_fn`, rate mode: fire = sigmoid(k (V - threshold)) rate-coded per token."""

    def membrane_fn(self, layer: int, v: torch.Tensor, importance: torch.Tensor | None = None
                    ) -> torch.Tensor:
        vd = v.detach().to("cpu", torch.float64)
        rates = self.rates(np.full(vd.numel(), layer), {"input": vd.numpy().ravel()})
        self.record(layer, rates)
        return torch.from_numpy(rates.reshape(vd.shape)).to(device=v.device, dtype=v.dtype)


@dataclass
class Hooks:
    """Everything the model needs to run its gates as spikes, and the paths to start and stop."""

    fire_fn: object = None
    membrane_fn: object = None
    hard_membrane: bool = False
    paths: list = field(default_factory=list)

    def __enter__(self) -> Hooks:
        try:
            for path in self.paths:
                path.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for path in self.paths:
            path.close()

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
            from ember_neuro.membrane import HardMembrane

            path = HardMembrane(net.group("membrane_hard"), backend, **mkw)
            hooks.hard_membrane = True
        else:
            path = MembraneRate(net.group("membrane"), backend, **mkw)
        hooks.membrane_fn = path.membrane_fn
        hooks.paths.append(path)
    return hooks
