"""The contract between mappers and backends: neuron groups with a list of graded connections.

A mapper (one module per gate kind, see mappers/registry.py) turns trained
parameters into a :class:`MappedNetwork`: named :class:`NeuronGroup`s, each with
per-unit neuron parameters in two arithmetics (float64 and Loihi 2 fixed point).
A backend never sees trained parameters.  It sees a :class:`NeuronArray` -- the
M neurons of one layout, from :meth:`NeuronGroup.layout` -- and runs the same LIF
equations on them:

    a_in[t] = sum_j  wshift(w_j[m] * s_j[t, col_j[m]], e_j)      one term per connection
    u[t] = u[t-1] (1 - du) + a_in[t] ;  v[t] = v[t-1] (1 - dv) + u[t] + bias
    spike iff v[t] > vth ;  v <- 0 on spike ;  u = v = 0 at every window start

Connection j reads its payload s_j either from the host (held for the whole
window, one value per input slot: ``col = slot``) or from a table generated on
chip (row t at window step t, ``col = (slot mod P) N + channel`` for a table of
P N columns).  Fixed point: ``wshift`` is the connection's shared weight exponent
(mappers/loihi.py); float: plain products.  Connections are kept in a canonical
order -- host payloads first, then tables -- because float addition is not
associative and Lava sums its synapses' outputs in connection order.

Neuron m = i N + c serves input slot i (unit ``unit_index[i]``) through channel c.

A group also says how the host's gate values reach it (:class:`Addressing`): which model hook
it answers, which axis of a layer's values indexes its units, whether a zero is idle.  That is
all a gate path needs (ember_neuro/hybrid/paths.py), so the INRC bundle evaluates any gate
kind from the saved mapping alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ember_neuro.errors import BadInput
from ember_neuro.gates import sigmoid


class MappingError(BadInput):
    """A request the mapper refuses; the message is one line and says why."""


@dataclass(frozen=True)
class MappingOptions:
    """What the user chooses; everything else the mapper derives."""

    timesteps: int = 32
    neurons_per_gate: int = 1
    input_bits: int = 12
    dither_bits: int = 12
    levels: str = "uniform"  # the dither's level set: "uniform", "log" or "auto" per group (mappers/gate.py)
    level_floor: float = 0.01  # "log": levels uniform in log(fire + level_floor)


@dataclass(frozen=True)
class GateUnit:
    """One trained gate unit (a head of a layer, or one CfC neuron): transformed parameters."""

    layer: int
    head: int  # the head (attention), CfC neuron or token slot within the layer
    theta: float
    leak: float
    k: float
    tag: str = "H"  # H: attention head, N: CfC neuron, M: temporal membrane
    label: str = ""  # a name that replaces L{layer}{tag}{head} (a unit shared by all layers)

    @property
    def name(self) -> str:
        return self.label or f"L{self.layer}{self.tag}{self.head}"


@dataclass(frozen=True)
class Connection:
    """One graded input of every neuron of a group -- one Sparse synapse process in Lava.

    ``weight`` is per gate unit; ``table`` is None for a payload the host sends once
    per window (one value per input slot, encoded in fixed point as
    ``round(|x| / scale[unit] 2^bits)``, clipped to [0, 2^bits]), or a (T, C) table
    the chip generates (the dither).
    """

    source: str
    weight: np.ndarray
    weight_exp: int = 0
    table: np.ndarray | None = None
    bits: int = 0
    scale: np.ndarray | None = None  # (U,) value range of a host payload; None: 1

    @property
    def from_host(self) -> bool:
        return self.table is None


@dataclass(frozen=True)
class Arithmetic:
    """Per-unit neuron parameters in one arithmetic (float64, or Loihi 2 integers)."""

    fixed: bool
    connections: tuple[Connection, ...]
    bias_mant: np.ndarray  # (U,) float: the bias itself
    bias_exp: np.ndarray  # (U,) float: zeros, ignored
    du: float
    dv: float
    vth: float

    def __post_init__(self) -> None:
        names = [c.source for c in self.connections]
        if len(set(names)) != len(names):
            raise ValueError(f"connection sources must be unique, got {names}")
        order = sorted(self.connections, key=lambda c: not c.from_host)
        if list(order) != list(self.connections):
            raise ValueError("connections must list host payloads before chip tables")

    def connection(self, source: str) -> Connection:
        for c in self.connections:
            if c.source == source:
                return c
        raise KeyError(f"no connection {source!r}; have {[c.source for c in self.connections]}")

    @property
    def host_sources(self) -> tuple[str, ...]:
        return tuple(c.source for c in self.connections if c.from_host)


@dataclass(frozen=True)
class Synapses:
    """A connection laid out on M neurons: neuron m reads column ``column[m]`` of its source."""

    source: str
    weight: np.ndarray  # (M,)
    weight_exp: int
    column: np.ndarray  # (M,) slot index (host) or table column (chip)
    table: np.ndarray | None  # (T, C) for chip-generated payloads
    bits: int = 0  # a host payload's width: fixed-point values lie in [0, 2^bits] (0: unknown)

    @property
    def from_host(self) -> bool:
        return self.table is None


@dataclass(frozen=True)
class NeuronArray:
    """M neurons ready to run: what Lava, the emulators and the references consume.

    The host payload of one window is a flat vector of ``payload_width`` values:
    the I slots of the first host source, then of the second, ... (a single host
    source gives the familiar (I,) payload).
    """

    fixed: bool
    timesteps: int
    neurons_per_gate: int
    unit_index: np.ndarray  # (I,) gate unit of each input slot
    synapses: tuple[Synapses, ...]
    bias_mant: np.ndarray  # (M,)
    bias_exp: np.ndarray  # (M,)
    du: float
    dv: float
    vth: float
    reset_windows: int = 1  # windows between resets of u and v (state carried in between)

    @property
    def size(self) -> int:
        return int(self.bias_mant.shape[0])

    @property
    def n_inputs(self) -> int:
        return int(self.unit_index.shape[0])

    @property
    def host(self) -> tuple[Synapses, ...]:
        return tuple(s for s in self.synapses if s.from_host)

    @property
    def tables(self) -> tuple[Synapses, ...]:
        return tuple(s for s in self.synapses if not s.from_host)

    @property
    def payload_width(self) -> int:
        return len(self.host) * self.n_inputs

    @property
    def source_width(self) -> int:
        """Width of the vector the host bridge sends each step: host payload, then table rows."""
        return self.payload_width + sum(int(s.table.shape[1]) for s in self.tables)

    @property
    def channel(self) -> np.ndarray:
        return np.arange(self.size) % self.neurons_per_gate

    def host_columns(self) -> list[np.ndarray]:
        """Per host synapse: the payload index each neuron reads (source block + slot)."""
        return [j * self.n_inputs + s.column for j, s in enumerate(self.host)]

    def synapse(self, source: str) -> Synapses:
        for s in self.synapses:
            if s.source == source:
                return s
        raise KeyError(f"no synapses {source!r}")

    def check_payload(self, x: np.ndarray) -> np.ndarray:
        """Payload as (B, payload_width), validated (fixed point: integers)."""
        x = np.asarray(x)
        if x.ndim not in (1, 2) or x.shape[-1] != self.payload_width:
            raise ValueError(f"payload must be ({self.payload_width},) or (B, {self.payload_width}), "
                             f"got {x.shape}")
        if self.fixed:
            if not np.issubdtype(x.dtype, np.integer) and not np.all(np.mod(x, 1) == 0):
                raise ValueError("fixed-point payload must be integer (use NeuronGroup.encode)")
            x = x.astype(np.int64)
        else:
            x = x.astype(np.float64)
        return x if x.ndim == 2 else x[None]


def lane_packing(units: np.ndarray, n_units: int, lanes: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Where each input goes in windows of `lanes` lanes per unit: (window, lane, windows).

    The r-th input of unit u (in input order) goes to window r // lanes, lane u lanes + r % lanes;
    windows is how many the unit with the most inputs needs (at least 1).
    """
    units = np.asarray(units, np.int64)
    order = np.argsort(units, kind="stable")
    rank = np.empty_like(order)  # position of each input among its unit's inputs
    starts = np.searchsorted(units[order], np.arange(n_units))
    rank[order] = np.arange(order.size) - starts[units[order]]
    return rank // lanes, units * lanes + rank % lanes, int(rank.max(initial=0)) // lanes + 1


def pack_windows(encoded: np.ndarray, window: np.ndarray, lane: np.ndarray, windows: int,
                 width: int) -> tuple[np.ndarray, np.ndarray]:
    """Encoded inputs (S, I) of S host sources placed by :func:`lane_packing`: the payloads
    (windows, S width) and the live lanes (windows, width)."""
    encoded = np.atleast_2d(encoded)
    payload = np.zeros((windows, encoded.shape[0] * width), encoded.dtype)
    live = np.zeros((windows, width), bool)
    live[window, lane] = True
    for j in range(encoded.shape[0]):
        payload[window, j * width + lane] = encoded[j]
    return payload, live


def gate_counts(counts: np.ndarray, neurons_per_gate: int) -> np.ndarray:
    """Per-neuron counts (..., I*N) -> per-input counts (..., I), summed over the N channels."""
    counts = np.asarray(counts)
    return counts.reshape(*counts.shape[:-1], -1, neurons_per_gate).sum(axis=-1)


@dataclass(frozen=True)
class Addressing:
    """How the host's gate values reach a group's units.

    ``hook``: the model hook the group answers (a gate module calls it with a dict of input
    tensors).  ``mode``: "rate" (a window of T steps per value, decoded from its spike count),
    or the name of an alternative group for the same hook that ``--temporal`` selects (the
    "hard" membrane).  ``unit_axis``: the axis of a layer's values that indexes its units
    (a head: 1; a neuron: -1); None: one unit per layer.  ``idle_zero``: a value of exactly 0
    contributes nothing on the host (masked attention keys: p = 0, gated = 0), so it is not
    sent and its fire is 0.  ``reads``: (connection source, hook input) pairs where a
    connection reads a hook input of another name (the hard membrane's "input" is the hook's
    "importance"); every other source reads the input of its own name.  ``label``: what the
    first input is, for plots and reports ("attention probability p").
    """

    hook: str
    mode: str = "rate"
    unit_axis: int | None = None
    idle_zero: bool = False
    reads: tuple[tuple[str, str], ...] = ()
    label: str = ""

    def hook_input(self, source: str) -> str:
        return dict(self.reads).get(source, source)


@dataclass(frozen=True)
class NeuronGroup:
    """One kind of neuron of a mapped network: units, window, and both arithmetics."""

    name: str
    units: tuple[GateUnit, ...]
    timesteps: int
    neurons_per_gate: int
    levels: np.ndarray  # (N*T,) ascending logit levels the dither presents
    float_params: Arithmetic
    fixed_params: Arithmetic
    k_effective: np.ndarray  # (U,) slope realised in fixed point
    fixed_worst_error: np.ndarray  # (U,) exact sup over the input range of |fixed rate - sigmoid|
    warnings: tuple[str, ...] = field(default_factory=tuple)
    saturated: tuple[str, ...] = field(default_factory=tuple)
    reset_windows: int = 1  # windows between resets: > 1 carries the neurons' state across windows
    decode_values: np.ndarray | None = None  # (N*T + 1,) fire of each spike count; None: n / (N T)
    level_set: str = "uniform"  # the dither's level set (mappers/gate.py: level_points)
    addressing: Addressing | None = None  # None: one rate unit per layer answering the hook `name`
    host_constant: np.ndarray | None = None  # (U,) fire the host uses instead of neurons; NaN: on neurons

    @property
    def on_neurons(self) -> np.ndarray:
        """(U,) bool: the units that run as neurons (the rest are host constants, no neurons)."""
        if self.host_constant is None:
            return np.ones(len(self.units), bool)
        return np.isnan(np.asarray(self.host_constant, np.float64))

    @property
    def address(self) -> Addressing:
        return self.addressing if self.addressing is not None else Addressing(hook=self.name)

    @property
    def carries_state(self) -> bool:
        """Whether u and v carry across windows (the hard membrane: one window per layer step)."""
        return self.reset_windows > 1

    @property
    def bound(self) -> float:
        """Worst-case rounding of the level set: 1 / (2 N T) for uniform levels (the physical limit
        of N binary neurons over T steps); for other level sets the widest half-step between a
        level and the decode values on either side of it."""
        if self.decode_values is None or not len(self.levels):
            return 1.0 / (2 * self.neurons_per_gate * self.timesteps)
        q = sigmoid(np.asarray(self.levels, np.float64))
        d = np.asarray(self.decode_values, np.float64)
        return float(max((q - d[:-1]).max(), (d[1:] - q).max()))

    @property
    def input_bits(self) -> int:
        return int(self.fixed_params.connection("input").bits)

    def params(self, fixed: bool) -> Arithmetic:
        return self.fixed_params if fixed else self.float_params

    def _values(self, values: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        sources = self.fixed_params.host_sources
        if not isinstance(values, Mapping):
            if len(sources) != 1:
                raise ValueError(f"group {self.name!r} has host sources {sources}: pass a mapping")
            values = {sources[0]: values}
        if set(values) != set(sources):
            raise ValueError(f"payload sources {sorted(values)} != {sorted(sources)}")
        return {src: np.abs(np.asarray(values[src], dtype=np.float64)) for src in sources}

    def _scale(self, source: str, unit_index: np.ndarray | None) -> np.ndarray | float:
        scale = self.fixed_params.connection(source).scale
        if scale is None or np.all(np.asarray(scale) == 1.0):
            return 1.0
        if unit_index is None:
            raise ValueError(f"group {self.name!r} scales its {source} payload per unit: pass unit_index")
        return np.asarray(scale, np.float64)[np.asarray(unit_index, np.int64)]

    def encode(self, values: np.ndarray | Mapping[str, np.ndarray], fixed: bool,
               unit_index: np.ndarray | None = None) -> np.ndarray:
        """Host payload for values (magnitudes are taken): one array for a single host
        source, or {source: array}; several sources are concatenated in connection order.

        Float: |x| itself.  Fixed point: ``round(|x| / scale 2^bits)`` clipped to
        [0, 2^bits] (an unsigned graded spike); a group whose payload scale differs per
        unit needs the ``unit_index`` of the values (their last axis).
        """
        parts = []
        for src, x in self._values(values).items():
            if fixed:
                full = 2 ** self.fixed_params.connection(src).bits
                x = np.clip(np.rint(x / self._scale(src, unit_index) * full), 0, full).astype(np.int64)
            parts.append(x)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)

    def saturated_count(self, values: np.ndarray | Mapping[str, np.ndarray],
                        unit_index: np.ndarray | None = None) -> int:
        """How many host values lie beyond their payload scale (clipped in fixed point)."""
        values = self._values(values)
        return int(sum(int((x > self._scale(src, unit_index)).sum()) for src, x in values.items()))

    def target(self, values: np.ndarray | Mapping[str, np.ndarray], unit_index: np.ndarray) -> np.ndarray:
        """The trained fire the spikes approximate: sigmoid(sum_j w_j |x_j| + bias) of the float
        arithmetic (no quantisation, no clipping), for values of units ``unit_index``."""
        fp = self.float_params
        unit_index = np.asarray(unit_index, np.int64)
        z = np.asarray(fp.bias_mant, np.float64)[unit_index]
        for src, x in self._values(values).items():
            z = z + np.asarray(fp.connection(src).weight, np.float64)[unit_index] * x
        return sigmoid(z)

    def decode(self, counts: np.ndarray) -> np.ndarray:
        """Spike counts of a gate's N neurons (summed) -> fire in [0, 1]: n / (N T) for uniform
        levels, else the level set's decode value of each count."""
        if self.decode_values is None:
            return np.asarray(counts, dtype=np.float64) / (self.neurons_per_gate * self.timesteps)
        return np.asarray(self.decode_values, np.float64)[np.asarray(counts).astype(np.int64)]

    def layout(self, unit_index: np.ndarray, fixed: bool) -> NeuronArray:
        """Neuron array for a batch of inputs: input slot i belongs to unit ``unit_index[i]``."""
        unit_index = np.asarray(unit_index, dtype=np.int64).ravel()
        n = self.neurons_per_gate
        ar = self.params(fixed)
        per = np.repeat(unit_index, n)
        slot = np.repeat(np.arange(len(unit_index)), n)
        channel = np.tile(np.arange(n), len(unit_index))
        synapses = []
        for c in ar.connections:
            if c.from_host:
                column = slot
            else:
                phases = c.table.shape[1] // n
                column = (slot % phases) * n + channel
            synapses.append(Synapses(c.source, np.asarray(c.weight)[per], int(c.weight_exp), column,
                                     None if c.table is None else np.asarray(c.table), int(c.bits)))
        return NeuronArray(fixed=fixed, timesteps=self.timesteps, neurons_per_gate=n,
                           unit_index=unit_index, synapses=tuple(synapses),
                           bias_mant=np.asarray(ar.bias_mant)[per], bias_exp=np.asarray(ar.bias_exp)[per],
                           du=ar.du, dv=ar.dv, vth=ar.vth, reset_windows=self.reset_windows)


@dataclass(frozen=True)
class MappedNetwork:
    """Everything mapping produces for one checkpoint: its groups and their provenance."""

    variant: str
    groups: Mapping[str, NeuronGroup]
    options: Mapping[str, object]
    checkpoint: Mapping[str, object]  # path, sha256, iter_num, val_loss
    versions: Mapping[str, object] = field(default_factory=dict)

    def group(self, name: str) -> NeuronGroup:
        if name not in self.groups:
            raise KeyError(f"mapped network has no group {name!r} (groups: {', '.join(self.groups)})")
        return self.groups[name]

    @property
    def hooks(self) -> tuple[str, ...]:
        """The model hooks the groups answer, in group order."""
        return tuple(dict.fromkeys(g.address.hook for g in self.groups.values()))

    @property
    def alternatives(self) -> tuple[str, ...]:
        """The hooks several groups answer, one per mode (``--temporal`` chooses)."""
        return tuple(h for h in self.hooks if len({g.address.mode for g in self.groups.values()
                                                    if g.address.hook == h}) > 1)

    def for_hook(self, hook: str, mode: str = "rate") -> NeuronGroup:
        """The group answering `hook` in `mode`, or its rate group where the hook has no such mode."""
        answering = [g for g in self.groups.values() if g.address.hook == hook]
        if not answering:
            raise KeyError(f"mapped network has no group for hook {hook!r} (hooks: {', '.join(self.hooks)})")
        chosen = [g for g in answering if g.address.mode == mode] or \
            [g for g in answering if g.address.mode == "rate"] or answering
        return chosen[0]

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(w for g in self.groups.values() for w in g.warnings)

    @property
    def mapping_options(self) -> MappingOptions:
        """The window it was mapped at (a saved mapping without a level set: uniform, format 1)."""
        o = self.options
        return MappingOptions(timesteps=int(o["timesteps"]), neurons_per_gate=int(o["neurons_per_gate"]),
                              levels=str(o.get("levels", "uniform")))
