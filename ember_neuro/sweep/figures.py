"""The sweep's figure and tables, drawn from the results table alone.

The figure: one column per variant; above, each gate's exact worst-case error against N*T with
the rate code's limit 1/(2NT) drawn (no mapping can beat it); below, the model's top-1
disagreement with the float model (1 - agreement) and |rel. delta| of the loss.  Each level set
is one colour: its line joins the mean at each N*T (over seeds and over the windows that share
that N*T), its band spans their min to max -- the spread over seeds when a variant has several.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

COLOURS = {"uniform": "tab:blue", "auto": "tab:red", "log": "tab:green"}


def _by_variant(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """One panel per variant, its checkpoints being its seeds; where two checkpoints of a variant share
    a seed they are different models (temporal-lif and its hard-spike fine-tune), one panel each."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    seeds: dict[str, dict[Any, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in rows:
        seeds[r["variant"]][r["seed"]].add(r["checkpoint"])
    for r in rows:
        shared = any(len(cks) > 1 for cks in seeds[r["variant"]].values())
        out[r["checkpoint"] if shared else r["variant"]].append(r)
    return dict(out)


def _floor(r: dict[str, Any]) -> float:
    """Where a disagreement of 0 is drawn on a log axis: half of one prediction."""
    return 0.5 / max(1, r["predictions"])


def _series(rows: list[dict[str, Any]], value) -> tuple[list[int], list[float], list[float], list[float]]:
    at: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        at[r["nt"]].append(value(r))
    xs = sorted(at)
    return xs, [statistics.fmean(at[x]) for x in xs], [min(at[x]) for x in xs], [max(at[x]) for x in xs]


def plot(rows: list[dict[str, Any]], out: str | Path) -> Path:
    """Write the fidelity figure (PNG) for the table's finished rows."""
    from ember_neuro.plots import _plt

    plt = _plt()
    variants = _by_variant(rows)
    fig, axes = plt.subplots(2, len(variants), figsize=(3.4 * len(variants) + 0.6, 6.4), squeeze=False,
                             sharex=True)
    for j, (variant, vr) in enumerate(variants.items()):
        top, bottom = axes[0][j], axes[1][j]
        nts = sorted({r["nt"] for r in vr})
        limit_x = [min(nts) / 1.3] + nts + [max(nts) * 1.3]
        top.plot(limit_x, [1 / (2 * x) for x in limit_x], "k--", lw=1, label="limit 1/(2NT)")
        for levels in sorted({r["levels"] for r in vr}, key=lambda s: list(COLOURS).index(s)):
            lr = [r for r in vr if r["levels"] == levels]
            colour = COLOURS.get(levels, "tab:gray")
            for ax, value, style in ((top, lambda r: r["gate_worst_error"], "-"),
                                     (bottom, lambda r: max(1 - r["top1_agreement"], _floor(r)), "-"),
                                     (bottom, lambda r: max(abs(r["rel_delta"]), 1e-7), ":")):
                xs, mean, lo, hi = _series(lr, value)
                label = levels if style == "-" else f"{levels} |rel. Δ|"
                ax.plot(xs, mean, style, color=colour, marker="o" if style == "-" else None, ms=3.5,
                        label=label)
                ax.fill_between(xs, lo, hi, color=colour, alpha=0.15 if style == "-" else 0.08, lw=0)
        seeds = sorted({r["seed"] for r in vr if r["seed"] is not None})
        unit = vr[0]["unit"]
        top.set_title(f"{variant} ({len(seeds)} seed{'s' if len(seeds) != 1 else ''})", fontsize=9)
        top.set_ylabel("gate worst-case |rate − σ|" if j == 0 else "")
        bottom.set_ylabel(f"1 − top-1 agreement ({unit})" if j == 0 else unit)
        bottom.set_xlabel("N·T (neurons per gate × timesteps)")
        for ax in (top, bottom):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.grid(alpha=0.3, which="both")
        top.legend(fontsize=7)
        bottom.legend(fontsize=6)
    split = {r["split"] for r in rows}
    fig.suptitle(f"Fidelity against N·T: {len(rows)} cells, {'/'.join(sorted(split))} split, bands: min "
                 "to max over seeds and windows of equal N·T", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from ember_neuro.atomic import atomic_write_bytes

    atomic_write_bytes(out, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return out


def table(rows: list[dict[str, Any]], checkpoints: list[str] | None = None) -> str:
    """A markdown table of the finished rows (optionally some checkpoints), by checkpoint, N*T, T."""
    keep = [r for r in rows if not checkpoints or r["checkpoint"] in checkpoints]
    keep.sort(key=lambda r: (r["checkpoint"], r["nt"], r["timesteps"], r["levels"]))
    lines = ["| checkpoint | seed | T | N | N·T | levels | top-1 agreement | rel. Δ | gate worst / 1/(2NT) | "
             "neurons | predictions | s |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in keep:
        lines.append(f"| {r['checkpoint']} | {r['seed']} | {r['timesteps']} | {r['neurons_per_gate']} | "
                     f"{r['nt']} | {r['levels']} | {r['top1_agreement']:.3%} | {r['rel_delta']:+.1e} | "
                     f"{r['gate_worst_error']:.4f} / {r['limit']:.4f} | {r['neurons']:,} | "
                     f"{r['predictions']:,} {r['unit']} | {r['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def wide_table(rows: list[dict[str, Any]], value: str = "top1_agreement") -> str:
    """One row per checkpoint and level set, one column per window (by N*T, then T): the README's
    summary of a sweep.  ``value``: top1_agreement (as %) or rel_delta."""
    windows = sorted({(r["timesteps"], r["neurons_per_gate"]) for r in rows},
                     key=lambda w: (w[0] * w[1], w[0]))
    cell = {(r["checkpoint"], r["levels"], r["timesteps"], r["neurons_per_gate"]): r[value] for r in rows}
    head = " | ".join(f"{t}×{n}" for t, n in windows)
    lines = [f"| checkpoint | levels | {head} |", "|---|---|" + "---|" * len(windows)]
    for ck, lv in sorted({(r["checkpoint"], r["levels"]) for r in rows}):
        vals = [cell.get((ck, lv, t, n)) for t, n in windows]
        text = ["" if v is None else (f"{v:.2%}" if value == "top1_agreement" else f"{v:+.1e}") for v in vals]
        lines.append(f"| {ck} | {lv} | " + " | ".join(text) + " |")
    return "\n".join(lines) + "\n"
