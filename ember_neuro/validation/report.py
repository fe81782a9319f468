"""report.md and the figures of a validation run (matplotlib via plots._plt).

Why this module: how a validation result reads -- the pair tables, every
mismatch with its cause, the importer conventions, transfer curves of all the
simulators, a raster and error vs T -- is presentation, kept apart from the
numbers (validation/compare.py) and the run (validation/pipeline.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ember_neuro import plots
from ember_neuro.deploy.fidelity import GRID_POINTS, UnitInputs, grid_inputs, points_per_unit
from ember_neuro.mappers import NeuronGroup
from ember_neuro.validation.compare import BAR_EXCESS, KEPT, Roles, pair_key, raster_gate_counts, roles

RASTER_P = 40
LISTED = 100  # mismatches listed per pair in report.md (all are counted and classified)

# -- figures ---------------------------------------------------------------------------------

PALETTE = {False: (("tab:red", "-"), ("tab:orange", "--"), ("tab:green", ":"), ("tab:purple", "-.")),
           True: (("tab:blue", "-"), ("tab:cyan", "--"), ("tab:olive", ":"))}


def styles(r: Roles) -> dict[str, tuple[str, str]]:
    """Each simulator's line in the figures: the references solid (float red, fixed blue), the
    others dashed or dotted, by arithmetic."""
    return {label: PALETTE[fixed][i % len(PALETTE[fixed])]
            for fixed, labels in ((False, r.float_sims), (True, r.fixed_sims))
            for i, label in enumerate(sorted(labels, key=lambda s: s not in (r.ref_float, r.ref_fixed)))}


def grid_rates(mapped: NeuronGroup, raster: np.ndarray) -> np.ndarray:
    """(G, U) spike rates of the grid part (inputs b*U + u come first)."""
    u, g = len(mapped.units), points_per_unit(mapped, GRID_POINTS)
    counts = raster_gate_counts(raster[:, : g * u * mapped.neurons_per_gate], mapped.neurons_per_gate)
    return mapped.decode(counts).reshape(g, u)


def plot_error_vs_t(path: Path, rows: list[dict[str, float]], n: int) -> None:
    """Measured max error (emulator fixed and float) against the 1/(2NT) limit, log-log."""
    plt = plots._plt()
    from matplotlib.ticker import NullFormatter

    ts = [r["timesteps"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    ax.loglog(ts, [r["bound"] for r in rows], "k--", lw=1.2, label=f"1/(2NT) limit, N={n}")
    lines = (("o-", "tab:blue"), ("x:", "tab:red"))  # the fixed-point and the float emulator
    sweepers = roles().sweepers
    for backend, (marker, color) in zip((sweepers[True], sweepers[False]), lines, strict=True):
        ax.loglog(ts, [r[backend.label] for r in rows], marker, color=color, label=backend.label)
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


def raster_head(mapped: NeuronGroup) -> int:
    """The unit whose fire curve changes most over its input range (the most telling raster)."""
    grid = grid_inputs(mapped)
    u, g = len(mapped.units), points_per_unit(mapped, GRID_POINTS)
    fire = mapped.target(grid.values, grid.unit_index).reshape(g, u)
    return int(np.argmax(fire[-1] - fire[0]))


def plot_raster(path: Path, mapped: NeuronGroup, unit: int, rasters: dict[str, np.ndarray]) -> None:
    """RASTER_P p values x T steps of one head: Lava float, Lava fixed, and where they differ."""
    plt = plots._plt()
    u, n, g = len(mapped.units), mapped.neurons_per_gate, points_per_unit(mapped, GRID_POINTS)
    b = np.rint(np.linspace(0, g - 1, RASTER_P)).astype(int)
    cols = ((b * u + unit)[:, None] * n + np.arange(n)).ravel()
    r = roles()
    fl, fx = rasters[r.ref_float][:, cols].T, rasters[r.ref_fixed][:, cols].T
    fig, axes = plt.subplots(1, 3, figsize=(11, 4.6), sharey=True)
    p = grid_inputs(mapped).values["input"].reshape(g, u)[b, unit]
    extent = (0.5, mapped.timesteps + 0.5, len(cols) - 0.5, -0.5)
    for ax, img, title in ((axes[0], fl, r.ref_float), (axes[1], fx, r.ref_fixed),
                           (axes[2], fl != fx, "float ≠ fixed")):
        ax.imshow(img, aspect="auto", cmap="Greys" if title != "float ≠ fixed" else "Reds",
                  interpolation="nearest", extent=extent, vmin=0, vmax=1)
        ax.set_title(f"{title} ({int(img.sum())} {'slots' if '≠' in title else 'spikes'})", fontsize=9)
        ax.set_xlabel("window step t")
    ticks = np.arange(0, len(cols), max(1, len(cols) // 10))
    axes[0].set_yticks(ticks)
    axes[0].set_yticklabels([f"{p[i // n]:.2f}" for i in ticks], fontsize=7)
    axes[0].set_ylabel("input (row per neuron)")
    fig.suptitle(f"{mapped.units[unit].name}: spike raster, {RASTER_P} inputs x T={mapped.timesteps}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_figures(folder: Path, mapped: NeuronGroup, rasters: dict[str, np.ndarray],
                  error_rows: list[dict[str, float]]) -> list[str]:
    """Transfer curves per layer, the most telling unit's raster and error vs T; their file names."""
    units, r = mapped.units, roles()
    rates = {s: grid_rates(mapped, raster) for s, raster in rasters.items()}
    g = points_per_unit(mapped, GRID_POINTS)
    grid = grid_inputs(mapped).values["input"].reshape(g, len(units))
    figures = []
    for layer, idx in plots.units_by_layer(units):
        plots.transfer_curves(
            folder / f"transfer_L{layer}.png",
            f"{mapped.name}, layer {layer}, T={mapped.timesteps}: {len(r.simulators)} simulators over the "
            f"sigmoid (error strip: {r.ref_float} red, {r.ref_fixed} blue)", [units[i] for i in idx],
            grid[:, idx], {name: rates[name][:, idx] for name in r.simulators}, mapped.bound,
            errors=(r.ref_float, r.ref_fixed), styles=styles(r), dpi=100,
            xlabel=mapped.address.label or f"{mapped.name} input")
        figures.append(f"transfer_L{layer}.png")
    head = raster_head(mapped)
    plot_raster(folder / f"raster_{units[head].name}.png", mapped, head, rasters)
    plot_error_vs_t(folder / "error_vs_T.png", error_rows, mapped.neurons_per_gate)
    return [*figures, f"raster_{units[head].name}.png", "error_vs_T.png"]


# -- report ---------------------------------------------------------------------------------


def _slot_rows(listed: list[dict], names: list[str], unit_of: np.ndarray, p: np.ndarray, n: int,
               columns: str, cells: Callable[[dict], str], more: str = "") -> list[str]:
    """Markdown rows of the first LISTED slots (input i = neuron // N has unit_of[i], input p[i])."""
    rows = [f"| t | neuron | unit | input | a | b | {columns} | cause |", "|" + "---|" * 9]
    for m in listed[:LISTED]:
        i = m["neuron"] // n
        rows.append(f"| {m['t']} | {m['neuron']} | {names[int(unit_of[i])]} | {p[i]:.9g} | {int(m['a'])} | "
                    f"{int(m['b'])} | {cells(m)} | {m['cause']} |")
    if len(listed) > LISTED:
        rows.append(f"\n({len(listed) - LISTED} more in report.json{more})")
    return rows


def _mismatch_rows(listed: list[dict], names: list[str], unit_of: np.ndarray, p: np.ndarray,
                   n: int) -> list[str]:
    """Mismatches between float simulators: the reference v and its margin to threshold."""
    return _slot_rows(listed, names, unit_of, p, n, "v (reference) | margin",
                      lambda m: f"{m['v']:.3e} | {m['margin']:.3e}", "; the causes above count all of them")


CAUSES = {
    "tie": "v equals vth exactly: every library fires on a strict `>`, so a tie is no spike",
    "float64 rounding": "|v - vth| within 4 float64 ulps of the summed terms: operation order decides",
    "float32 rounding": "|v - vth| within float32 rounding: a float32 parameter or operation decides",
    "unexplained": "no rounding explains it: the simulators compute different things (a bug)",
}


def _fixed_rows(listed: list[dict], names: list[str], unit_of: np.ndarray, p: np.ndarray,
                n: int) -> list[str]:
    """Float-vs-fixed (or fixed-vs-fixed) slots: each side's own v, in logits."""
    return _slot_rows(listed, names, unit_of, p, n, "v float | v fixed",
                      lambda m: f"{m.get('v_float', float('nan')):.3e} | "
                                f"{m.get('v_fixed_logit', float('nan')):.3e}")


def _pair_table(pairs: dict[str, dict]) -> list[str]:
    out = ["| pair | agreement | rate cosine | differing slots | max count diff per gate | causes |",
           "|---|---|---|---|---|---|"]
    for key, rec in pairs.items():
        causes = ", ".join(f"{v} {k}" for k, v in rec["causes"].items()) or "-"
        out.append(f"| {key} | {rec['agreement']:.7f} | {rec['rate_cosine']:.7f} | {rec['mismatches']} | "
                   f"{rec['max_count_diff']} | {causes} |")
    return out


def _nir_section(nr: dict, n: int, grid: UnitInputs) -> list[str]:
    how = "given with --nir" if nr["external"] else "exported from this checkpoint"
    same = ("the same neurons as this mapping, so compared with the grid part of the main Lava float run"
            if nr["matches_checkpoint"] else "not this mapping, so compared with its own Lava float run")
    out = [f"File `{nr['file']}` ({how}) holds {same}. Grid: {grid.unit_index.size // nr['units']} inputs "
           f"x {nr['units']} units, T = {nr['timesteps']}.", "",
           "| importer | agreement vs Lava float | rate cosine | differing slots | causes |",
           "|---|---|---|---|---|"]
    for name in ("snntorch", "norse"):
        d = nr["details"][name]
        causes = ", ".join(f"{v} {k}" for k, v in d["causes"].items()) or "-"
        out.append(f"| {name} | {nr['agreement'][name]:.7f} | {d['rate_cosine']:.7f} | {d['mismatches']} | "
                   f"{causes} |")
    unit_of, p = grid.unit_index, grid.values["input"]
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


def render_group(r: dict, inputs: UnitInputs, source: str | None, h: str = "##") -> list[str]:
    """One gate group's sections: pairs, every mismatch with its cause, errors, NIR, error vs T."""
    names, n, pairs = r["unit_names"], r["neurons_per_gate"], r["pairs"]
    unit_index, p = inputs.unit_index, inputs.values["input"]
    sims = roles()
    observed = (f" + {r['observed_per_unit']} observed inputs per unit from {source}"
                if r.get("observed_per_unit") else "")
    grid = grid_inputs_of(r, inputs)
    out = [f"{len(names)} gate units ({r['group']}; host inputs: {', '.join(r['host_sources'])}); "
           f"{r['inputs']} inputs ({grid.unit_index.size // len(names)}-point grid per unit over its input "
           f"range{observed}); {r['neurons']} neurons x {r['timesteps']} steps = {r['slots']} slots per "
           "simulator.", "",
           "**Bars:** " + ("all met." if not r["failures"] else "MISSED: " + "; ".join(r["failures"])), "",
           f"{h} Agreement, every pair", "",
           "`agreement` = fraction of identical (step, neuron) slots; `rate cosine` = cosine of "
           "per-neuron rates. Float simulators run the float mapping in float64, fixed ones the Loihi 2 "
           "integer mapping: float and fixed differ legitimately near threshold (other arithmetic).", "",
           *_pair_table(pairs), "", f"{h} Mismatches between float simulators", "",
           f"Closest approach to threshold over all slots: |v - vth| = {r['closest_margin']:.3e} (how hard "
           "the comparison was: float32 rounding can only flip slots closer than ~1e-7).", ""]
    for key, rec in pairs.items():
        if sims.both_float(key):
            out.append(f"* **{key}**: {rec['mismatches']} differing slots"
                       + (", listed below." if rec["mismatches"] else "."))
            if rec["mismatches"]:
                out += ["", *_mismatch_rows(rec["listed"], names, unit_index, p, n), ""]
    out += ["", "Causes: " + "; ".join(f"*{k}*: {v}" for k, v in CAUSES.items()) + ".", "",
            f"{h} Fixed point vs float, and between the fixed-point simulators", ""]
    for key in sims.fixed_pairs():
        fixed = pairs[key]
        out += [f"{key.replace('/', ' vs ')}: {fixed['mismatches']} differing slots (the same integer "
                "arithmetic; any difference is a bug).", ""]
        if fixed["mismatches"]:
            out += [*_fixed_rows(fixed["listed"], names, unit_index, p, n), ""]
    chip = r.get("chip_side_exact")
    if chip is not None:
        out += [f"{sims.ref_fixed}'s chip-side window (the default network: each window in one step, "
                "one message each way; docs/mapping.md section 10) answers the same spike count for every "
                f"input: {'yes' if chip else 'NO'}.", ""]
    fx = pairs[pair_key(sims.ref_float, sims.ref_fixed)]
    same = ("the other float/fixed pairs differ in exactly these slots" if r["float_fixed_same_slots"]
            else "the other float/fixed pairs differ in other slots too: see the table above")
    out += [f"{sims.ref_float} vs {sims.ref_fixed}: {fx['mismatches']} differing slots "
            f"({1 - fx['agreement']:.4%}; "
            f"{same}). For each slot the float v and the "
            "fixed-point v (recomputed from the integer weights, payload and bias; in logit units) were "
            "checked to predict their own simulator's spike: "
            f"{fx['causes'].get('fixed-point quantisation', 0)} explained by fixed-point quantisation, "
            f"{fx['causes'].get('unexplained', 0)} unexplained. All lie within "
            f"|v_float| <= {fx['max_abs_v_float_at_mismatch']:.2e} logits of threshold, where the input "
            "payload's rounding, the slope as a weight ratio a/b and the rounded bias and dither move the "
            f"drive across it. Per gate the counts differ by at most {fx['max_count_diff']} spike(s) per "
            "window.",
            ""]
    if fx["mismatches"]:
        out += [*_fixed_rows(fx["listed"], names, unit_index, p, n), ""]
    out += [f"{h} Gate error per unit (spike rate vs the trained fire, all inputs)", "",
            f"bound = 1/(2NT) = {r['bound']:.6f}; bar = bound + {BAR_EXCESS}; the mapper's exact worst case "
            f"over the whole input range is {r['max_exact_worst_case']:.6f}.", "",
            "| unit | theta | k | w_in/w_dither | " + " | ".join(r["simulators"]) + " |",
            "|---|---|---|---|" + "---|" * len(r["simulators"])]
    for u in r["heads"]:
        out.append(f"| {u['name']} | {u['theta']:.4f} | {u['k']:.4f} | {u['w_in']}/{u['w_dither']} | "
                   + " | ".join(f"{u[s]:.6f}" for s in r["simulators"]) + " |")
    sweep = [sims.sweepers[True].label, sims.sweepers[False].label]
    out += ["", f"max_abs_error ({sims.ref_fixed}) = {r['max_abs_error']:.6f}, bound = {r['bound']:.6f}.",
            "", f"{h} NIR round trip", "", *_nir_section(r["nir"], n, grid), "",
            f"{h} Error vs T ({', '.join(sweep)}: the references' fast twins)", "",
            "| T | 1/(2NT) | " + " | ".join(sweep) + " |", "|---|---|" + "---|" * len(sweep)]
    for s in r["error_vs_T"]:
        out.append(f"| {s['timesteps']} | {s['bound']:.6f} | " + " | ".join(f"{s[k]:.6f}" for k in sweep)
                   + " |")
    folder = f"{r['group']}/" if r.get("subfolder") else ""
    out += ["", f"{h} Figures", "", *[f"![{f}]({folder}{f})" for f in r["figures"]], ""]
    return out


def grid_inputs_of(r: dict, inputs: UnitInputs) -> UnitInputs:
    """The grid part (the first points x U inputs) of a group's inputs."""
    u = len(r["unit_names"])
    counts = np.bincount(inputs.unit_index, minlength=u)
    g = int(counts.min()) - int(r.get("observed_per_unit", 0))
    keep = np.arange(g * u)
    return UnitInputs(inputs.unit_index[keep], {s: v[keep] for s, v in inputs.values.items()})


def render_markdown(result: dict, inputs_of: dict[str, UnitInputs]) -> str:
    """report.md: per gate group the tables, every mismatch with its cause, the importer conventions."""
    r = result
    groups = {k: v for k, v in r["groups"].items() if k in inputs_of}
    out = [f"# Validation of `{r['checkpoint']['path']}` ({r['checkpoint']['variant']}) at "
           f"T = {r['timesteps']}, N = {r['neurons_per_gate']}", "",
           f"Groups: {', '.join(r['groups'])}; wall time {r['seconds']:.1f} s.", "",
           "**Bars:** " + ("all met." if r["passed"] else "MISSED: " + "; ".join(r["failures"])), ""]
    many = len(groups) > 1
    for name, g in groups.items():
        if many:
            out += [f"## Group `{name}`", ""]
        out += render_group(g, inputs_of[name], r.get("observed_source"), "###" if many else "##")
    for name, carried in r["groups"].items():
        if name in inputs_of or "tokens" not in carried:
            continue
        out += [f"## Group `{name}` (one LIF neuron per token, state carried across layers)", "",
                f"{carried['tokens']} tokens x {carried['steps']} layer steps from validation text, run as "
                "one window per token whose input is a chip table (so every simulator carries the state "
                "the same way).", "", "| pair | agreement | differing slots |", "|---|---|---|"]
        out += [f"| {k} | {v['agreement']:.7f} | {v['mismatches']} |" for k, v in carried["pairs"].items()]
        out += ["", f"NIR: {carried['nir']}.", ""]
    return "\n".join(out)


def capped(result: dict, cap: int = KEPT) -> dict:
    """report.json keeps the first `cap` listed mismatches per pair (all are counted)."""
    out = json.loads(json.dumps(result))
    for r in [out, *out.get("groups", {}).values()]:
        recs = list(r.get("pairs", {}).values())
        if isinstance(r.get("nir"), dict):
            recs += list(r["nir"]["details"].values())
        for rec in recs:
            if "listed" in rec and len(rec["listed"]) > cap:
                rec["listed_total"] = len(rec["listed"])
                rec["listed"] = rec["listed"][:cap]
    return out
