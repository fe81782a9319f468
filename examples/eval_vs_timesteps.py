"""Float vs spiking evaluation at several window lengths T, with a plot.

Runs what `python -m ember_neuro.run --eval` runs, for each T, on the same fixed
validation batches and plots val loss and top-1 agreement against T.

    .venv/bin/python examples/eval_vs_timesteps.py [--backend emulator] [--ts 4 8 16 32 64 128]
        [-N N] [--levels auto] [--batches 8] [--out runs/eval_vs_T.png]

Without -N each T gets the neurons per gate the model-level search chooses (docs/default_window.md);
-N pins them (no search).
"""

import argparse
import json
from pathlib import Path

from ember_neuro.hybrid.session import Deployment, Evaluation, run_hybrid
from ember_neuro.plots import _plt

CKPT = Path(__file__).resolve().parents[1] / "ember_neuro" / "checkpoints" / "lif-learnable-strong.pt"

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(CKPT))
    ap.add_argument("--backend", default="emulator")
    ap.add_argument("--ts", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128])
    ap.add_argument("--neurons-per-gate", "-N", type=int, default=None, help="default: chosen per T")
    ap.add_argument("--levels", choices=("uniform", "log", "auto"), default=None, help="default: auto")
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--out", default="runs/eval_vs_T.png")
    a = ap.parse_args()
    rows = []
    for t in a.ts:
        r = run_hybrid(Deployment(a.checkpoint, backend=a.backend, timesteps=t,
                                  neurons_per_gate=a.neurons_per_gate, levels=a.levels),
                       ev=Evaluation(batches=a.batches),
                       progress=False)
        rows.append(r)
        print(json.dumps({k: r[k] for k in ("timesteps", "val_loss_float", "val_loss_hybrid",
                                             "rel_delta", "top1_agreement")}), flush=True)
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
    ts = [r["timesteps"] for r in rows]
    ax1.semilogx(ts, [r["val_loss_hybrid"] for r in rows], "o-", color="tab:red",
                 label=f"spiking ({a.backend})")
    ax1.axhline(rows[0]["val_loss_float"], color="black", ls="--", label="float model")
    ax1.set_xlabel("timesteps T")
    ax1.set_ylabel("validation loss")
    ax1.legend(fontsize=8)
    ax2.semilogx(ts, [100 * r["top1_agreement"] for r in rows], "o-", color="tab:blue")
    ax2.set_xlabel("timesteps T")
    ax2.set_ylabel("next-token top-1 agreement with float (%)")
    for ax in (ax1, ax2):
        ax.set_xticks(ts)
        ax.set_xticklabels([str(t) for t in ts])
        ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out}")
