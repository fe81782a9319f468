"""Gate values in, decoded fire out, on any spiking backend -- numpy only (no torch).

The part of hybrid inference that talks to the neurons, shared by the PyTorch hooks
(ember_neuro/hybrid/torch_hook.py) and the INRC bundle's generate.py (onnxruntime + Lava):

  AttentionPath   fire of attention probabilities p (B, H, Tq, Tk), per head, with
                  lif-refractory's loads as further host payloads
  HiddenPath      fire of |h| (B, T, D) of a CfC layer, one unit per neuron
  MembraneRate    fire of temporal-lif's membrane V (B, T), rate-coded, one unit per layer
  HardMembrane    0/1 spikes of one LIF neuron per token carried across the layers

A persistent backend (Lava) is compiled and started once with a fixed layout: every
gate unit owns `slots` input slots; a call fills its units' slots window by window
(other slots idle at payload 0).  A stateless backend (the emulators, the numpy
reference) gets exactly the live inputs of each call.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ember_neuro.backends import numpy_ref, registry
from ember_neuro.errors import BadInput
from ember_neuro.mappers import NeuronGroup, gate_counts


class GatePaths:
    """Several gate paths started and stopped together (a context manager): if one fails to
    start, every one is closed; leaving closes them all.  Subclasses list them in `_paths`."""

    def _paths(self) -> list:
        raise NotImplementedError

    def __enter__(self):  # noqa: ANN204 - returns the subclass
        try:
            for path in self._paths():
                path.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for path in self._paths():
            path.close()


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
        # called with (payloads (W, width), rasters (W, T, M)) after every exchange with a
        # persistent runner: how the INRC bundle records its golden traces (ember_neuro.hybrid.golden)
        self.tap: Callable[[np.ndarray, np.ndarray], None] | None = None

    def start(self) -> GateEvaluator:
        if self.backend.persistent and self.runner is None:
            self.runner = self.backend.open(self.layout(), self.timeout_s)
        return self

    def layout(self):
        return self.group.layout(np.repeat(np.arange(len(self.group.units)), self.slots), self.fixed)

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
            self.runner = None

    def __enter__(self) -> GateEvaluator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _exchange(self, payloads: np.ndarray) -> np.ndarray:
        """Windows through the persistent runner, timed: (W, width) -> (W, T, M) rasters."""
        t0 = time.perf_counter()
        rasters = self.runner.run_windows(payloads)
        self.lava_seconds += time.perf_counter() - t0
        self.lava_steps += payloads.shape[0] * self.group.timesteps
        if self.tap is not None:
            self.tap(payloads, rasters)
        return rasters

    def rates(self, unit_index: np.ndarray, values: dict[str, np.ndarray]) -> np.ndarray:
        """Decoded fire of unit ``unit_index[i]`` at ``values[source][i]`` (one window each)."""
        g, n = self.group, self.group.neurons_per_gate
        unit_index = np.asarray(unit_index, np.int64)
        self.values += unit_index.size
        self.saturated += g.saturated_count(values, unit_index)
        if self.runner is None:  # stateless backend: exactly these inputs, one vectorised call
            payload = g.encode(values, self.fixed, unit_index)[None]
            return g.decode(self.backend.gate_counts(g, unit_index, payload, self.timeout_s)[0])
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
        counts = gate_counts(self._exchange(payload).sum(axis=1), n)  # (W, width)
        return g.decode(counts[rank // s, slot])

    def record(self, layer: int, rates: np.ndarray, spikes_per_rate: float | None = None) -> None:
        st = self.stats.setdefault(layer, {"gates": 0, "firing": 0, "spikes": 0.0})
        per = spikes_per_rate or self.group.timesteps * self.group.neurons_per_gate
        st["gates"] += int(rates.size)
        st["firing"] += int((rates > 0).sum())
        st["spikes"] += float(rates.sum()) * per


class AttentionPath(GateEvaluator):
    """Fire of attention probabilities p (B, H, Tq, Tk) per head; refractory loads included."""

    def __init__(self, group: NeuronGroup, backend: str, **kw):
        super().__init__(group, backend, **kw)
        self.unit_of = {(u.layer, u.head): i for i, u in enumerate(group.units)}

    def fire(self, layer: int, p: np.ndarray, loads: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """fire (shape of p); entries with p = 0 (masked keys) are not sent and stay 0."""
        p = np.asarray(p, np.float64)
        live = p > 0
        heads = np.broadcast_to(np.arange(p.shape[1]).reshape(1, -1, 1, 1), p.shape)
        units = np.array([self.unit_of[(layer, h)] for h in range(p.shape[1])])[heads[live]]
        values = {"input": p[live]}
        for name, load in (loads or {}).items():
            values[name] = np.broadcast_to(np.asarray(load, np.float64), p.shape)[live]
        rates = self.rates(units, values)
        self.record(layer, rates)
        fire = np.zeros_like(p)
        fire[live] = rates
        return fire


class HiddenPath(GateEvaluator):
    """Fire of Liquid Ember's |h| (B, T, D) of CfC layer `layer`, one unit per neuron."""

    def __init__(self, group: NeuronGroup, backend: str, **kw):
        super().__init__(group, backend, **kw)
        self.first: dict[int, int] = {}
        for i, u in enumerate(group.units):
            self.first.setdefault(u.layer, i)

    def fire(self, layer: int, h: np.ndarray) -> np.ndarray:
        h = np.asarray(h, np.float64)
        units = self.first[layer] + np.broadcast_to(np.arange(h.shape[-1]), h.shape).ravel()
        rates = self.rates(units, {"input": np.abs(h).ravel()})
        self.record(layer, rates)
        return rates.reshape(h.shape)


class MembraneRate(GateEvaluator):
    """Fire of temporal-lif's membrane V (B, T) entering layer `layer`, rate-coded per token."""

    def fire(self, layer: int, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, np.float64)
        rates = self.rates(np.full(v.size, layer), {"input": v.ravel()})
        self.record(layer, rates)
        return rates.reshape(v.shape)


class HardMembrane(GateEvaluator):
    """temporal-lif's membrane as one LIF neuron per token (hard mode), on any spiking backend.

    The neuron's voltage *is* V: each layer is one step, the host sends the layer's
    importance ||attn_out||, the neuron leaks, spikes above its threshold and resets
    (mappers/temporal.py).  A spike means the layer's MLP runs.  The state carries
    across the n_layer steps of a forward pass and resets at its start: on Lava by
    LIFReset every n_layer windows (one window = one step), elsewhere by the same step
    functions (mappers/loihi.py) on state kept here.
    """

    def __init__(self, group: NeuronGroup, backend: str, **kw):
        super().__init__(group, backend, **kw)
        self.array = group.layout(np.zeros(self.slots, np.int64), self.fixed)
        self.state = None
        self.windows = 0

    def layout(self):
        return self.array

    def fire(self, layer: int, importance: np.ndarray) -> np.ndarray:
        """0/1 spikes (the shape of `importance`) of the tokens' neurons at this layer's step."""
        imp = np.asarray(importance, np.float64).ravel()
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
            spikes = self._exchange(payload[None])[0, 0]
        else:
            if layer == 0:
                self.state = None  # a forward pass starts from rest
            self.state, raster = numpy_ref.step_window(self.array, self.state, payload)
            spikes = raster[0]
        self.windows += 1
        fire = spikes[:imp.size].astype(np.float64)
        self.record(layer, fire, 1.0)
        return fire.reshape(np.shape(importance))
