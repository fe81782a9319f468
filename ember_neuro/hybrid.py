"""Hybrid inference: dense attention in PyTorch, the LIF gate's `fire` on a spiking backend.

The host computes embeddings, QKV, softmax, the product p * gate, the row
renormalisation, att @ v, MLPs and the head (CPU, or CUDA).  For every
attention probability p > 0 the gate's neurons run one window of T steps on
the chosen backend (any spiking entry of ember_neuro.backends.registry) and
return a spike count n; the host decodes fire = n/(N T) (docs/mapping.md).

Lava channel payloads: host -> chip graded spikes of `input_bits`+1 bits
(round(p * 2^12), int32 messages declared 24-bit); chip -> host one binary
spike per neuron per step (bit-packed raster per window).

A persistent backend (Lava) is compiled and started once per run with a fixed
layout: every gate unit (layer, head) owns `slots` neurons; a layer's call fills
its heads' slots window by window (other layers' slots idle at p = 0).  A
stateless backend (the emulators, the numpy reference) gets exactly the live
inputs of each call.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ember_neuro.backends import registry
from ember_neuro.errors import BadInput
from ember_neuro.mappers import NeuronGroup, gate_counts


class SpikingGatePath:
    """`fire_fn` for the model: sends probabilities to spiking neurons, decodes counts."""

    def __init__(self, mapped: NeuronGroup, backend: str, slots: int = 64, timeout_s: float = 60.0):
        self.backend = registry.require(backend)
        if not self.backend.spiking:
            raise BadInput(f"backend {backend!r} does not spike; choose one of "
                           f"{', '.join(registry.names(spiking=True, hybrid=True))}")
        self.mapped = mapped
        self.fixed = bool(self.backend.fixed)
        self.slots = int(slots)
        self.timeout_s = timeout_s
        self.unit_of = {(u.layer, u.head): i for i, u in enumerate(mapped.units)}
        self.runner = None
        self.lava_steps = 0
        self.lava_seconds = 0.0
        self.stats: dict[int, dict[str, float]] = {}

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> SpikingGatePath:
        if self.backend.persistent:
            unit_index = np.repeat(np.arange(len(self.mapped.units)), self.slots)
            self.runner = self.backend.open(self.mapped.layout(unit_index, self.fixed), self.timeout_s)
        return self

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
            self.runner = None

    def __enter__(self) -> SpikingGatePath:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the gate ------------------------------------------------------------------
    def rates(self, layer: int, values: list[np.ndarray]) -> list[np.ndarray]:
        """values[h]: probabilities of head h of `layer` -> decoded fire rates."""
        units = [self.unit_of[(layer, h)] for h in range(len(values))]
        n, t = self.mapped.neurons_per_gate, self.mapped.timesteps
        if self.runner is None:  # stateless backend: exactly these inputs, one vectorised call
            unit_index = np.concatenate([np.full(len(v), u) for v, u in zip(values, units, strict=True)])
            flat = np.concatenate(values)
            array = self.mapped.layout(unit_index, fixed=self.fixed)
            counts = self.backend.counts(array, self.mapped.encode(flat, self.fixed)[None], self.timeout_s)
            counts = gate_counts(counts[0], n)
            out, start = [], 0
            for v in values:
                out.append(self.mapped.decode(counts[start:start + len(v)]))
                start += len(v)
            return out
        s = self.slots
        n_windows = max(1, max(-(-len(v) // s) for v in values))
        width = len(self.mapped.units) * s
        payload = np.zeros((n_windows, width), dtype=np.int64 if self.fixed else np.float64)
        for v, u in zip(values, units, strict=True):
            enc = self.mapped.encode(v, self.fixed)
            for w in range(n_windows):
                chunk = enc[w * s:(w + 1) * s]
                payload[w, u * s:u * s + len(chunk)] = chunk
        t0 = time.perf_counter()
        rasters = self.runner.run_windows(payload)  # (W, T, width * N)
        self.lava_seconds += time.perf_counter() - t0
        self.lava_steps += n_windows * t
        counts = gate_counts(rasters.sum(axis=1), n)
        out = []
        for v, u in zip(values, units, strict=True):
            c = counts[:, u * s:(u + 1) * s].reshape(-1)[:len(v)]
            out.append(self.mapped.decode(c))
        return out

    def fire_fn(self, layer: int, p: torch.Tensor, theta: torch.Tensor | None = None,
                k: torch.Tensor | None = None) -> torch.Tensor:
        """fire for p (B, H, Tq, Tk).  theta/k come from the model's hook signature and are
        ignored: the mapped neurons already hold this layer's trained parameters."""
        if theta is not None and theta.dim() == 4 and theta.shape[-1] != 1:
            raise ValueError("load-dependent thresholds (lif-refractory) are not mapped yet")
        pd = p.detach().to("cpu", torch.float64)
        live = pd > 0  # masked (future) keys have p = 0 and contribute nothing either way
        values = [pd[:, h][live[:, h]].numpy() for h in range(pd.shape[1])]
        rates = self.rates(layer, values)
        fire = torch.zeros_like(pd)
        spikes = 0.0
        for h, r in enumerate(rates):
            fire[:, h][live[:, h]] = torch.from_numpy(r)
            spikes += float(r.sum()) * self.mapped.timesteps * self.mapped.neurons_per_gate
        st = self.stats.setdefault(layer, {"gates": 0, "firing": 0, "spikes": 0.0})
        st["gates"] += int(live.sum())
        st["firing"] += int(sum(int((r > 0).sum()) for r in rates))
        st["spikes"] += spikes
        return fire.to(device=p.device, dtype=p.dtype)


def make_fire_fn(mapped: NeuronGroup | None, backend: str, **kw):
    """(fire_fn or None, gate path or None) for a backend name."""
    if backend == "float":
        return None, None
    path = SpikingGatePath(mapped, backend, **kw)
    return path.fire_fn, path
