"""The keyword spotter's numbers for the README and docs/keywords.md, measured in one run.

    .venv/bin/python scripts/kws_results.py [--checkpoint CKPT] [--out docs/figures/kws.json]

1. The window the defaults choose (a fresh search on the validation split's clips).
2. At that window, every clip of the testing split (never searched on): float accuracy, spiking
   accuracy and their class agreement, gates on the emulator (bit-exact with lava-sim) -- and the
   same on lava-sim itself for the first ``--lava-clips`` clips.
3. Streaming: the whole testing split fed 10 ms (one hop) at a time, state carried, gates on the
   emulator: decisions equal to the whole clips'?
4. The same bars at a window far too small (T = 1, N = 1), to show that they can fail.
Prints a markdown summary; ``--out`` writes everything as JSON.
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
SHIPPED = ROOT / "ember_neuro" / "checkpoints" / "audio-cfc-lif-strong.pt"


def evaluate(ckpt: str, backend: str, batches: int = 0, batch_size: int = 64, **window) -> dict:
    from ember_neuro.hybrid.session import Deployment, Evaluation, run_hybrid

    t0 = time.time()
    r = run_hybrid(Deployment(ckpt, backend=backend, **window), ev=Evaluation(batches, batch_size),
                   progress=False)
    keep = ("clips", "accuracy_float", "accuracy_hybrid", "top1_agreement", "rel_delta", "timesteps",
            "neurons_per_gate", "levels", "lava_steps", "exchanges_per_token")
    return {**{k: r.get(k) for k in keep}, "seconds": round(time.time() - t0, 1),
            "window_choice": r.get("window_choice")}


def streaming(ckpt: str) -> dict:
    """Every testing clip streamed one hop at a time vs whole, emulator gates."""
    import numpy as np

    from ember_neuro.hybrid import keyword
    from ember_neuro.hybrid.session import Deployment, prepare_session
    from ember_neuro.hybrid.torch_hook import TorchHook

    session = prepare_session(Deployment(ckpt, backend="emulator"))
    sc = session.prep.text.commands
    items = sc.items("testing")
    t0 = time.time()
    same = n = 0
    for i in range(0, len(items), 64):
        waves = np.stack([sc.clip(item) for item in items[i:i + 64]])
        with session.paths(len(waves), whole=False) as paths:
            hook = TorchHook(paths)
            a = keyword.stream(session.model, waves, hook).argmax(-1)
            b = keyword.classify(session.model, waves, hook).argmax(-1)
        same += int((a == b).sum())
        n += len(waves)
    return {"clips": n, "equal_decisions": same, "seconds": round(time.time() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(SHIPPED))
    ap.add_argument("--lava-clips", type=int, default=64, help="testing clips also run on lava-sim")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    os.environ["EMBER_NEURO_WINDOWS"] = tempfile.mkdtemp(prefix="kws-windows-")
    out: dict = {"checkpoint": args.checkpoint}
    out["default"] = evaluate(args.checkpoint, "emulator")
    choice = out["default"]["window_choice"]
    pinned = {"timesteps": choice["timesteps"], "neurons_per_gate": choice["neurons_per_gate"],
              "levels": choice["levels"]}
    print(f"  default window T={pinned['timesteps']} N={pinned['neurons_per_gate']}", file=sys.stderr)
    out["lava_sim"] = evaluate(args.checkpoint, "lava-sim", batches=max(1, args.lava_clips // 16),
                               batch_size=16, **pinned)
    out["lava_sim_emulator"] = evaluate(args.checkpoint, "emulator", batches=max(1, args.lava_clips // 16),
                                        batch_size=16, **pinned)
    out["streaming"] = streaming(args.checkpoint)
    out["too_small"] = evaluate(args.checkpoint, "emulator", timesteps=1, neurons_per_gate=1,
                                levels="uniform")
    d, s = out["default"], out["streaming"]
    print("| window | clips | float acc. | spiking acc. | agreement |\n|---|---|---|---|---|")
    for name, r in (("default", d), ("T=1, N=1 uniform", out["too_small"])):
        print(f"| {name} (T={r['timesteps']}, N={r['neurons_per_gate']}) | {r['clips']} | "
              f"{r['accuracy_float']:.2%} | {r['accuracy_hybrid']:.2%} | {r['top1_agreement']:.2%} |")
    lv, le = out["lava_sim"], out["lava_sim_emulator"]
    print(f"lava-sim on {lv['clips']} clips: agreement {lv['top1_agreement']:.2%}, spiking acc. "
          f"{lv['accuracy_hybrid']:.2%} (emulator on the same clips {le['accuracy_hybrid']:.2%})")
    print(f"streaming: {s['equal_decisions']} of {s['clips']} decisions equal to the whole clip's")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
