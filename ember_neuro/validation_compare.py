"""Run one neuron array on six simulators and measure how far they agree.

Why this module: the validator's numbers -- spike agreement and rate cosine per
simulator pair, every mismatch classified by cause, per-head error against the
sigmoid, the NIR round trip and the error-vs-T sweep -- are computation, kept
apart from the CLI (ember_neuro.validate) and the report (validation_report) so
each can be read and tested on its own.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np

from ember_neuro import reference as R
from ember_neuro.gates import fire_curve_np
from ember_neuro.mappers.description import MappedGates, NeuronArray, gate_counts

SIMULATORS = ("lava-float", "lava-fixed", "emulator-float", "emulator-fixed", "snntorch", "norse")
FLOAT_SIMS = ("lava-float", "emulator-float", "snntorch", "norse")
FIXED_SIMS = ("lava-fixed", "emulator-fixed")
GRID_POINTS = 1001
SWEEP_T = (8, 16, 32, 64)
KEPT = 1000  # mismatches kept per pair in report.json
BAR_AGREE, BAR_EXCESS = 0.9999, 0.002


def pair_key(a: str, b: str) -> str:
    return f"{a}/{b}"


def raster_gate_counts(raster: np.ndarray, n: int) -> np.ndarray:
    """(T, I*N) raster -> spike count per input (I,)."""
    return gate_counts(raster.sum(axis=0), n)


def build_inputs(n_units: int, observed: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(unit_index, p): the grid first in NIR order (b*U + u), then each unit's observed p."""
    grid = np.linspace(0.0, 1.0, GRID_POINTS)
    idx = [np.tile(np.arange(n_units), GRID_POINTS)] + [np.full(len(o), u) for u, o in enumerate(observed)]
    return np.concatenate(idx), np.concatenate([np.repeat(grid, n_units), *observed])


def run_all(mapped: MappedGates, unit_index: np.ndarray, p: np.ndarray, timeout_s: float,
            step: Any) -> tuple[dict[str, np.ndarray], NeuronArray, NeuronArray]:
    """Rasters (T, M) of the same neurons and inputs on every simulator."""
    from ember_neuro.emulator import emulate
    from ember_neuro.lava_backend import run_gate_array

    fa, qa = mapped.layout(unit_index, fixed=False), mapped.layout(unit_index, fixed=True)
    xf, xq = mapped.encode(p, fixed=False), mapped.encode(p, fixed=True)
    runs = {
        "lava-float": lambda: run_gate_array(fa, xf, timeout_s=timeout_s),
        "lava-fixed": lambda: run_gate_array(qa, xq, timeout_s=timeout_s),
        "emulator-float": lambda: emulate(fa, xf, record=True)[1],
        "emulator-fixed": lambda: emulate(qa, xq, record=True)[1],
        "snntorch": lambda: R.run_snntorch(fa, xf),
        "norse": lambda: R.run_norse(fa, xf),
    }
    out = {}
    for name in SIMULATORS:
        step(name)
        out[name] = np.asarray(runs[name](), dtype=bool)
    return out, fa, qa


def fixed_drive(mapped: MappedGates, qa: NeuronArray, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point v (T, M) of the memoryless neuron, and the same in logit units.

    Exact for the mapping's neurons: u forgets every step and, the dither levels
    ascending, a residual of v after a failed step cannot flip a later one.
    """
    from ember_neuro.emulator import lava_fixed_bias, lava_fixed_weights

    inp = np.arange(qa.size) // qa.neurons_per_gate
    w_in = lava_fixed_weights(qa.w_in, qa.n_inputs)
    w_d = lava_fixed_weights(qa.w_dither, qa.neurons_per_gate)

    def shift(x: np.ndarray, e: int) -> np.ndarray:
        return x >> -e if e <= 0 else x << e

    d = np.asarray(qa.dither, np.int64)[:, qa.channel]
    drive = (shift(w_in * np.asarray(xq, np.int64)[inp], qa.in_weight_exp)[None]
             + shift(w_d * d, qa.dither_weight_exp))
    v = (drive << 6) + lava_fixed_bias(qa.bias_mant, qa.bias_exp)[None]
    return v, v / (64.0 * 2.0 ** (mapped.input_bits + qa.in_weight_exp) * np.maximum(w_d, 1))


def compare(rasters: dict[str, np.ndarray], fa: NeuronArray, xf: np.ndarray, v_float: np.ndarray,
            v_fixed: np.ndarray, v_fixed_logit: np.ndarray, vth_fixed: int) -> dict[str, dict]:
    """Per pair: agreement, rate cosine, mismatch count and every mismatch's cause."""
    out: dict[str, dict] = {}
    n = fa.neurons_per_gate
    for a, b in itertools.combinations(SIMULATORS, 2):
        ra, rb = rasters[a], rasters[b]
        diff = ra != rb
        rec: dict[str, Any] = {"agreement": R.spike_agreement(ra, rb), "rate_cosine": R.rate_cosine(ra, rb),
                               "mismatches": int(diff.sum()),
                               "max_count_diff": int(np.abs(raster_gate_counts(ra, n)
                                                            - raster_gate_counts(rb, n)).max())}
        kinds = {a in FLOAT_SIMS, b in FLOAT_SIMS}
        if kinds == {True}:
            mism = R.find_mismatches(fa, xf, ra, rb)
            rec["causes"] = _count(m.cause for m in mism)
            rec["listed"] = [m.__dict__ | {"unit": int(fa.unit_index[m.neuron // n])} for m in mism]
        elif kinds == {False}:  # two fixed-point models of one integer arithmetic: no excuse
            rec["causes"] = {"unexplained": rec["mismatches"]} if rec["mismatches"] else {}
            ts, ms = np.nonzero(diff)
            rec["listed"] = [{"t": int(t), "neuron": int(m), "a": bool(ra[t, m]), "b": bool(rb[t, m]),
                              "cause": "unexplained"} for t, m in zip(ts[:KEPT], ms[:KEPT], strict=True)]
        else:  # float vs fixed: explained when each side's own arithmetic predicts its spike
            fl, fx = (ra, rb) if a in FLOAT_SIMS else (rb, ra)
            ok = ((v_float > fa.vth) == fl) & ((v_fixed > vth_fixed) == fx)
            rec["causes"] = {k: v for k, v in (("fixed-point quantisation", int((diff & ok).sum())),
                                                ("unexplained", int((diff & ~ok).sum()))) if v}
            rec["max_abs_v_float_at_mismatch"] = float(np.abs(v_float[diff]).max(initial=0.0))
            rec["max_abs_v_fixed_at_mismatch"] = float(np.abs(v_fixed_logit[diff]).max(initial=0.0))
            ts, ms = np.nonzero(diff)
            rec["listed"] = [{"t": int(t), "neuron": int(m), "a": bool(ra[t, m]), "b": bool(rb[t, m]),
                              "v_float": float(v_float[t, m]), "v_fixed_logit": float(v_fixed_logit[t, m]),
                              "cause": "fixed-point quantisation" if ok[t, m] else "unexplained"}
                             for t, m in zip(ts[:KEPT], ms[:KEPT], strict=True)]
        out[pair_key(a, b)] = rec
    return out


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out


def head_errors(mapped: MappedGates, rasters: dict[str, np.ndarray], unit_index: np.ndarray,
                p: np.ndarray) -> dict[str, np.ndarray]:
    """Per simulator, per unit: max |spike rate - sigmoid(k(p - theta))| over all inputs."""
    theta = np.array([u.theta for u in mapped.units])[unit_index]
    k = np.array([u.k for u in mapped.units])[unit_index]
    target = fire_curve_np(p, theta, k)
    out = {}
    for name, r in rasters.items():
        err = np.abs(mapped.decode(raster_gate_counts(r, mapped.neurons_per_gate)) - target)
        out[name] = np.array([err[unit_index == u].max() for u in range(len(mapped.units))])
    return out


def nir_roundtrip(mapped: MappedGates, graph: Any, fa: NeuronArray, lava_float: np.ndarray,
                  timeout_s: float) -> dict[str, Any]:
    """Import the graph in snnTorch and Norse, run the grid, compare with Lava float."""
    from ember_neuro.export import nir_gates as G

    meta = G.check_gate_graph(graph)
    u = int(meta["n_units"])
    grid = np.linspace(0.0, 1.0, GRID_POINTS)
    na, x = G.gate_array(graph, GRID_POINTS), np.repeat(grid, u)
    width = na.size
    same = (na.timesteps == fa.timesteps and na.neurons_per_gate == fa.neurons_per_gate
            and width <= fa.size and na.vth == fa.vth and np.array_equal(na.dither, fa.dither)
            and all(np.array_equal(getattr(na, f), getattr(fa, f)[:width])
                    for f in ("w_in", "w_dither", "bias_mant", "channel")))
    if same:  # the file is this checkpoint's mapping: its grid part of the main Lava run
        ref = lava_float[:, :width]
    else:  # another mapping: Lava float on the graph's own neurons
        from ember_neuro.lava_backend import run_gate_array

        ref = np.asarray(run_gate_array(na, x, timeout_s=timeout_s), dtype=bool)
    try:
        names = [str(d["name"]) for d in json.loads(meta["units"])]
    except (KeyError, TypeError, ValueError):  # another writer's metadata: number the units
        names = [f"unit{i}" for i in range(u)]
    out: dict[str, Any] = {"matches_checkpoint": bool(same), "dt": float(meta["dt"]), "unit_names": names,
                           "timesteps": na.timesteps, "units": u, "agreement": {}, "details": {}}
    for name, load in (("snntorch", G.load_snntorch), ("norse", G.load_norse)):
        spikes = G.simulate(load(graph), graph, grid)
        mism = R.find_mismatches(na, x, ref, spikes)
        out["agreement"][name] = R.spike_agreement(ref, spikes)
        out["details"][name] = {"rate_cosine": R.rate_cosine(ref, spikes), "mismatches": len(mism),
                                "causes": _count(m.cause for m in mism),
                                "listed": [m.__dict__ for m in mism]}
    return out


def sweep_error(units: tuple, unit_index: np.ndarray, p: np.ndarray, n: int) -> list[dict[str, float]]:
    """Max |rate - sigmoid| (emulator fixed and float) against 1/(2NT), T in SWEEP_T."""
    from ember_neuro.emulator import gate_rates
    from ember_neuro.mappers.lif_gate import MAX_LEVELS, MappingOptions, map_gates

    theta = np.array([u.theta for u in units])[unit_index]
    k = np.array([u.k for u in units])[unit_index]
    target = fire_curve_np(p, theta, k)
    rows = []
    for t in (t for t in SWEEP_T if t * n <= MAX_LEVELS):
        m = map_gates(units, MappingOptions(timesteps=t, neurons_per_gate=n))
        err = {f: float(np.abs(gate_rates(m, unit_index, p, f) - target).max()) for f in (True, False)}
        rows.append({"timesteps": t, "bound": m.bound, "emulator-fixed": err[True],
                     "emulator-float": err[False]})
    return rows
