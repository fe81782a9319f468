"""The window the defaults choose for every shipped checkpoint, checked on the whole validation split.

    .venv/bin/python scripts/default_windows.py [--batches 0] [--out docs/figures/default_windows.json]

For each checkpoint: the model-level search (deploy/faithful.py, a fresh cache, so it runs), then
the chosen window's hybrid model against the float model on text the search never scored
(``run --eval``'s batches; ``--batches 0``: the whole validation split), gates on the emulator
(bit-exact with lava-sim).  Prints a markdown table (docs/default_window.md holds its output).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = ("lif-learnable-strong", "lif-fixed-strong", "lif-refractory-strong", "temporal-lif-strong",
               "temporal-lif-hard", "cfc-lif-strong")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=0, help="run --eval's batches (0: the whole split)")
    ap.add_argument("--out", help="write the rows as JSON here")
    args = ap.parse_args(argv)
    os.environ["EMBER_NEURO_WINDOWS"] = tempfile.mkdtemp(prefix="default-windows-")
    from ember_neuro.hybrid.session import Deployment, Evaluation, run_hybrid

    rows = []
    for name in CHECKPOINTS:
        ckpt = str(ROOT / "ember_neuro" / "checkpoints" / f"{name}.pt")
        t0 = time.time()
        r = run_hybrid(Deployment(ckpt, backend="emulator"), ev=Evaluation(batches=args.batches),
                       progress=False)
        c, m = r["window_choice"], r["window_choice"]["measured"]
        rows.append({"checkpoint": name, "timesteps": c["timesteps"], "levels": c["levels"],
                     "neurons_per_gate": c["neurons_per_gate"], "neurons": c["neurons"], "cores": c["cores"],
                     "tried": len(c["tried"]), "search_seconds": c["seconds"],
                     "calibration_top1": m["top1"], "calibration_rel_delta": m["rel_delta"],
                     "eval_tokens": r["tokens"], "eval_top1": r["top1_agreement"],
                     "eval_rel_delta": r["rel_delta"], "seconds": round(time.time() - t0, 1)})
        print(f"  {name}: T={c['timesteps']} N={c['neurons_per_gate']}", file=sys.stderr)
    print("| checkpoint | T | N | neurons (cores) | windows tried | search s | top-1 / rel. Δ, calibration "
          "(16,384 tokens) | top-1 / rel. Δ, validation |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['checkpoint']} | {r['timesteps']} | {r['neurons_per_gate']} | {r['neurons']:,} "
              f"({r['cores']}) | {r['tried']} | {r['search_seconds']:.1f} | {r['calibration_top1']:.3%} / "
              f"{r['calibration_rel_delta']:+.1e} | {r['eval_top1']:.3%} / {r['eval_rel_delta']:+.1e} "
              f"({r['eval_tokens']:,} tokens) |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
