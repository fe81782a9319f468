"""Validate a checkpoint's mapped gates on six simulators, spike for spike, and through NIR.

    python -m ember_neuro.validate ckpt.pt [--timesteps 32] [--out DIR] [--force] [--json]
                                           [--nir FILE] [--grid-only] [--data TEXT]

Why: a spike-rate gate is only trustworthy if simulators written by other people
produce the same spikes from the same neurons.  One neuron array -- every gate
unit at a 1,001-point p grid (input i = b*U + u, the NIR layout) plus observed
attention probabilities -- runs on lava-float, lava-fixed (one Lava run per
arithmetic), emulator-float, emulator-fixed, snntorch and norse.  Every pair
gets the fraction of identical (step, neuron) slots and the rate cosine; every
slot where two float simulators differ is listed with its distance to threshold
and cause (reference.find_mismatches).  Float and fixed point legitimately
differ near threshold; those slots are explained by recomputing the fixed-point
drive.  The NIR round trip exports the gates (or reads --nir FILE), imports them
in snnTorch and Norse (dt passed explicitly) and compares with Lava float.
Error vs T (8..64) uses the fixed-point emulator (bit-exact with Lava).

DIR (default runs/validate-<ckpt stem>-T<T>) gets report.md, report.json,
gates.nir and the figures, all or nothing.  Exit 0: every bar met; 1: a bar
missed (report still written); 2: bad input; 3: a simulator failed at run time.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ember_neuro import plots
from ember_neuro import reference as R
from ember_neuro.gates import fire_curve_np
from ember_neuro.mappers.description import MappedGates, NeuronArray

SIMULATORS = ("lava-float", "lava-fixed", "emulator-float", "emulator-fixed", "snntorch", "norse")
FLOAT_SIMS = ("lava-float", "emulator-float", "snntorch", "norse")
FIXED_SIMS = ("lava-fixed", "emulator-fixed")
GRID_POINTS = 1001
OBSERVED_PER_UNIT = 2000
SWEEP_T = (8, 16, 32, 64)
RASTER_P = 40
LISTED = 100  # mismatches listed per pair in report.md (all are counted and classified)
KEPT = 1000  # mismatches kept per pair in report.json
BAR_AGREE, BAR_EXCESS = 0.9999, 0.002


class ValidateError(RuntimeError):
    """A request the validator refuses; the message is one line."""


def pair_key(a: str, b: str) -> str:
    return f"{a}/{b}"


def gate_counts(raster: np.ndarray, n: int) -> np.ndarray:
    """(T, I*N) raster -> spike count per input (I,)."""
    return raster.sum(axis=0).reshape(-1, n).sum(axis=1)


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
                               "max_count_diff": int(np.abs(gate_counts(ra, n) - gate_counts(rb, n)).max())}
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
        err = np.abs(mapped.decode(gate_counts(r, mapped.neurons_per_gate)) - target)
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


# -- figures ---------------------------------------------------------------------------------

STYLE = {"lava-float": ("tab:red", "-"), "emulator-float": ("tab:orange", "--"),
         "snntorch": ("tab:green", ":"), "norse": ("tab:purple", "-."),
         "lava-fixed": ("tab:blue", "-"), "emulator-fixed": ("tab:cyan", "--")}


def grid_rates(mapped: MappedGates, raster: np.ndarray) -> np.ndarray:
    """(G, U) spike rates of the grid part (inputs b*U + u come first)."""
    u = len(mapped.units)
    counts = gate_counts(raster[:, : GRID_POINTS * u * mapped.neurons_per_gate], mapped.neurons_per_gate)
    return mapped.decode(counts).reshape(GRID_POINTS, u)


def plot_transfer(path: Path, mapped: MappedGates, layer: int, rates: dict[str, np.ndarray]) -> None:
    """Every simulator's spike rate over the sigmoid, one panel per head (+ error strip)."""
    plt = plots._plt()
    heads = [i for i, u in enumerate(mapped.units) if u.layer == layer]
    cols = min(len(heads), 4)
    rows = (len(heads) + cols - 1) // cols
    fig, axes = plt.subplots(2 * rows, cols, figsize=(3.8 * cols, 4.4 * rows), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1] * rows})
    grid = np.linspace(0.0, 1.0, GRID_POINTS)
    for j, i in enumerate(heads):
        u = mapped.units[i]
        ax, ax_err = axes[2 * (j // cols)][j % cols], axes[2 * (j // cols) + 1][j % cols]
        target = fire_curve_np(grid, u.theta, u.k)
        ax.plot(grid, target, color="black", lw=2.2, alpha=0.35, label="σ(k(p−θ))")
        for name in SIMULATORS:
            color, ls = STYLE[name]
            ax.step(grid, rates[name][:, i], where="mid", color=color, ls=ls, lw=0.9, label=name)
            if name in ("lava-float", "lava-fixed"):
                ax_err.plot(grid, rates[name][:, i] - target, color=color, lw=0.7)
        ax.set_title(f"{u.name}  θ={u.theta:.3f}  k={u.k:.3f}", fontsize=9)
        ax.set_xlim(0, 1)
        for s in (1, -1):
            ax_err.axhline(s * mapped.bound, color="gray", ls="--", lw=0.8)
        ax_err.set_ylim(-1.6 * mapped.bound, 1.6 * mapped.bound)
        ax_err.set_xlabel("p", fontsize=8)
        if j == 0:
            ax.legend(fontsize=6, loc="upper left")
    for j in range(len(heads), rows * cols):
        axes[2 * (j // cols)][j % cols].axis("off")
        axes[2 * (j // cols) + 1][j % cols].axis("off")
    fig.suptitle(f"Layer {layer}, T={mapped.timesteps}: six simulators over the sigmoid "
                 f"(error strip: lava-float red, lava-fixed blue; dashed ±1/(2NT))", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_error_vs_t(path: Path, rows: list[dict[str, float]], n: int) -> None:
    """Measured max error (emulator fixed and float) against the 1/(2NT) limit, log-log."""
    plt = plots._plt()
    from matplotlib.ticker import NullFormatter

    ts = [r["timesteps"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    ax.loglog(ts, [r["bound"] for r in rows], "k--", lw=1.2, label=f"1/(2NT) limit, N={n}")
    ax.loglog(ts, [r["emulator-fixed"] for r in rows], "o-", color="tab:blue", label="emulator-fixed")
    ax.loglog(ts, [r["emulator-float"] for r in rows], "x:", color="tab:red", label="emulator-float")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(ts)
    ax.set_xticklabels([str(t) for t in ts])
    ax.set_xlabel("timesteps T")
    ax.set_ylabel("max |spike rate − σ(k(p−θ))|")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def raster_head(mapped: MappedGates) -> int:
    """The head whose fire curve changes most over p in [0, 1] (the most telling raster)."""
    span = [fire_curve_np(1.0, u.theta, u.k) - fire_curve_np(0.0, u.theta, u.k) for u in mapped.units]
    return int(np.argmax(span))


def plot_raster(path: Path, mapped: MappedGates, unit: int, rasters: dict[str, np.ndarray]) -> None:
    """RASTER_P p values x T steps of one head: Lava float, Lava fixed, and where they differ."""
    plt = plots._plt()
    u, n = len(mapped.units), mapped.neurons_per_gate
    b = np.rint(np.linspace(0, GRID_POINTS - 1, RASTER_P)).astype(int)
    cols = ((b * u + unit)[:, None] * n + np.arange(n)).ravel()
    fl, fx = rasters["lava-float"][:, cols].T, rasters["lava-fixed"][:, cols].T
    fig, axes = plt.subplots(1, 3, figsize=(11, 4.6), sharey=True)
    p = np.linspace(0.0, 1.0, GRID_POINTS)[b]
    extent = (0.5, mapped.timesteps + 0.5, len(cols) - 0.5, -0.5)
    for ax, img, title in ((axes[0], fl, "lava-float"), (axes[1], fx, "lava-fixed"),
                           (axes[2], fl != fx, "float ≠ fixed")):
        ax.imshow(img, aspect="auto", cmap="Greys" if title != "float ≠ fixed" else "Reds",
                  interpolation="nearest", extent=extent, vmin=0, vmax=1)
        ax.set_title(f"{title} ({int(img.sum())} {'slots' if '≠' in title else 'spikes'})", fontsize=9)
        ax.set_xlabel("window step t")
    ticks = np.arange(0, len(cols), max(1, len(cols) // 10))
    axes[0].set_yticks(ticks)
    axes[0].set_yticklabels([f"{p[i // n]:.2f}" for i in ticks], fontsize=7)
    axes[0].set_ylabel("p (row per neuron)")
    fig.suptitle(f"{mapped.units[unit].name}: spike raster, {RASTER_P} p values x T={mapped.timesteps}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- report ---------------------------------------------------------------------------------


def _mismatch_rows(listed: list[dict], names: list[str], unit_of: np.ndarray, p: np.ndarray,
                   n: int) -> list[str]:
    """Markdown rows of the first LISTED mismatches (input i = neuron // N has unit_of[i], p[i])."""
    rows = ["| t | neuron | unit | p | a | b | v (reference) | margin | cause |", "|" + "---|" * 9]
    for m in listed[:LISTED]:
        i = m["neuron"] // n
        rows.append(f"| {m['t']} | {m['neuron']} | {names[int(unit_of[i])]} | {p[i]:.9g} | {int(m['a'])} | "
                    f"{int(m['b'])} | {m['v']:.3e} | {m['margin']:.3e} | {m['cause']} |")
    if len(listed) > LISTED:
        rows.append(f"\n({len(listed) - LISTED} more in report.json; the causes above count all of them)")
    return rows


CAUSES = {
    "tie": "v equals vth exactly: every library fires on a strict `>`, so a tie is no spike",
    "float64 rounding": "|v - vth| within 4 float64 ulps of the summed terms: operation order decides",
    "float32 rounding": "|v - vth| within float32 rounding: a float32 parameter or operation decides",
    "unexplained": "no rounding explains it: the simulators compute different things (a bug)",
}


def _fixed_rows(listed: list[dict], names: list[str], unit_of: np.ndarray, p: np.ndarray,
                n: int) -> list[str]:
    """Markdown rows of float-vs-fixed (or fixed-vs-fixed) slots: each side's own v, in logits."""
    rows = ["| t | neuron | unit | p | a | b | v float | v fixed | cause |", "|" + "---|" * 9]
    for m in listed[:LISTED]:
        i = m["neuron"] // n
        rows.append(f"| {m['t']} | {m['neuron']} | {names[int(unit_of[i])]} | {p[i]:.9g} | {int(m['a'])} | "
                    f"{int(m['b'])} | {m.get('v_float', float('nan')):.3e} | "
                    f"{m.get('v_fixed_logit', float('nan')):.3e} | {m['cause']} |")
    if len(listed) > LISTED:
        rows.append(f"\n({len(listed) - LISTED} more in report.json)")
    return rows


def _pair_table(pairs: dict[str, dict]) -> list[str]:
    out = ["| pair | agreement | rate cosine | differing slots | max count diff per gate | causes |",
           "|---|---|---|---|---|---|"]
    for key, rec in pairs.items():
        causes = ", ".join(f"{v} {k}" for k, v in rec["causes"].items()) or "-"
        out.append(f"| {key} | {rec['agreement']:.7f} | {rec['rate_cosine']:.7f} | {rec['mismatches']} | "
                   f"{rec['max_count_diff']} | {causes} |")
    return out


def _nir_section(nr: dict, n: int) -> list[str]:
    how = "given with --nir" if nr["external"] else "exported from this checkpoint"
    same = ("the same neurons as this mapping, so compared with the grid part of the main Lava float run"
            if nr["matches_checkpoint"] else "not this mapping, so compared with its own Lava float run")
    out = [f"File `{nr['file']}` ({how}) holds {same}. Grid: {GRID_POINTS} p x {nr['units']} units, "
           f"T = {nr['timesteps']}.", "",
           "| importer | agreement vs Lava float | rate cosine | differing slots | causes |",
           "|---|---|---|---|---|"]
    for name in ("snntorch", "norse"):
        d = nr["details"][name]
        causes = ", ".join(f"{v} {k}" for k, v in d["causes"].items()) or "-"
        out.append(f"| {name} | {nr['agreement'][name]:.7f} | {d['rate_cosine']:.7f} | {d['mismatches']} | "
                   f"{causes} |")
    unit_of = np.tile(np.arange(nr["units"]), GRID_POINTS)
    p = np.repeat(np.linspace(0.0, 1.0, GRID_POINTS), nr["units"])
    for name in ("snntorch", "norse"):
        if nr["details"][name]["mismatches"]:
            out += ["", f"{name} mismatches:", "",
                    *_mismatch_rows(nr["details"][name]["listed"], nr["unit_names"], unit_of, p, n)]
    return out + [
        "", "Importer conventions that forced a choice:", "",
        f"* snnTorch's `import_from_nir` hard-codes dt = 1e-4 and sets beta = 1 - dt/tau, so the LIF is "
        f"exported with tau = dt = {nr['dt']:g} (beta = 0: memoryless, like du = dv = 1).",
        "* Norse's `from_nir` defaults to dt = 1e-3 (dt/tau = 10: spurious spikes); the graph's dt is "
        "passed explicitly.",
        "* snnTorch refuses per-neuron thresholds and non-zero v_leak: the per-gate offset -k*theta "
        "travels as the Affine bias, with threshold 0 for all neurons.",
        "* NIR has no time-varying source: the dither is an input (x[U:U+N] = dither[t]); the window "
        "reset, T, N and the host-side leak and renormalisation live in the graph metadata.",
        "* Both importers build float32 parameters (k, -k*theta): agreement with float64 Lava is exact "
        "except where |v| is within float32 rounding; such slots would be listed above.",
        "* The direct snntorch and norse runs (first table) are float64 with an explicit zero state "
        "(Norse's LIFCell would otherwise start at v = v_leak)."]


def render_markdown(r: dict, unit_index: np.ndarray, p: np.ndarray) -> str:
    """report.md: the tables, every mismatch with its cause, and the importer conventions."""
    names, n, pairs = r["unit_names"], r["neurons_per_gate"], r["pairs"]
    observed = (f" + {r['observed_per_unit']} observed p per unit from {r['observed_source']}"
                if r["observed_per_unit"] else "")
    out = [f"# Validation of `{r['checkpoint']['path']}` at T = {r['timesteps']}, N = {n}", "",
           f"{len(names)} gate units; {r['inputs']} inputs ({GRID_POINTS}-point p grid per unit{observed}); "
           f"{r['neurons']} neurons x {r['timesteps']} steps = {r['slots']} slots per simulator; "
           f"wall time {r['seconds']:.1f} s.", "",
           "**Bars:** " + ("all met." if r["passed"] else "MISSED: " + "; ".join(r["failures"])), "",
           "## Agreement, every pair", "",
           "`agreement` = fraction of identical (step, neuron) slots; `rate cosine` = cosine of "
           "per-neuron rates. Float simulators run the float mapping in float64, fixed ones the Loihi 2 "
           "integer mapping: float and fixed differ legitimately near threshold (other arithmetic).", "",
           *_pair_table(pairs), "", "## Mismatches between float simulators", "",
           f"Closest approach to threshold over all slots: |v - vth| = {r['closest_margin']:.3e} (how hard "
           "the comparison was: float32 rounding can only flip slots closer than ~1e-7).", ""]
    for key, rec in pairs.items():
        a, b = key.split("/")
        if a in FLOAT_SIMS and b in FLOAT_SIMS:
            out.append(f"* **{key}**: {rec['mismatches']} differing slots"
                       + (", listed below." if rec["mismatches"] else "."))
            if rec["mismatches"]:
                out += ["", *_mismatch_rows(rec["listed"], names, unit_index, p, n), ""]
    out += ["", "Causes: " + "; ".join(f"*{k}*: {v}" for k, v in CAUSES.items()) + ".", "",
            "## Fixed point vs float, and Lava vs emulator", ""]
    fixed = pairs[pair_key("lava-fixed", "emulator-fixed")]
    out += [f"lava-fixed vs emulator-fixed: {fixed['mismatches']} differing slots (the same integer "
            "arithmetic; any difference is a bug).", ""]
    if fixed["mismatches"]:
        out += [*_fixed_rows(fixed["listed"], names, unit_index, p, n), ""]
    fx = pairs[pair_key("lava-float", "lava-fixed")]
    same = ("the other float/fixed pairs differ in exactly these slots" if r["float_fixed_same_slots"]
            else "the other float/fixed pairs differ in other slots too: see the table above")
    out += [f"lava-float vs lava-fixed: {fx['mismatches']} differing slots ({1 - fx['agreement']:.4%}; "
            f"{same}). For each slot the float v and the "
            "fixed-point v (recomputed from the integer weights, payload and bias; in logit units) were "
            "checked to predict their own simulator's spike: "
            f"{fx['causes'].get('fixed-point quantisation', 0)} explained by fixed-point quantisation, "
            f"{fx['causes'].get('unexplained', 0)} unexplained. All lie within "
            f"|v_float| <= {fx['max_abs_v_float_at_mismatch']:.2e} logits of threshold, where the 12-bit p "
            "payload, the slope as a weight ratio a/b and the rounded bias and dither move the drive "
            f"across it. Per gate the counts differ by at most {fx['max_count_diff']} spike(s) per window.",
            ""]
    if fx["mismatches"]:
        out += [*_fixed_rows(fx["listed"], names, unit_index, p, n), ""]
    out += ["## Gate error per head (spike rate vs sigmoid(k(p - theta)), all inputs)", "",
            f"bound = 1/(2NT) = {r['bound']:.6f}; bar = bound + {BAR_EXCESS}.", "",
            "| head | theta | k | w_in/w_dither | lava-fixed | lava-float | emulator-fixed |",
            "|---|---|---|---|---|---|---|"]
    for h in r["heads"]:
        out.append(f"| {h['name']} | {h['theta']:.4f} | {h['k']:.4f} | {h['w_in']}/{h['w_dither']} | "
                   f"{h['lava-fixed']:.6f} | {h['lava-float']:.6f} | {h['emulator-fixed']:.6f} |")
    out += ["", f"max_abs_error (lava-fixed) = {r['max_abs_error']:.6f}, bound = {r['bound']:.6f}.", "",
            "## NIR round trip", "", *_nir_section(r["nir"], n), "",
            "## Error vs T (emulator, fixed point and float)", "",
            "| T | 1/(2NT) | emulator-fixed | emulator-float |", "|---|---|---|---|"]
    for s in r["error_vs_T"]:
        out.append(f"| {s['timesteps']} | {s['bound']:.6f} | {s['emulator-fixed']:.6f} | "
                   f"{s['emulator-float']:.6f} |")
    out += ["", "## Figures", "", *[f"![{f}]({f})" for f in r["figures"]], ""]
    return "\n".join(out)


# -- run -----------------------------------------------------------------------------------


class Progress:
    """tqdm stage bar on stderr (silent with --json); step(name) closes the previous stage.

    The bar appears at the first step, after every input check, so a refused input
    leaves exactly one line on stderr.
    """

    STAGES = 12

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.bar = enabled, None

    def __call__(self, name: str) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=self.STAGES, file=sys.stderr, unit="stage", leave=False,
                            bar_format="{desc:<16} {bar} {n_fmt}/{total_fmt} [{elapsed}]")
        else:
            self.bar.update(1)
        self.bar.set_description_str(name)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for pkg in ("ember-neuro", "lava-nc", "torch", "numpy", "snntorch", "norse", "nir", "nirtorch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def bars(result: dict) -> list[str]:
    """The acceptance bars; each missed one as a line."""
    fails = []
    pairs = result["pairs"]
    if pairs[pair_key("lava-fixed", "emulator-fixed")]["agreement"] != 1.0:
        fails.append("lava-fixed vs emulator-fixed is not bit-exact")
    for key, rec in pairs.items():
        a, b = key.split("/")
        if a in FLOAT_SIMS and b in FLOAT_SIMS and rec["agreement"] < BAR_AGREE:
            fails.append(f"{key}: agreement {rec['agreement']:.6f} < {BAR_AGREE}")
        if rec["causes"].get("unexplained"):
            fails.append(f"{key}: {rec['causes']['unexplained']} unexplained mismatches")
    for name, frac in result["nir"]["agreement"].items():
        if frac < BAR_AGREE or result["nir"]["details"][name]["causes"].get("unexplained"):
            fails.append(f"NIR round trip via {name}: agreement {frac:.6f} vs Lava float "
                         f"({result['nir']['details'][name]['causes']})")
    if not result["max_abs_error"] <= result["bound"] + BAR_EXCESS:
        fails.append(f"max_abs_error {result['max_abs_error']:.5f} > bound + {BAR_EXCESS}")
    return list(dict.fromkeys(fails))


def run(args: argparse.Namespace, step: Any, t0: float | None = None) -> dict:
    from ember_neuro.atomic import atomic_dir, check_output_dir
    from ember_neuro.checkpoint import load_checkpoint
    from ember_neuro.map import MAX_TIMESTEPS, mappable_units, observed_probs
    from ember_neuro.mappers.lif_gate import MAX_LEVELS, MappingOptions, map_gates

    t0 = time.time() if t0 is None else t0
    t, n = args.timesteps, args.neurons_per_gate
    if t < 1 or n < 1 or t > MAX_TIMESTEPS or t * n > MAX_LEVELS:
        raise ValidateError(f"--timesteps {t} / --neurons-per-gate {n} out of range "
                            f"(T in 1..{MAX_TIMESTEPS}, N >= 1, N*T <= {MAX_LEVELS})")
    dest = Path(args.out or f"runs/validate-{Path(args.checkpoint).stem}-T{t}")
    check_output_dir(dest, args.force)
    for module in ("snntorch", "norse.torch", "nir"):
        R.require(module)
    from ember_neuro.export import nir_gates as G

    external = G.read_gates(args.nir) if args.nir else None  # refuse a foreign file before any run
    ck = load_checkpoint(args.checkpoint)
    units = tuple(mappable_units(ck))
    step("map")
    mapped = map_gates(units, MappingOptions(timesteps=t, neurons_per_gate=n))
    step("observed p")
    observed, source = {}, None
    if not args.grid_only:
        try:
            observed, source = observed_probs(ck, args.data, OBSERVED_PER_UNIT)
        except Exception as exc:  # noqa: BLE001 - observed p are optional: say so, use the grid
            print(f"warning: no observed probabilities ({exc}); grid only", file=sys.stderr)
    obs = [np.abs(observed.get((u.layer, u.head), np.empty(0))) for u in units]
    unit_index, p = build_inputs(len(units), obs)
    rasters, fa, qa = run_all(mapped, unit_index, p, args.timeout, step)
    step("compare")
    xf, xq = mapped.encode(p, False), mapped.encode(p, True)
    _, v_float = R.lava_float_reference(fa, xf)
    v_fixed, v_fixed_logit = fixed_drive(mapped, qa, xq)
    pairs = compare(rasters, fa, xf, v_float, v_fixed, v_fixed_logit, int(qa.vth) << 6)
    errors = head_errors(mapped, rasters, unit_index, p)
    fp = mapped.fixed_params
    result: dict[str, Any] = {
        "checkpoint": {"path": str(args.checkpoint), "sha256": ck.sha256, "variant": ck.config.variant},
        "timesteps": t, "neurons_per_gate": n, "unit_names": [u.name for u in units],
        "inputs": int(p.size), "observed_per_unit": int(max(len(o) for o in obs)),
        "observed_source": source, "neurons": fa.size, "slots": fa.size * t,
        "simulators": list(SIMULATORS), "pairs": pairs,
        "agreement": {k: v["agreement"] for k, v in pairs.items()},
        "rate_cosine": {k: v["rate_cosine"] for k, v in pairs.items()},
        "closest_margin": float(np.abs(v_float - fa.vth).min()),
        "float_fixed_same_slots": all(
            np.array_equal(rasters[f] != rasters[x], rasters["lava-float"] != rasters["lava-fixed"])
            for f in FLOAT_SIMS for x in FIXED_SIMS),
        "heads": [{"name": u.name, "layer": u.layer, "head": u.head, "theta": u.theta, "leak": u.leak,
                   "k": u.k, "w_in": int(fp.w_in[i]), "w_dither": int(fp.w_dither[i]),
                   **{s: float(errors[s][i]) for s in SIMULATORS}} for i, u in enumerate(units)],
        "max_abs_error": float(errors["lava-fixed"].max()), "bound": mapped.bound,
        "max_abs_error_by_simulator": {s: float(e.max()) for s, e in errors.items()},
        "warnings": list(mapped.warnings), "versions": versions(),
    }
    with atomic_dir(dest, force=args.force) as tmp:
        step("NIR round trip")
        graph = external
        if graph is None:
            graph = G.read_gates(G.write_gates(mapped, tmp / "gates.nir"))
        nir = nir_roundtrip(mapped, graph, fa, rasters["lava-float"], args.timeout)
        nir.update(file=str(args.nir or dest / "gates.nir"), external=external is not None)
        result["nir"] = nir
        result["nir_roundtrip"] = dict(nir["agreement"])
        step("error vs T")
        result["error_vs_T"] = sweep_error(units, unit_index, p, n)
        step("figures")
        rates = {s: grid_rates(mapped, r) for s, r in rasters.items()}
        figures = []
        for layer in sorted({u.layer for u in units}):
            plot_transfer(tmp / f"transfer_L{layer}.png", mapped, layer, rates)
            figures.append(f"transfer_L{layer}.png")
        head = raster_head(mapped)
        plot_raster(tmp / f"raster_{units[head].name}.png", mapped, head, rasters)
        plot_error_vs_t(tmp / "error_vs_T.png", result["error_vs_T"], n)
        result["figures"] = [*figures, f"raster_{units[head].name}.png", "error_vs_T.png"]
        step("write")
        result["failures"] = bars(result)
        result["passed"] = not result["failures"]
        result["out"] = str(dest)
        result["seconds"] = round(time.time() - t0, 2)
        (tmp / "report.json").write_text(json.dumps(_capped(result), indent=1))
        (tmp / "report.md").write_text(render_markdown(result, unit_index, p))
    result["seconds"] = round(time.time() - t0, 2)
    return result


def _capped(result: dict, cap: int = KEPT) -> dict:
    """report.json keeps the first `cap` listed mismatches per pair (all are counted)."""
    out = json.loads(json.dumps(result))
    recs = list(out["pairs"].values()) + list(out["nir"]["details"].values())
    for rec in recs:
        if "listed" in rec and len(rec["listed"]) > cap:
            rec["listed_total"] = len(rec["listed"])
            rec["listed"] = rec["listed"][:cap]
    return out


def summary(result: dict) -> dict:
    """The one JSON object --json prints."""
    keys = ("timesteps", "neurons_per_gate", "agreement", "rate_cosine", "max_abs_error", "bound",
            "nir_roundtrip", "passed", "failures", "out", "seconds")
    out = {k: result[k] for k in keys}
    out["mismatches"] = {k: v["mismatches"] for k, v in result["pairs"].items()}
    out["error_vs_T"] = result["error_vs_T"]
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m ember_neuro.validate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="Ember checkpoint (.pt) with LIF gates")
    ap.add_argument("--timesteps", "-T", type=int, default=32, help="window length T (default 32)")
    ap.add_argument("--neurons-per-gate", "-N", type=int, default=1, help="neurons per gate (default 1)")
    ap.add_argument("--out", help="report folder (default runs/validate-<ckpt stem>-T<T>)")
    ap.add_argument("--force", action="store_true", help="replace --out if it exists")
    ap.add_argument("--json", action="store_true", help="print one JSON summary object on stdout")
    ap.add_argument("--nir", help="validate this existing NIR gate file instead of exporting one")
    ap.add_argument("--grid-only", action="store_true", help="skip observed attention probabilities")
    ap.add_argument("--data", help="text for observed probabilities (default: the checkpoint's corpus)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a Lava run is stopped")
    return ap


def main(argv: list[str] | None = None) -> int:
    from ember_neuro.atomic import OutputExists
    from ember_neuro.checkpoint import CheckpointError
    from ember_neuro.map import MapError

    t0 = time.time()
    args = build_parser().parse_args(argv)
    progress = Progress(enabled=not args.json)
    # --json: stdout carries exactly one object, so anything a library prints goes to stderr
    quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    try:
        with quiet:
            result = run(args, progress, t0)
    except (CheckpointError, MapError, ValidateError, OutputExists, PermissionError, ValueError,
            ImportError) as exc:
        progress.close()
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except (TimeoutError, RuntimeError) as exc:
        progress.close()
        print(f"error: a simulator failed: {' '.join(str(exc).split())}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        progress.close()
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
    progress.close()
    if args.json:
        print(json.dumps(summary(result)))
    else:
        for key in (pair_key("lava-fixed", "emulator-fixed"), pair_key("lava-float", "snntorch"),
                    pair_key("lava-float", "norse"), pair_key("lava-float", "lava-fixed")):
            print(f"{key:<30} agreement {result['agreement'][key]:.7f}")
        print(f"NIR round trip vs lava-float: {result['nir_roundtrip']}")
        print(f"max_abs_error {result['max_abs_error']:.6f} (bound {result['bound']:.6f}); "
              f"{'all bars met' if result['passed'] else 'MISSED: ' + '; '.join(result['failures'])}; "
              f"{result['seconds']:.1f} s")
        print(f"wrote {result['out']}/report.md")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
