"""How faithfully a backend runs a mapped network: every gate unit against its trained sigmoid.

Used by ``map`` (and validate, the bundle, the benchmarks).  Each gate group's units
see a dense grid over their input range -- p in [0, 1] for attention heads (with
loads at 0 for lif-refractory), 0 .. the calibrated scale for CfC neurons and the
membrane -- plus values observed on validation text (refractory loads included).
The error of a unit is max |spike rate - trained fire| over those inputs, next to
the mapper's exact worst case over the whole input range and the 1/(2NT) limit.
The hard membrane (a stateful LIF neuron, not a sigmoid gate) is checked for
bit-exactness against its twin on an observed input sequence instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ember_neuro.backends import registry
from ember_neuro.errors import BadInput
from ember_neuro.mappers import MappedNetwork, NeuronGroup, gate_counts
from ember_neuro.mappers.gate import FIDELITY_MARGIN
from ember_neuro.models.checkpoint import Checkpoint

GRID_POINTS = 1001
OBSERVED_PER_UNIT = 2000
INPUTS_PER_GROUP = 2**17  # per-neuron gates (hundreds of units) get fewer points per unit


def points_per_unit(group: NeuronGroup, wanted: int) -> int:
    """`wanted` inputs per unit, fewer for large groups (at least 129), so a check stays seconds."""
    return int(min(wanted, max(129, INPUTS_PER_GROUP // (2 * len(group.units)))))


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
    """The sigmoid-gate groups (with a dither): what the fidelity bar applies to."""
    return {name: g for name, g in net.groups.items() if g.levels.size}


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


@torch.no_grad()
def observed_inputs(ck: Checkpoint, net: MappedNetwork, data_path: str | None,
                    per_unit: int = OBSERVED_PER_UNIT, seed: int = 0) -> tuple[dict[str, UnitInputs], str]:
    """Gate inputs the model produces on validation text, per group, up to `per_unit` per unit.

    Attention: the causal probabilities of each head (and their column and previous-layer
    loads); Liquid Ember: |h| of each CfC neuron; the membrane: V entering each layer's fire
    (the hard membrane's sequence: ||attn_out|| of every layer).
    """
    from ember_neuro import gates
    from ember_neuro.models.data import load_data

    if ck.vocab is None:
        raise BadInput(f"{ck.path} has no vocabulary (config.vocab) to read text with")
    data = load_data(data_path, vocab=ck.vocab)
    x, _ = data.val_batches(1, 4, ck.config.block_size, seed=seed)[0]
    seen: dict[str, list] = {name: [] for name in net.groups}
    t = x.shape[1]
    causal = torch.tril(torch.ones(t, t, dtype=torch.bool))

    def attention(layer, p, theta, k, loads=None):
        heads = torch.arange(p.shape[1]).view(1, -1, 1, 1).expand_as(p)
        live = causal.expand_as(p)
        values = {"input": p[live]}
        for name, load in (loads or {}).items():
            values[name] = load.expand_as(p)[live]
        seen["attention"].append((layer, heads[live], values))
        return gates.fire_curve(p, theta, k)

    def hidden(layer, h, theta, k, loads=None):
        neurons = torch.arange(h.shape[-1]).expand_as(h).reshape(-1)
        seen["hidden"].append((layer, neurons, {"input": h.abs().reshape(-1)}))
        return gates.fire_curve(h, theta, k)

    def membrane(layer, v, importance):
        seen["membrane"].append((layer, torch.zeros(v.numel(), dtype=torch.long), {"input": v.reshape(-1)}))
        if "membrane_hard" in seen:
            seen["membrane_hard"].append((layer, None, {"input": importance.reshape(-1)}))
        block = ck.model.transformer.h[layer]
        return gates.membrane_fire(v, block.temporal_threshold, block.temporal_steepness)

    ck.model(x, fire_fn=hidden if "hidden" in net.groups else attention,
             **({"membrane_fn": membrane} if "membrane" in net.groups else {}))
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, group in gate_groups(net).items():
        unit_of = {(u.layer, u.head): i for i, u in enumerate(group.units)}
        keep = points_per_unit(group, per_unit)
        parts = []
        for layer, index, values in seen[name]:
            units = torch.tensor([unit_of[(layer, int(i))] for i in range(int(index.max()) + 1)])[index]
            for unit in units.unique().tolist():
                where = torch.nonzero(units == unit).reshape(-1)
                pick = where[torch.randperm(where.numel(), generator=g)[:keep]]
                parts.append(UnitInputs(np.full(pick.numel(), unit),
                                        {s: v[pick].double().numpy() for s, v in values.items()}))
        out[name] = sum(parts[1:], parts[0]) if parts else grid_inputs(group, 0)
    if "membrane_hard" in net.groups:  # the sequence of layers, token by token
        seq = [values["input"].double().numpy() for _, _, values in seen["membrane_hard"]]
        tokens = min(per_unit, seq[0].size)
        out["membrane_hard"] = UnitInputs(np.zeros(tokens, np.int64),
                                          {"input": np.stack([s[:tokens] for s in seq])})
    return out, data.source


def run_on(group: NeuronGroup, backend: str, inputs: UnitInputs, timeout_s: float,
           check_twin: bool = True) -> tuple[np.ndarray, bool | None]:
    """(raster (W, T, M) of the inputs on `backend`, bit-exact vs the backend's twin or None).

    A gate group runs one window with every input; the hard membrane runs its layer
    sequence (values (L, tokens)), one window per layer, state carried.
    """
    b = registry.require(backend)
    fixed = bool(b.fixed)
    if group.reset_windows > 1:
        array = group.layout(np.zeros(inputs.values["input"].shape[1], np.int64), fixed)
        payload = np.stack([group.encode(row, fixed, array.unit_index) for row in inputs.values["input"]])
    else:
        array = group.layout(inputs.unit_index, fixed)
        payload = group.encode(inputs.values, fixed, inputs.unit_index)[None]
    raster = b.rasters(array, payload, timeout_s)
    exact = None
    if check_twin and b.twin is not None:
        twin = registry.get(b.twin)
        try:
            twin.check()
        except registry.BackendUnavailable:
            return raster, None
        other = twin.rasters(array, payload, timeout_s)
        exact = bool(other.shape == raster.shape and np.array_equal(raster, other))
    return raster, exact


def unit_rows(group: NeuronGroup, rates: np.ndarray, inputs: UnitInputs) -> list[dict[str, Any]]:
    """One row per unit: trained parameters, realised weights, measured and exact worst error."""
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
    if "membrane_hard" in net.groups and observed and "membrane_hard" in observed:
        raster, exact = run_on(net.group("membrane_hard"), backend, observed["membrane_hard"], timeout_s,
                               check_twin)
        out["bit_exact"]["membrane_hard"] = exact
        out["membrane_hard_spike_fraction"] = float(raster.mean())
    return out
