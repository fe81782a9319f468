"""The hard-spike trade-off: forward FLOPs saved against the val-loss increase over the soft baseline.

    python scripts/hard_spike_curve.py --baseline ember_neuro/checkpoints/temporal-lif-strong.pt \
        runs/hard/scratch/hard-*.pt --json docs/figures/hard_spike_curve_scratch.json
    python scripts/hard_spike_curve.py --plot docs/figures/hard_spike_curve_*.json \
        --out docs/figures/hard_spike_curve.png

Each hard-spike checkpoint (``train --spike hard``) runs ``run --eval`` on the whole validation
split (``--batches 0``) with its gates spiking on --backend (default emulator, bit-exact with
lava-sim; the membrane is the hard LIF neuron, the attention gates the chip-side window at
-T/-N/--levels).  Its hybrid val loss is compared with the soft baseline's float val loss on the
same split (the soft model at its best: no spiking error at all), and the FLOPs its silent
membranes saved are those `run` reports (kinds/membrane.metrics: matrix products only).  Prints
a Markdown table; --json writes every number.  --plot draws the curves of such JSON files (one
series each, named by the hard checkpoints' folder: runs/hard/scratch, runs/hard/finetune).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ember_neuro.atomic import atomic_write_bytes
from ember_neuro.hybrid.session import Deployment, Evaluation, run_hybrid
from ember_neuro.models.checkpoint import load_checkpoint


def evaluate(ckpt: str, backend: str, t: int, n: int, levels: str, batches: int) -> dict:
    dep = Deployment(ckpt, backend=backend, timesteps=None if backend == "float" else t,
                     neurons_per_gate=None if backend == "float" else n,
                     levels=None if backend == "float" else levels)
    return run_hybrid(dep, ev=Evaluation(batches=batches, batch_size=8), progress=sys.stderr.isatty())


def curve(baseline: str, hard: list[str], backend: str, t: int, n: int, levels: str, batches: int) -> dict:
    base = evaluate(baseline, "float", t, n, levels, batches)
    rows = []
    for path in hard:
        ck = load_checkpoint(path)
        r = evaluate(path, backend, t, n, levels, batches)
        rows.append({"checkpoint": os.path.relpath(path), "skip_target": ck.train_config.get("skip_target"),
                     "mlp_skip_fraction": r["mlp_skip_fraction"],
                     "flops_saved_fraction": r["flops_saved_fraction"],
                     "val_loss": r["val_loss_hybrid"], "val_loss_float": r["val_loss_float"],
                     "top1_agreement_vs_own_float": r["top1_agreement"],
                     "loss_increase": r["val_loss_hybrid"] / base["val_loss_float"] - 1.0,
                     "iters": ck.train_config.get("iters"), "train_seconds": ck.train_config.get("seconds")})
        print(f"  {path}: {r['flops_saved_fraction']:.1%} FLOPs saved, loss {r['val_loss_hybrid']:.4f} "
              f"({rows[-1]['loss_increase']:+.2%})", file=sys.stderr)
    rows.sort(key=lambda r: r["flops_saved_fraction"])
    return {"series": Path(hard[0]).parent.name,  # runs/hard/<series>/hard-*.pt
            "baseline": {"checkpoint": os.path.relpath(baseline), "val_loss": base["val_loss_float"]},
            "backend": backend, "timesteps": t, "neurons_per_gate": n, "levels": levels,
            "tokens": base["tokens"], "rows": rows}


def markdown(res: dict) -> str:
    lines = [f"Baseline `{res['baseline']['checkpoint']}` (soft, float): val loss "
             f"{res['baseline']['val_loss']:.4f} on {res['tokens']:,} validation tokens; hard models on "
             f"{res['backend']} (T = {res['timesteps']}, N = {res['neurons_per_gate']}, {res['levels']} "
             f"levels).", "",
             "| checkpoint | skip target | MLP calls skipped | forward FLOPs saved | val loss "
             "| vs baseline |",
             "|---|---|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(f"| `{r['checkpoint']}` | {r['skip_target']} | {r['mlp_skip_fraction']:.1%} | "
                     f"{r['flops_saved_fraction']:.1%} | {r['val_loss']:.4f} | {r['loss_increase']:+.2%} |")
    return "\n".join(lines)


def plot(series: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for res in series:
        xs = [100 * r["flops_saved_fraction"] for r in res["rows"]]
        ys = [100 * r["loss_increase"] for r in res["rows"]]
        ax.plot(xs, ys, "o-", label=f"{res['series']} (baseline {Path(res['baseline']['checkpoint']).name})")
        for r, x, y in zip(res["rows"], xs, ys, strict=True):
            ax.annotate(f"{r['skip_target']}", (x, y), textcoords="offset points", xytext=(4, -10),
                        fontsize=7)
    ax.axhline(0.5, color="tab:green", ls="--", lw=1, label="goal: at most +0.5 % loss")
    ax.axvline(30, color="tab:red", ls=":", lw=1, label="goal: at least 30 % FLOPs saved")
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_xlabel("forward FLOPs saved (%)")
    ax.set_ylabel("val loss vs the equal-budget soft model (%)")
    first = series[0]
    ax.set_title(f"temporal-lif hard membrane spikes ({first['backend']} spikes, whole validation split; "
                 f"labels: skip target)", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=130)
    plt.close(fig)
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("hard", nargs="*", help="hard-spike checkpoints (train --spike hard)")
    ap.add_argument("--baseline", help="the equal-budget soft checkpoint")
    ap.add_argument("--plot", nargs="+", type=Path, metavar="JSON", help="draw these curves (--json files)")
    ap.add_argument("--backend", default="emulator", help="where the gates spike (default emulator)")
    ap.add_argument("-T", "--timesteps", type=int, default=8)
    ap.add_argument("-N", "--neurons-per-gate", type=int, default=32)
    ap.add_argument("--levels", default="auto")
    ap.add_argument("--batches", type=int, default=0, help="validation batches (default 0: the whole split)")
    ap.add_argument("--out", type=Path, help="the plot (PNG), with --plot")
    ap.add_argument("--json", type=Path, help="every number, as JSON")
    a = ap.parse_args(argv)
    if a.plot:
        if not a.out:
            ap.error("--plot needs --out")
        plot([json.loads(p.read_text()) for p in a.plot], a.out)
        return 0
    if not a.baseline or not a.hard:
        ap.error("give --baseline and the hard-spike checkpoints (or --plot JSON ... --out PNG)")
    res = curve(a.baseline, a.hard, a.backend, a.timesteps, a.neurons_per_gate, a.levels, a.batches)
    print(markdown(res))
    if a.json:
        atomic_write_bytes(a.json, lambda tmp: Path(tmp).write_text(json.dumps(res, indent=1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
