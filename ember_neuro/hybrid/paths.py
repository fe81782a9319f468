"""Gate values in, decoded fire out, on any spiking backend -- numpy only (no torch).

The part of hybrid inference that talks to the neurons, shared by the PyTorch hook
(ember_neuro/hybrid/torch_hook.py) and the INRC bundle's generate.py (onnxruntime + Lava).  A
gate module hands its hook a dict of input arrays; the group that answers the hook says how
they reach its units (:class:`~ember_neuro.mappers.network.Addressing`), so no gate kind needs
code here:

  RateGate     one window of T steps per value, each value on the unit its layer and unit
               axis name, the fire decoded from the spike count
  CarriedGate  one LIF neuron per token slot whose state carries across the layers of a
               forward pass (the hard membrane): one window per layer step, 0/1 spikes

A persistent backend (Lava) is compiled and started once with a fixed layout: every unit owns
`slots` input slots, and a call fills its units' slots window by window (other slots idle at
payload 0).  A stateless backend (the emulators, the numpy reference) gets exactly the live
inputs of each call.  :class:`GatePaths` holds one path per hook of a mapped network.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np

from ember_neuro.backends import numpy_ref, registry
from ember_neuro.errors import BadInput
from ember_neuro.mappers import MappedNetwork, NeuronGroup, gate_counts


def unit_index(group: NeuronGroup, layer: int, shape: tuple[int, ...]) -> np.ndarray:
    """The unit of every value of one layer's input array (shape), by the group's unit axis."""
    own = {u.head: i for i, u in enumerate(group.units) if u.layer == layer}
    if not own:
        raise KeyError(f"group {group.name!r} has no unit of layer {layer}")
    axis = group.address.unit_axis
    if axis is None:
        return np.full(shape, next(iter(own.values())), np.int64)
    table = np.array([own[h] for h in range(shape[axis])], np.int64)
    view = [1] * len(shape)
    view[axis] = shape[axis]
    return np.broadcast_to(table.reshape(view), shape)


def host_values(group: NeuronGroup, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The group's host sources from the hook's inputs (each read as Addressing.reads says),
    broadcast to the shape of the first source."""
    a = group.address
    sources = group.fixed_params.host_sources
    first = np.asarray(inputs[a.hook_input(sources[0])], np.float64)
    return {src: np.broadcast_to(np.asarray(inputs[a.hook_input(src)], np.float64), first.shape)
            for src in sources}


def live(group: NeuronGroup, first: np.ndarray) -> np.ndarray:
    """Which values of the first host source are sent: all, or with ``idle_zero`` the non-zero ones
    (a masked attention key: p = 0 contributes nothing, its fire is 0)."""
    return first != 0 if group.address.idle_zero else np.ones(first.shape, bool)


class GateEvaluator:
    """Spike-rate fire of a neuron group's units for any values, on one backend."""

    def __init__(self, group: NeuronGroup, backend: str | registry.Backend, slots: int = 64,
                 timeout_s: float = 60.0):
        # a name is checked here; an entry is taken as checked (GatePaths checks once for all groups)
        self.backend = registry.require(backend) if isinstance(backend, str) else backend
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
        # persistent runner: how the INRC bundle records its golden traces (hybrid/golden.py)
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

    def rates(self, units: np.ndarray, values: dict[str, np.ndarray]) -> np.ndarray:
        """Decoded fire of unit ``units[i]`` at ``values[source][i]`` (one window each)."""
        g, n = self.group, self.group.neurons_per_gate
        units = np.asarray(units, np.int64)
        self.values += units.size
        self.saturated += g.saturated_count(values, units)
        if self.runner is None:  # stateless backend: exactly these inputs, one vectorised call
            payload = g.encode(values, self.fixed, units)[None]
            return g.decode(self.backend.gate_counts(g, units, payload, self.timeout_s)[0])
        s, n_units = self.slots, len(g.units)
        order = np.argsort(units, kind="stable")
        rank = np.empty_like(order)  # position of each input among its unit's inputs
        starts = np.searchsorted(units[order], np.arange(n_units))
        rank[order] = np.arange(order.size) - starts[units[order]]
        windows = max(1, int(-(-(rank.max(initial=0) + 1) // s)))
        slot = units * s + rank % s  # the input's slot in the layout
        enc = g.encode(values, self.fixed, units).reshape(-1, units.size)  # (S, I)
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


class RateGate(GateEvaluator):
    """The fire of every value of a layer's hook inputs, rate-coded over one window each."""

    def fire(self, layer: int, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """fire (the shape of the hook's "input"); with ``idle_zero`` a value 0 is not sent, fire 0."""
        values = host_values(self.group, inputs)
        x = next(iter(values.values()))
        units = unit_index(self.group, layer, x.shape)
        sent = live(self.group, x)
        rates = self.rates(units[sent], {src: v[sent] for src, v in values.items()})
        self.record(layer, rates)
        fire = np.zeros(x.shape)
        fire[sent] = rates
        return fire


class CarriedGate(GateEvaluator):
    """One LIF neuron per token slot whose state carries across a forward pass's layer steps.

    The neuron's voltage *is* the membrane (kinds/membrane): each layer is one step, the host
    sends the layer's input, the neuron leaks, spikes above its threshold and resets.  The
    state resets at a forward pass's first layer: on Lava by LIFReset every n_layer windows
    (one window = one step), elsewhere by the same step functions (mappers/loihi.py) on state
    kept here.
    """

    def __init__(self, group: NeuronGroup, backend: str | registry.Backend, **kw):
        super().__init__(group, backend, **kw)
        self.array = group.layout(np.zeros(self.slots, np.int64), self.fixed)
        self.state = None
        self.windows = 0

    def layout(self):
        return self.array

    def fire(self, layer: int, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """0/1 spikes (the shape of the input) of the tokens' neurons at this layer's step."""
        x = host_values(self.group, inputs)["input"]
        flat = x.ravel()
        if flat.size > self.slots:
            raise BadInput(f"{flat.size} tokens in one forward pass exceed the {self.slots} "
                           f"{self.group.name} neurons")
        if self.windows % self.group.reset_windows != layer:
            raise RuntimeError(f"{self.group.name} step out of order: layer {layer} at window {self.windows}")
        values = np.zeros(self.slots)
        values[:flat.size] = flat
        self.values += flat.size
        self.saturated += self.group.saturated_count(flat, np.zeros(flat.size, np.int64))
        payload = self.group.encode(values, self.fixed, np.zeros(self.slots, np.int64))
        if self.runner is not None:
            spikes = self._exchange(payload[None])[0, 0]
        else:
            if layer == 0:
                self.state = None  # a forward pass starts from rest
            self.state, raster = numpy_ref.step_window(self.array, self.state, payload)
            spikes = raster[0]
        self.windows += 1
        fire = spikes[:flat.size].astype(np.float64)
        self.record(layer, fire, 1.0)
        return fire.reshape(x.shape)


class GatePaths:
    """One gate path per hook of a mapped network, on one backend, started and stopped together.

    ``slots``: inputs per unit (one number, or per hook); ``mode`` picks among a hook's
    alternative groups (``--temporal hard``: the carried membrane).  A context manager: if one
    path fails to start every one is closed, and leaving closes them all.
    """

    def __init__(self, net: MappedNetwork, backend: str | registry.Backend,
                 slots: int | Mapping[str, int] = 64, timeout_s: float = 60.0, mode: str = "rate"):
        backend = registry.require(backend) if isinstance(backend, str) else backend
        self.paths: dict[str, GateEvaluator] = {}
        for hook in net.hooks:
            group = net.for_hook(hook, mode)
            n = slots if isinstance(slots, int) else slots[hook]
            kind = CarriedGate if group.carries_state else RateGate
            self.paths[hook] = kind(group, backend, slots=n, timeout_s=timeout_s)

    def fire(self, hook: str, layer: int, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.paths[hook].fire(layer, inputs)

    def __enter__(self) -> GatePaths:
        try:
            for path in self.paths.values():
                path.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for path in self.paths.values():
            path.close()

    @property
    def lava_steps(self) -> int:
        return sum(p.lava_steps for p in self.paths.values())

    @property
    def lava_seconds(self) -> float:
        return sum(p.lava_seconds for p in self.paths.values())

    @property
    def persistent(self) -> bool:
        return any(p.runner is not None for p in self.paths.values())

    @property
    def saturated(self) -> int:
        return sum(p.saturated for p in self.paths.values())

    def stats(self) -> dict:
        """Per layer (per group and layer where there are several): gates, firing, spikes."""
        many = len(self.paths) > 1
        return {f"{p.group.name}/{layer}" if many else str(layer): dict(st)
                for p in self.paths.values() for layer, st in p.stats.items()}


class SigmoidGates:
    """The trained fire itself (float64) from a mapped network's float neurons: what the spiking
    paths approximate (the ONNX check runs the host graphs with these)."""

    def __init__(self, net: MappedNetwork):
        self.net = net

    def fire(self, hook: str, layer: int, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        group = self.net.for_hook(hook)
        values = host_values(group, inputs)
        shape = next(iter(values.values())).shape
        return group.target(values, unit_index(group, layer, shape))
