"""How faithfully a backend runs a mapped network: every gate unit against its trained sigmoid.

Used by ``map`` (and validate, the bundle, the benchmarks).  Each rate group's units see a
dense grid over their first input's range -- [0, 1] for probabilities (further inputs such as
refractory loads at 0), 0 .. the calibrated scale for scaled inputs (CfC outputs, the
membrane) -- plus values observed on validation text (deploy/calibrate.py, every input).  The
error of a unit is max |spike rate - trained fire| over those inputs, next to the mapper's
exact worst case over the whole input range and the 1/(2NT) limit.  A group whose state
carries across windows (the hard membrane: a stateful LIF neuron, not a sigmoid gate) is
checked for bit-exactness against its twin on an observed input sequence instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ember_neuro.backends import registry
from ember_neuro.mappers import MappedNetwork, NeuronGroup, gate_counts
from ember_neuro.mappers.gate import FIDELITY_MARGIN
from ember_neuro.mappers.network import lane_packing, pack_windows

GRID_POINTS = 1001
INPUTS_PER_GROUP = 2**17  # per-neuron gates (hundreds of units) get fewer points per unit
NEURONS_PER_GROUP = 2**20  # ... and many neurons per gate fewer too: memory and time grow with neurons


def points_per_unit(group: NeuronGroup, wanted: int) -> int:
    """`wanted` inputs per unit, fewer for large groups (at least 129), so a check stays seconds and
    its rasters and drives (T x inputs x N) stay small: the grid and the observed inputs each get at
    most half of INPUTS_PER_GROUP inputs and of NEURONS_PER_GROUP neurons (the paper's 36 heads at
    N = 32: 455 of each per head instead of 1,001 + 2,000; 3.5 M neurons were a 6 GB peak)."""
    units = len(group.units)
    cap = min(INPUTS_PER_GROUP // (2 * units), NEURONS_PER_GROUP // (2 * units * group.neurons_per_gate))
    return int(min(wanted, max(129, cap)))


@dataclass
class UnitInputs:
    """Inputs of a group's units: ``values[source][i]`` evaluated by unit ``unit_index[i]``."""

    unit_index: np.ndarray
    values: dict[str, np.ndarray]

    def __add__(self, other: UnitInputs) -> UnitInputs:
        return UnitInputs(np.concatenate([self.unit_index, other.unit_index]),
                          {s: np.concatenate([v, other.values[s]]) for s, v in self.values.items()})

    def of(self, unit: int) -> np.ndarray:
        return self.unit_index == unit


def gate_groups(net: MappedNetwork) -> dict[str, NeuronGroup]:
    """The sigmoid-gate groups (rate-coded, with a dither): what the fidelity bar applies to."""
    return {name: g for name, g in net.groups.items() if not g.carries_state}


def carried_groups(net: MappedNetwork) -> dict[str, NeuronGroup]:
    """The groups whose state carries across windows (the hard membrane): checked spike for spike."""
    return {name: g for name, g in net.groups.items() if g.carries_state}


def grid_inputs(group: NeuronGroup, points: int | None = None) -> UnitInputs:
    """Each unit over ``points`` values (default GRID_POINTS, fewer for large groups) spanning its
    first input's range; further inputs 0.  Input i = b U + u (grid point b, unit u): the NIR
    export's layout."""
    u = len(group.units)
    points = points_per_unit(group, GRID_POINTS) if points is None else points
    grid = np.linspace(0.0, 1.0, points)
    idx = np.tile(np.arange(u), points)
    scale = group.fixed_params.connection("input").scale
    x = np.repeat(grid, u) * (1.0 if scale is None else np.asarray(scale, np.float64)[idx])
    values = {src: np.zeros(idx.size) for src in group.fixed_params.host_sources}
    values["input"] = x
    return UnitInputs(idx, values)


CHIP_CHECK_LANES = 32  # lanes per unit of the chip-side network `map` checks its counts on


def chip_side_exact(b: registry.Backend, group: NeuronGroup, unit_index: np.ndarray, payload: np.ndarray,
                    raster: np.ndarray, timeout_s: float) -> bool | None:
    """Whether the backend's chip-side window (if it builds one) answers the same spike counts as its
    per-step raster for the same inputs; None where it has none (float, the hard membrane, others).

    The inputs go through a compact network -- CHIP_CHECK_LANES lanes per unit, as many windows
    as the most inputs of a unit need -- the way hybrid inference feeds it.
    """
    if not (b.persistent and b.fixed):
        return None
    units, lanes, n_in = len(group.units), CHIP_CHECK_LANES, np.asarray(unit_index).size
    window, lane, windows = lane_packing(unit_index, units, lanes)
    packed, live = pack_windows(np.asarray(payload).reshape(-1, n_in), window, lane, windows, units * lanes)
    array = group.layout(np.repeat(np.arange(units), lanes), True)
    with b.open(array, timeout_s, bridge="chip-side") as runner:
        if not hasattr(runner, "run_counts"):
            return None
        counts = runner.run_counts(packed, live)
    expected = gate_counts(raster[0].sum(axis=0), group.neurons_per_gate)
    return bool(np.array_equal(counts[window, lane], expected))


def run_on(group: NeuronGroup, backend: str, inputs: UnitInputs, timeout_s: float,
           check_twin: bool = True) -> tuple[np.ndarray, bool | None]:
    """(raster (W, T, M) of the inputs on `backend`, bit-exact vs the backend's twin or None).

    A gate group runs one window with every input; the hard membrane runs its layer
    sequence (values (L, tokens)), one window per layer, state carried.  Where the backend also
    builds a chip-side window (Lava fixed point), its counts must equal the raster's too.
    """
    b = registry.require(backend)
    fixed = bool(b.fixed)
    if group.carries_state:
        array = group.layout(np.zeros(inputs.values["input"].shape[1], np.int64), fixed)
        payload = np.stack([group.encode(row, fixed, array.unit_index) for row in inputs.values["input"]])
    else:
        array = group.layout(inputs.unit_index, fixed)
        payload = group.encode(inputs.values, fixed, inputs.unit_index)[None]
    raster = b.rasters(array, payload, timeout_s)
    exact = None
    if check_twin and not group.carries_state:
        exact = chip_side_exact(b, group, inputs.unit_index, payload, raster, timeout_s)
        if exact is False:
            return raster, False
    if check_twin and b.twin is not None:
        twin = registry.get(b.twin)
        try:
            twin.check()
        except registry.BackendUnavailable:
            return raster, None
        other = twin.rasters(array, payload, timeout_s)
        exact = bool(other.shape == raster.shape and np.array_equal(raster, other)) and exact is not False
    return raster, exact


def unit_rows(group: NeuronGroup, rates: np.ndarray, inputs: UnitInputs) -> list[dict[str, Any]]:
    """One row per unit: trained parameters, realised weights, measured and exact worst error."""
    constant = group.host_constant
    if constant is not None:  # a host-constant unit answers its constant, not its neurons' rate
        c = np.asarray(constant, np.float64)[inputs.unit_index]
        rates = np.where(np.isnan(c), rates, c)
    errors = np.abs(rates - group.target(inputs.values, inputs.unit_index))
    fp = group.fixed_params
    w_in, w_d = fp.connection("input").weight, fp.connection("dither").weight
    rows = []
    for i, u in enumerate(group.units):
        err = float(errors[inputs.of(i)].max(initial=0.0))
        row = {"group": group.name, "name": u.name, "layer": u.layer, "head": u.head, "theta": u.theta,
               "leak": u.leak, "k": u.k, "neurons": group.neurons_per_gate,
               "w_in": int(w_in[i]), "w_dither": int(w_d[i]),
               "k_effective": float(group.k_effective[i]),
               "bias_mant": int(fp.bias_mant[i]), "bias_exp": int(fp.bias_exp[i]),
               "max_abs_error": err, "bound": group.bound,
               "fixed_worst_case_error": float(group.fixed_worst_error[i]),
               "within": bool(err <= group.bound + FIDELITY_MARGIN)}
        if not group.on_neurons[i]:  # computed on the host: no neurons, its error is the constant's
            row.update(host_constant=float(constant[i]), neurons=0, fixed_worst_case_error=err)
        for c in fp.connections[1:]:
            if c.from_host:
                row[f"w_{c.source}"] = int(c.weight[i])
        scale = fp.connection("input").scale
        if scale is not None and not np.all(np.asarray(scale) == 1.0):
            row["input_scale"] = float(np.asarray(scale)[i])
        rows.append(row)
    return rows


def measure(net: MappedNetwork, backend: str, observed: dict[str, UnitInputs] | None, timeout_s: float,
            check_twin: bool = True) -> dict[str, Any]:
    """Every gate group on `backend` over grid + observed inputs; the hard membrane's sequence."""
    out: dict[str, Any] = {"groups": {}, "rows": [], "bit_exact": {}}
    for name, group in gate_groups(net).items():
        inputs = grid_inputs(group)
        if observed and name in observed:
            inputs = inputs + observed[name]
        raster, exact = run_on(group, backend, inputs, timeout_s, check_twin)
        rates = group.decode(gate_counts(raster[0].sum(axis=0), group.neurons_per_gate))
        rows = unit_rows(group, rates, inputs)
        out["groups"][name] = {"inputs": inputs, "rates": rates, "rows": rows}
        out["rows"] += rows
        out["bit_exact"][name] = exact
    for name, group in carried_groups(net).items():
        if observed and name in observed:
            raster, exact = run_on(group, backend, observed[name], timeout_s, check_twin)
            out["bit_exact"][name] = exact
            out[f"{name}_spike_fraction"] = float(raster.mean())
    return out
