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

A persistent backend (Lava) is compiled and started once per layer with a fixed layout: every
unit of the layer owns `slots` input slots (lanes), and a call fills its units' lanes window by
window.  Lanes left over are idle: on the chip-side window (the default, backends/chip_window.py)
they are neither sent nor answered; the per-step network sends them payload 0.  Other layers'
units are not in the layer's network at all.  A stateless backend (the emulators, the numpy
reference) gets exactly the live inputs of each call.  :class:`GatePaths` holds one path per
hook of a mapped network.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ember_neuro.backends import numpy_ref, registry
from ember_neuro.errors import BadInput
from ember_neuro.mappers import MappedNetwork, NeuronGroup, gate_counts
from ember_neuro.mappers.network import lane_packing, pack_windows


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
                 timeout_s: float = 60.0, bridge: str | None = None):
        # a name is checked here; an entry is taken as checked (GatePaths checks once for all groups)
        self.backend = registry.require(backend) if isinstance(backend, str) else backend
        if not self.backend.spiking:
            raise BadInput(f"backend {backend!r} does not spike; choose one of "
                           f"{', '.join(registry.names(spiking=True, hybrid=True))}")
        self.group = group
        self.fixed = bool(self.backend.fixed)
        self.slots = int(slots)
        self.timeout_s = timeout_s
        self.bridge = bridge  # None: the backend's default (Lava: the chip-side window where it is exact)
        self.runners: dict[int, registry.Runner] = {}  # one per layer (the carried membrane: one, key 0)
        self.lava_steps = 0
        self.lava_seconds = 0.0
        self.saturated = 0  # host values beyond their payload scale (clipped in fixed point)
        self.values = 0
        self.stats: dict[int, dict[str, float]] = {}
        self.exchanges: dict[int, dict[str, int]] = {}  # per runner: what crossed its bridge so far
        self.calls: dict[int, int] = {}  # per runner: exchanges asked of it (one per forward pass)
        # called with (key, payloads (W, width), result, live (W, width), exchanged) after every
        # exchange with a persistent runner -- result: the counts (W, width) of a chip-side window or
        # the rasters (W, T, M) of the per-step network; exchanged: what crossed the bridge for it.
        # How the INRC bundle records its golden traces (hybrid/golden.py).
        self.tap: Callable[..., None] | None = None

    def keys(self) -> list[int]:
        """The runners' keys: the group's layers that have a unit on neurons."""
        on = self.group.on_neurons
        return sorted({u.layer for i, u in enumerate(self.group.units) if on[i]})

    def start(self) -> GateEvaluator:
        if self.backend.persistent and not self.runners:
            kwargs = {} if self.bridge is None else {"bridge": self.bridge}
            try:
                for key in self.keys():
                    self.runners[key] = self.backend.open(self.layout(key), self.timeout_s, **kwargs)
            except BaseException:
                self.close()
                raise
        return self

    def layer_units(self, layer: int) -> np.ndarray:
        """The layer's units that run on neurons (a host-constant unit gets no lanes)."""
        on = self.group.on_neurons
        return np.array([i for i, u in enumerate(self.group.units) if u.layer == layer and on[i]], np.int64)

    def layout(self, key: int):
        """The neuron array of one runner: the layer's units, `slots` lanes each."""
        return self.group.layout(np.repeat(self.layer_units(key), self.slots), self.fixed)

    def design(self, key: int) -> str:
        return getattr(self.runners.get(key), "design", "stateless")

    def trace_name(self, key: int) -> str:
        return f"{self.group.name}/L{key}"

    def close(self) -> None:
        runners, self.runners = self.runners, {}
        for runner in runners.values():
            runner.close()

    @property
    def runner(self):
        """One of the path's persistent networks, or None on a stateless backend."""
        return next(iter(self.runners.values()), None)

    def __enter__(self) -> GateEvaluator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _exchange(self, key: int, payloads: np.ndarray, live: np.ndarray) -> np.ndarray:
        """Windows through one persistent runner, timed: (W, width) -> (W, width) spike counts."""
        runner = self.runners[key]
        self.calls[key] = self.calls.get(key, 0) + 1
        before = self.exchanges.get(key, {})
        t0 = time.perf_counter()
        steps0 = getattr(runner, "steps", 0)
        if hasattr(runner, "run_counts"):  # the chip-side window: counts summed on chip, idle lanes silent
            result = counts = runner.run_counts(payloads, live)
        else:
            result = runner.run_windows(payloads)
            counts = gate_counts(result.sum(axis=1), self.group.neurons_per_gate)
        self.lava_seconds += time.perf_counter() - t0
        # the steps the runner counted (chip-side: one per window and the answers' two), else T per window
        self.lava_steps += getattr(runner, "steps", 0) - steps0 or payloads.shape[0] * self.group.timesteps
        after = getattr(runner, "exchanges", None)
        exchanged = {}
        if after is not None:
            self.exchanges[key] = dict(after)
            exchanged = {k: v - before.get(k, 0) for k, v in after.items()}
        if self.tap is not None:
            self.tap(key, payloads, result, live, exchanged)
        return counts

    def rates(self, units: np.ndarray, values: dict[str, np.ndarray]) -> np.ndarray:
        """Decoded fire of unit ``units[i]`` at ``values[source][i]`` (one window each); a
        host-constant unit's fire is its constant, computed here and sent nowhere."""
        g = self.group
        units = np.asarray(units, np.int64)
        self.values += units.size
        self.saturated += g.saturated_count(values, units)
        on = g.on_neurons[units]
        if on.all():
            return self._spiking(units, values)
        out = np.asarray(g.host_constant, np.float64)[units]
        if on.any():
            out[on] = self._spiking(units[on], {k: np.asarray(v)[on] for k, v in values.items()})
        return out

    def _spiking(self, units: np.ndarray, values: dict[str, np.ndarray]) -> np.ndarray:
        """The fire of units on neurons, from their spike counts on the backend."""
        g = self.group
        if not self.runners:  # stateless backend: exactly these inputs, one vectorised call
            payload = g.encode(values, self.fixed, units)[None]
            return g.decode(self.backend.gate_counts(g, units, payload, self.timeout_s)[0])
        layers = {g.units[u].layer for u in np.unique(units)}
        if len(layers) != 1:
            raise ValueError(f"one call evaluates one layer's units, got layers {sorted(layers)}")
        key = layers.pop()
        own = self.layer_units(key)
        local = np.searchsorted(own, units)  # the unit's place among its layer's units
        window, lane, windows = lane_packing(local, len(own), self.slots)
        enc = g.encode(values, self.fixed, units).reshape(-1, units.size)  # (S, I)
        payload, live = pack_windows(enc, window, lane, windows, len(own) * self.slots)
        counts = self._exchange(key, payload, live)  # (W, width)
        return g.decode(counts[window, lane])

    def record(self, layer: int, rates: np.ndarray, on_neurons: np.ndarray | None = None,
               spikes_per_rate: float | None = None) -> None:
        """Per layer: gate values, how many fired (> 0), and the spikes of those on neurons (a
        host-constant unit fires without spiking)."""
        st = self.stats.setdefault(layer, {"gates": 0, "firing": 0, "spikes": 0.0})
        per = spikes_per_rate or self.group.timesteps * self.group.neurons_per_gate
        st["gates"] += int(rates.size)
        st["firing"] += int((rates > 0).sum())
        spiking = rates if on_neurons is None else rates[on_neurons]
        st["spikes"] += float(spiking.sum()) * per


class RateGate(GateEvaluator):
    """The fire of every value of a layer's hook inputs, rate-coded over one window each."""

    def fire(self, layer: int, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """fire (the shape of the hook's "input"); with ``idle_zero`` a value 0 is not sent, fire 0."""
        values = host_values(self.group, inputs)
        x = next(iter(values.values()))
        units = unit_index(self.group, layer, x.shape)
        sent = live(self.group, x)
        rates = self.rates(units[sent], {src: v[sent] for src, v in values.items()})
        self.record(layer, rates, self.group.on_neurons[units[sent]])
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

    def keys(self) -> list[int]:
        return [0]  # one network: the state carries from layer to layer

    def layout(self, key: int = 0):
        return self.array

    def trace_name(self, key: int) -> str:
        return self.group.name

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
        if self.runners:
            live = np.zeros((1, self.slots), bool)
            live[0, :flat.size] = True
            spikes = self._exchange(0, payload[None], live)[0]
        else:
            if layer == 0:
                self.state = None  # a forward pass starts from rest
            self.state, raster = numpy_ref.step_window(self.array, self.state, payload)
            spikes = raster[0]
        self.windows += 1
        fire = spikes[:flat.size].astype(np.float64)
        self.record(layer, fire, spikes_per_rate=1.0)
        return fire.reshape(x.shape)


class GatePaths:
    """One gate path per hook of a mapped network, on one backend, started and stopped together.

    ``slots``: inputs per unit (one number, or per hook); ``mode`` picks among a hook's
    alternative groups (``--temporal hard``: the carried membrane).  A context manager: if one
    path fails to start every one is closed, and leaving closes them all.
    """

    def __init__(self, net: MappedNetwork, backend: str | registry.Backend,
                 slots: int | Mapping[str, int] = 64, timeout_s: float = 60.0, mode: str = "rate",
                 bridge: str | None = None):
        backend = registry.require(backend) if isinstance(backend, str) else backend
        self.paths: dict[str, GateEvaluator] = {}
        for hook in net.hooks:
            group = net.for_hook(hook, mode)
            n = slots if isinstance(slots, int) else slots[hook]
            kind = CarriedGate if group.carries_state else RateGate
            self.paths[hook] = kind(group, backend, slots=n, timeout_s=timeout_s, bridge=bridge)

    @classmethod
    def for_run(cls, net: MappedNetwork, backend: str | registry.Backend,
                slots: int | Mapping[str, int] = 64, timeout_s: float = 60.0, mode: str = "rate",
                bridge: str | None = None) -> GatePaths:
        """The gate paths as a run opens them (``run``, the bundle's classify.py): the Lava network
        asked for, else on a persistent fixed-point backend the one :meth:`fit_bridge` picks, its
        reason one note on stderr."""
        backend = registry.require(backend) if isinstance(backend, str) else backend
        gates = cls(net, backend, slots, timeout_s, mode, bridge)
        if bridge is None and backend.persistent and backend.fixed:
            _, why = gates.fit_bridge()
            if why:
                print(f"note: {why}", file=sys.stderr)
        return gates

    def fire(self, hook: str, layer: int, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.paths[hook].fire(layer, inputs)

    def fit_bridge(self) -> tuple[str, str | None]:
        """For a run that asked for no Lava network: pick it, before the paths start -- (the network,
        why it is not the chip-side window or None).  The chip-side window (one message each way per
        layer and token) where every network's N*T + R + 1 neurons per value fit one Loihi 2 chip
        together; else the per-step network (N per value): a chip-side window that no chip holds
        only costs a process tree its size on the simulator (3.1 GB at the paper's T = 8, N = 32).
        At T = 1 the per-step network exchanges as little, with fewer neurons."""
        from ember_neuro.backends.chip_window import BRIDGES, ChipWindowError, chip_window, one_step
        from ember_neuro.deploy.resources import chip_footprint

        arrays: dict[str, Any] = {}
        reasons = set()  # lava.open's own reasons for the per-step network, over the chip-side layouts
        refused = []  # why a layout has no chip-side window (float, the hard membrane, a 16-bit overflow)
        for path in self.paths.values():
            for key in path.keys():
                layout = path.layout(key)
                try:
                    arrays[path.trace_name(key)] = chip_window(layout)
                    reasons.add(one_step(layout))
                except ChipWindowError as exc:  # runs per-step anyway
                    arrays[path.trace_name(key)] = layout
                    refused.append(str(exc))
        if refused and not reasons:  # no layout has a chip-side window: lava.open runs them all per-step
            bridge, why = "per-step", f"no chip-side window: {refused[0]}; the per-step network runs instead"
        elif reasons and None not in reasons:
            bridge, why = "per-step", reasons.pop()
        else:
            foot = chip_footprint(arrays)
            bridge, why = (BRIDGES[0], None) if foot["fits_one_chip"] else (
                "per-step", f"the chip-side window would need {foot['neurons']:,} neurons on {foot['cores']} "
                "neuro cores, more than one Loihi 2 chip: the per-step network runs instead (N neurons per "
                "gate value; --bridge chip-side insists)")
        for path in self.paths.values():
            path.bridge = bridge
        return bridge, why

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
        return any(p.runners for p in self.paths.values())

    def exchanges(self) -> dict[str, dict[str, int]]:
        """What crossed each runner's bridge so far, by runner (group/layer) and in total."""
        out = {p.trace_name(k): dict(ex, design=p.design(k)) for p in self.paths.values()
               for k, ex in sorted(p.exchanges.items())}
        for p in self.paths.values():
            for k, runner in p.runners.items():
                why = getattr(runner, "why_per_step", None)
                if why and p.trace_name(k) in out:
                    out[p.trace_name(k)]["why_per_step"] = why
        if out:
            keys = [k for k in next(iter(out.values())) if k not in ("design", "why_per_step")]
            out["total"] = {k: sum(v[k] for v in out.values()) for k in keys}
        return out

    def exchanges_per_call(self) -> dict[str, Any]:
        """What crosses per forward pass (one generated token of every prompt): each network's
        messages, values and bytes divided by the exchanges asked of it, and their sum."""
        per: dict[str, dict[str, float]] = {}
        for p in self.paths.values():
            for k, ex in sorted(p.exchanges.items()):
                calls = p.calls.get(k, 0)
                if calls:
                    per[p.trace_name(k)] = {name: v / calls for name, v in ex.items()
                                            if name.startswith(("to_chip", "from_chip")) or name == "steps"}
        if not per:
            return {}
        names = next(iter(per.values()))
        return {"per_network": per, "total": {n: sum(v[n] for v in per.values()) for n in names}}

    @property
    def saturated(self) -> int:
        return sum(p.saturated for p in self.paths.values())

    def stats(self) -> dict:
        """Per layer (per group and layer where there are several): gates, firing, spikes."""
        many = len(self.paths) > 1
        return {f"{p.group.name}/{layer}" if many else str(layer): dict(st)
                for p in self.paths.values() for layer, st in p.stats.items()}

