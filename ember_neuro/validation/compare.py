"""Run one neuron array on every validated simulator and measure how far they agree.

Why this module: the validator's numbers -- spike agreement and rate cosine per
simulator pair, every mismatch classified by cause, per-head error against the
sigmoid, the NIR round trip and the error-vs-T sweep -- are computation, kept
apart from the run (validation/pipeline.py) and the report (validation/report.py) so
each can be read and tested on its own.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ember_neuro.backends import numpy_ref, registry
from ember_neuro.deploy.fidelity import GRID_POINTS, UnitInputs
from ember_neuro.mappers import loihi
from ember_neuro.mappers.network import NeuronArray, NeuronGroup, gate_counts

SWEEP_T = (8, 16, 32, 64)
KEPT = 1000  # mismatches kept per pair in report.json
BAR_AGREE, BAR_EXCESS = 0.9999, 0.002


@dataclass(frozen=True)
class Roles:
    """Who a validation compares, by label: read from the registry's fields when it runs (a backend
    registered at run time takes part).  The simulators in report order, split by arithmetic; each
    arithmetic's reference (what a float or fixed result is compared with: NIR, rasters, the per-unit
    error); and the fast twins of the references that sweep the error over T."""

    simulators: tuple[str, ...]
    float_sims: tuple[str, ...]
    fixed_sims: tuple[str, ...]
    ref_float: str
    ref_fixed: str
    sweepers: Mapping[bool, registry.Backend]  # {fixed: backend}

    def fixed_pairs(self) -> list[str]:
        """The pairs of fixed-point simulators: one integer arithmetic, so any difference is a bug."""
        return [pair_key(a, b) for i, a in enumerate(self.fixed_sims) for b in self.fixed_sims[i + 1:]]

    def headline_pairs(self) -> list[str]:
        """The pairs ``validate`` prints: the fixed-point ones, the float reference against every other
        float simulator, and the two references against each other."""
        return [*self.fixed_pairs(), *(pair_key(self.ref_float, b) for b in self.float_sims
                                       if b != self.ref_float), pair_key(self.ref_float, self.ref_fixed)]

    def both_float(self, key: str) -> bool:
        return all(s in self.float_sims for s in key.split("/"))


def roles() -> Roles:
    """The roles as the registry gives them now."""
    sims = registry.validated()
    refs = {fixed: registry.reference(fixed) for fixed in (True, False)}
    return Roles(tuple(b.label for b in sims), tuple(b.label for b in sims if not b.fixed),
                 tuple(b.label for b in sims if b.fixed), refs[False].label, refs[True].label,
                 {fixed: registry.get(ref.twin) for fixed, ref in refs.items()})


# -- measures -----------------------------------------------------------------------------------


def spike_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of (step, neuron) slots with the same spike/no-spike."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"raster shapes differ: {a.shape} vs {b.shape}")
    return float((a == b).mean())


def rate_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of per-neuron spike rates (the NIR paper's measure); 1 if both silent."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ra, rb = a.reshape(a.shape[0], -1).mean(0), b.reshape(b.shape[0], -1).mean(0)
    na, nb = np.linalg.norm(ra), np.linalg.norm(rb)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(ra @ rb / (na * nb))


@dataclass(frozen=True)
class Mismatch:
    """One slot where two rasters differ, with why it may have flipped."""

    t: int
    neuron: int
    a: bool
    b: bool
    v: float  # reference membrane (before reset) at this slot
    margin: float  # v - vth: how far the reference was from a tie
    scale: float  # sum of |synapse terms| + |bias|: size of the summed terms
    cause: str  # "tie", "float64 rounding", "float32 rounding" or "unexplained"


def classify(margin: float, scale: float) -> str:
    """Name the finest arithmetic whose rounding can already move v across vth by `margin`.

    "float64 rounding": |margin| <= 4 ulp64 of the summed terms, so even a float64
    simulator with another operation order may disagree (float32 certainly may);
    "float32 rounding": only float32 arithmetic or float32-rounded parameters can;
    "unexplained": no rounding can, the simulators compute different things.
    """
    if margin == 0:
        return "tie"
    for name, eps in (("float64 rounding", 2.0**-52), ("float32 rounding", 2.0**-23)):
        if abs(margin) <= 4 * eps * max(scale, 1e-300):
            return name
    return "unexplained"


def float_reference(array: NeuronArray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(spikes (T, M), v before reset (T, M)) of one window on the numpy float reference."""
    if array.fixed:
        raise ValueError("the float reference runs float parameters: use layout(..., fixed=False)")
    spikes, v = numpy_ref.simulate(array, np.asarray(x, np.float64)[None])
    return spikes[0], v[0]


def term_scale(array: NeuronArray, x: np.ndarray) -> np.ndarray:
    """(T, M) sum of |synapse term| + |bias|: the size of what a float simulator adds up."""
    xb = array.check_payload(x)
    scale = sum(np.abs(t)[0][None] for t in numpy_ref.host_terms(array, xb))
    scale = scale + sum(np.abs(t) for t in numpy_ref.table_terms(array))
    return scale + np.abs(np.asarray(array.bias_mant, np.float64))[None]


def find_mismatches(array: NeuronArray, x: np.ndarray, a: np.ndarray, b: np.ndarray) -> list[Mismatch]:
    """Every slot where rasters a and b differ, closest-to-threshold first.

    The margin comes from :func:`float_reference`; a mismatch far from threshold
    ("unexplained") is a semantic difference, not rounding.
    """
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape or a.shape != (array.timesteps, array.size):
        raise ValueError(f"rasters must be {(array.timesteps, array.size)}: {a.shape}, {b.shape}")
    _, v = float_reference(array, x)
    scale = term_scale(array, x)
    ts, ms = np.nonzero(a != b)
    out = []
    for t, m in zip(ts.tolist(), ms.tolist(), strict=True):
        margin = float(v[t, m] - array.vth)
        out.append(Mismatch(t, m, bool(a[t, m]), bool(b[t, m]), float(v[t, m]), margin,
                            float(scale[t, m]), classify(margin, float(scale[t, m]))))
    return sorted(out, key=lambda mm: abs(mm.margin))


# -- the validation run -------------------------------------------------------------------------


def pair_key(a: str, b: str) -> str:
    return f"{a}/{b}"


def raster_gate_counts(raster: np.ndarray, n: int) -> np.ndarray:
    """(T, I*N) raster -> spike count per input (I,)."""
    return gate_counts(raster.sum(axis=0), n)


def run_all(group: NeuronGroup, inputs: UnitInputs, timeout_s: float,
            step: Any) -> tuple[dict[str, np.ndarray], NeuronArray, NeuronArray]:
    """Rasters (T, M) of the same neurons and inputs on every validated simulator."""
    arrays = {f: group.layout(inputs.unit_index, fixed=f) for f in (False, True)}
    payloads = {f: group.encode(inputs.values, f, inputs.unit_index) for f in (False, True)}
    out = {}
    for backend in registry.validated():
        step(backend.label)
        f = bool(backend.fixed)
        out[backend.label] = np.asarray(backend.rasters(arrays[f], payloads[f], timeout_s)[0], dtype=bool)
    return out, arrays[False], arrays[True]


def fixed_drive(mapped: NeuronGroup, qa: NeuronArray, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point v (T, M) of the memoryless neuron, and each neuron's logit unit (M,): v / unit is
    the drive in logits (computed where it is needed, not as another (T, M) array).

    Exact for the mapping's neurons: u forgets every step and, the dither levels
    ascending, a residual of v after a failed step cannot flip a later one.  One
    logit is ``2^6 2^(bits + e) b`` units of v (b: the neuron's dither weight).
    """
    a_in = numpy_ref.synaptic_input(qa, xq)[0]
    v = loihi.memoryless_drive(a_in, numpy_ref.bias(qa)[None])
    dither = qa.synapse("dither")
    w_d = loihi.lava_weights(dither.weight, qa.source_width)
    unit = 2.0 ** (loihi.ACT_SHIFT + mapped.fixed_params.connection("dither").bits + dither.weight_exp) \
        * np.maximum(w_d, 1)
    return v, np.broadcast_to(unit, v.shape[-1:])


def compare(rasters: dict[str, np.ndarray], fa: NeuronArray, xf: np.ndarray, v_float: np.ndarray,
            v_fixed: np.ndarray, logit_unit: np.ndarray, vth_fixed: int) -> dict[str, dict]:
    """Per pair: agreement, rate cosine, mismatch count and every mismatch's cause."""
    out: dict[str, dict] = {}
    n = fa.neurons_per_gate
    r = roles()
    for a, b in itertools.combinations(r.simulators, 2):
        ra, rb = rasters[a], rasters[b]
        diff = ra != rb
        rec: dict[str, Any] = {"agreement": spike_agreement(ra, rb), "rate_cosine": rate_cosine(ra, rb),
                               "mismatches": int(diff.sum()),
                               "max_count_diff": int(np.abs(raster_gate_counts(ra, n)
                                                            - raster_gate_counts(rb, n)).max())}
        kinds = {a in r.float_sims, b in r.float_sims}
        if kinds == {True}:
            mism = find_mismatches(fa, xf, ra, rb)
            rec["causes"] = _count(m.cause for m in mism)
            rec["listed"] = [m.__dict__ | {"unit": int(fa.unit_index[m.neuron // n])} for m in mism]
        elif kinds == {False}:  # two fixed-point models of one integer arithmetic: no excuse
            rec["causes"] = {"unexplained": rec["mismatches"]} if rec["mismatches"] else {}
            ts, ms = np.nonzero(diff)
            rec["listed"] = [{"t": int(t), "neuron": int(m), "a": bool(ra[t, m]), "b": bool(rb[t, m]),
                              "cause": "unexplained"} for t, m in zip(ts[:KEPT], ms[:KEPT], strict=True)]
        else:  # float vs fixed: explained when each side's own arithmetic predicts its spike
            fl, fx = (ra, rb) if a in r.float_sims else (rb, ra)
            ok = ((v_float > fa.vth) == fl) & ((v_fixed > vth_fixed) == fx)
            rec["causes"] = {k: v for k, v in (("fixed-point quantisation", int((diff & ok).sum())),
                                                ("unexplained", int((diff & ~ok).sum()))) if v}
            rec["max_abs_v_float_at_mismatch"] = float(np.abs(v_float[diff]).max(initial=0.0))
            ts, ms = np.nonzero(diff)
            logit = v_fixed[ts, ms] / logit_unit[ms]  # the fixed drive in logits, at the mismatches only
            rec["max_abs_v_fixed_at_mismatch"] = float(np.abs(logit).max(initial=0.0))
            rec["listed"] = [{"t": int(t), "neuron": int(m), "a": bool(ra[t, m]), "b": bool(rb[t, m]),
                              "v_float": float(v_float[t, m]), "v_fixed_logit": float(logit[j]),
                              "cause": "fixed-point quantisation" if ok[t, m] else "unexplained"}
                             for j, (t, m) in enumerate(zip(ts[:KEPT], ms[:KEPT], strict=True))]
        out[pair_key(a, b)] = rec
    return out


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out


def head_errors(mapped: NeuronGroup, rasters: dict[str, np.ndarray],
                inputs: UnitInputs) -> dict[str, np.ndarray]:
    """Per simulator, per unit: max |spike rate - trained fire| over all inputs."""
    target = mapped.target(inputs.values, inputs.unit_index)
    out = {}
    for name, r in rasters.items():
        err = np.abs(mapped.decode(raster_gate_counts(r, mapped.neurons_per_gate)) - target)
        out[name] = np.array([err[inputs.of(u)].max(initial=0.0) for u in range(len(mapped.units))])
    return out


def is_prefix(na: NeuronArray, fa: NeuronArray) -> bool:
    """Whether `na`'s neurons are the first neurons of `fa` (same window, weights and inputs)."""
    w = na.size
    if (na.timesteps, na.neurons_per_gate, na.vth, na.du, na.dv) != \
            (fa.timesteps, fa.neurons_per_gate, fa.vth, fa.du, fa.dv) or w > fa.size:
        return False
    if [s.source for s in na.synapses] != [s.source for s in fa.synapses]:
        return False
    same_syn = all(np.array_equal(a.weight, b.weight[:w]) and a.weight_exp == b.weight_exp
                   and np.array_equal(a.column, b.column[:w])
                   and (a.table is None) == (b.table is None)
                   and (a.table is None or np.array_equal(a.table, b.table))
                   for a, b in zip(na.synapses, fa.synapses, strict=True))
    return same_syn and np.array_equal(na.bias_mant, fa.bias_mant[:w])


def nir_roundtrip(mapped: NeuronGroup, graph: Any, fa: NeuronArray, lava_float: np.ndarray,
                  timeout_s: float, points: int = GRID_POINTS) -> dict[str, Any]:
    """Import the graph in snnTorch and Norse, run the grid, compare with Lava float.

    The grid is `points` values per unit over each unit's input range (the graph's
    first host input; the others 0), input i = b U + u -- the layout of the start
    of the main run, which is reused when the graph holds this mapping's neurons.
    """
    from ember_neuro.export import nir_gates as G

    meta = G.check_gate_graph(graph)
    u = int(meta["n_units"])
    grid = G.input_grid(graph, points)  # (B, U) raw values of the "input" source
    na = G.gate_array(graph, points)
    x = np.concatenate([grid.ravel()] + [np.zeros(grid.size)] * (len(na.host) - 1))
    width = na.size
    same = is_prefix(na, fa)
    if same:  # the file is this checkpoint's mapping: its grid part of the main Lava run
        ref = lava_float[:, :width]
    else:  # another mapping: Lava float on the graph's own neurons
        ref = registry.reference(False).rasters(na, x, timeout_s)[0]
    try:
        names = [str(d["name"]) for d in json.loads(meta["units"])]
    except (KeyError, TypeError, ValueError):  # another writer's metadata: number the units
        names = [f"unit{i}" for i in range(u)]
    out: dict[str, Any] = {"matches_checkpoint": bool(same), "dt": float(meta["dt"]), "unit_names": names,
                           "timesteps": na.timesteps, "units": u, "agreement": {}, "details": {}}
    for name, load in (("snntorch", G.load_snntorch), ("norse", G.load_norse)):
        spikes = G.simulate(load(graph), graph, grid)
        mism = find_mismatches(na, x, ref, spikes)
        out["agreement"][name] = spike_agreement(ref, spikes)
        out["details"][name] = {"rate_cosine": rate_cosine(ref, spikes), "mismatches": len(mism),
                                "causes": _count(m.cause for m in mism),
                                "listed": [m.__dict__ for m in mism]}
    return out


def sweep_error(remap: Any, inputs: UnitInputs, n: int) -> list[dict[str, float]]:
    """Max |rate - trained fire| against 1/(2NT), T in SWEEP_T, on the references' twins (the fast
    emulators, fixed point and float).  ``remap(t)`` maps the same units at window t (same N, same
    calibration)."""
    from ember_neuro.mappers.gate import MAX_LEVELS

    rows = []
    for t in (t for t in SWEEP_T if t * n <= MAX_LEVELS):
        m = remap(t)
        target = m.target(inputs.values, inputs.unit_index)
        row: dict[str, float] = {"timesteps": t, "bound": m.bound}
        for f, backend in roles().sweepers.items():
            payload = m.encode(inputs.values, f, inputs.unit_index)[None]
            counts = backend.gate_counts(m, inputs.unit_index, payload)[0]  # no (I*N)-long arrays where exact
            row[backend.label] = float(np.abs(m.decode(counts) - target).max())
        rows.append(row)
    return rows


