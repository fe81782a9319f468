"""Figures people would rather look at than read (matplotlib, Agg, PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ember_neuro.gates import fire_curve_np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


PANELS_PER_LAYER = 16  # more units in a layer (per-neuron gates): only its steepest are drawn
STEEPEST = 8


def units_by_layer(units: list) -> list[tuple[int, list[int]]]:
    """(layer, unit indices) of one transfer-curve figure per layer: every unit of a layer, or, for
    per-neuron gates (more than PANELS_PER_LAYER), the STEEPEST with the largest k."""
    out = []
    for layer in sorted({u.layer for u in units}):
        idx = [i for i, u in enumerate(units) if u.layer == layer]
        if len(idx) > PANELS_PER_LAYER:
            idx = sorted(idx, key=lambda i: -units[i].k)[:STEEPEST]
        out.append((layer, idx))
    return out


def transfer_curves(path: Path, title: str, units: list, grid: np.ndarray, series: dict[str, np.ndarray],
                    bound: float, errors: tuple[str, ...], styles: dict[str, tuple[str, str]] | None = None,
                    dpi: int = 110, xlabel: str = "attention probability p") -> None:
    """One panel per gate unit: each series' spike rate over the trained sigmoid, plus an error strip.

    units: objects with name, theta, k; grid: the input values, (G,) for all units or
    (G, len(units)) per unit; series: {label: (G, len(units)) rates over the grid};
    errors: the labels whose rate - sigmoid is drawn in the strip, against +-bound.
    """
    plt = _plt()
    n = len(units)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(2 * rows, cols, figsize=(3.7 * cols, 4.3 * rows), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1] * rows})
    styles = styles or {}
    grid = np.asarray(grid, np.float64)
    for i, u in enumerate(units):
        ax, ax_err = axes[2 * (i // cols)][i % cols], axes[2 * (i // cols) + 1][i % cols]
        x = grid if grid.ndim == 1 else grid[:, i]
        target = fire_curve_np(x, u.theta, u.k)
        ax.plot(x, target, color="black", lw=2.0, alpha=0.4, label="σ(k(x−θ)) trained")
        for label, rates in series.items():
            color, ls = styles.get(label, ("tab:red", "-"))
            ax.step(x, rates[:, i], where="mid", color=color, ls=ls, lw=0.9, label=label)
            if label in errors:
                ax_err.plot(x, rates[:, i] - target, color=color, lw=0.7)
        ax.set_title(f"{u.name}  θ={u.theta:.3f}  k={u.k:.3f}", fontsize=9)
        ax.set_xlim(float(x.min()), float(x.max()))
        ax.set_ylim(-0.02, 1.02)
        for sign in (1, -1):
            ax_err.axhline(sign * bound, color="gray", ls="--", lw=0.8)
        ax_err.set_ylim(-1.6 * bound, 1.6 * bound)
        ax_err.set_xlabel(xlabel, fontsize=8)
        if i % cols == 0:
            ax.set_ylabel("fire", fontsize=8)
            ax_err.set_ylabel("error", fontsize=8)
        if i == 0:
            ax.legend(fontsize=6, loc="upper left")
    for j in range(n, rows * cols):
        axes[2 * (j // cols)][j % cols].axis("off")
        axes[2 * (j // cols) + 1][j % cols].axis("off")
    fig.suptitle(f"{title} (dashed: ±1/(2NT) = {bound:.4f})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
