"""Figures people would rather look at than read (matplotlib, Agg, PNG)."""

from __future__ import annotations

from pathlib import Path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def transfer_curves(path: Path, layer: int, curves: list[dict], timesteps: int, bound: float,
                    title_extra: str = "") -> None:
    """One panel per head: spike-rate fire vs p, the trained sigmoid, and the error.

    curves: dicts with name, theta, k, p (grid), rate (mapped), target (sigmoid).
    """
    plt = _plt()
    n = len(curves)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(2 * rows, cols, figsize=(3.6 * cols, 4.2 * rows), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1] * rows})
    for i, c in enumerate(curves):
        r, col = 2 * (i // cols), i % cols
        ax, ax_err = axes[r][col], axes[r + 1][col]
        ax.plot(c["p"], c["target"], color="black", lw=1.2, label="σ(k(p−θ)) trained")
        ax.step(c["p"], c["rate"], where="mid", color="tab:red", lw=1.0, label=f"spike rate, T={timesteps}")
        ax.set_title(f"{c['name']}  θ={c['theta']:.3f}  k={c['k']:.3f}", fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(0, 1)
        err = c["rate"] - c["target"]
        ax_err.plot(c["p"], err, color="tab:red", lw=0.8)
        ax_err.axhline(bound, color="gray", ls="--", lw=0.8)
        ax_err.axhline(-bound, color="gray", ls="--", lw=0.8)
        ax_err.set_ylim(-1.6 * bound, 1.6 * bound)
        ax_err.set_xlabel("attention probability p", fontsize=8)
        if col == 0:
            ax.set_ylabel("fire", fontsize=8)
            ax_err.set_ylabel("error", fontsize=8)
        if i == 0:
            ax.legend(fontsize=7, loc="lower right")
    for j in range(n, rows * cols):
        axes[2 * (j // cols)][j % cols].axis("off")
        axes[2 * (j // cols) + 1][j % cols].axis("off")
    fig.suptitle(f"Layer {layer}: mapped spike-rate gate vs trained sigmoid "
                 f"(dashed: ±1/(2NT) = {bound:.4f}) {title_extra}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

