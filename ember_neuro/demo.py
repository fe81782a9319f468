"""The main job in one command (what `make demo` runs), printing each command it runs.

1. describe the shipped checkpoint (its trained gate table);
2. map every gate onto spiking neurons on --target (default lava-sim, Lava's
   bit-accurate Loihi 2 simulation) with the design card's bare command: the window is
   chosen on calibration text, the fewest timesteps within one Loihi 2 chip whose hybrid
   model meets the model bars (it says which and why; -T/-N/--levels pin one) -- print the
   fidelity table and save the mapped network to --out;
3. generate a short text with the spiking gate in the loop (hybrid inference),
   from the saved mapping.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

DEFAULT_CKPT = Path(__file__).parent / "checkpoints" / "lif-learnable-strong.pt"


def _step(title: str, args: list[str]) -> int:
    print(f"\n== {title} ==\n$ python {' '.join(shlex.quote(a) for a in args)}", flush=True)
    return subprocess.call([sys.executable, *args])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ember_neuro.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(DEFAULT_CKPT))
    ap.add_argument("--target", default="lava-sim")
    ap.add_argument("--timesteps", "-T", type=int, default=None, help="pin T (default: chosen)")
    ap.add_argument("--neurons-per-gate", "-N", type=int, default=None, help="pin N (default: chosen)")
    ap.add_argument("--levels", default=None, choices=("uniform", "log", "auto"), help="default auto")
    ap.add_argument("--out", default="runs/demo-map", help="mapped network folder (replaced)")
    ap.add_argument("--tokens", type=int, default=60)
    args = ap.parse_args(argv)
    given = (("--timesteps", args.timesteps), ("--neurons-per-gate", args.neurons_per_gate),
             ("--levels", args.levels))
    pinned = [a for flag, v in given if v is not None for a in (flag, str(v))]
    steps = [
        ("1. checkpoint", ["-m", "ember_neuro.inspect", args.checkpoint]),
        (f"2. map to {args.target} ({'the window as given' if pinned else 'the window chosen'})",
         ["-m", "ember_neuro.map", args.checkpoint, "--target", args.target, *pinned,
          "--out", args.out, "--force"]),
        (f"3. hybrid generation, gate on {args.target}",
         ["-m", "ember_neuro.run", args.checkpoint, "--mapped", args.out, "--backend", args.target,
          "--prompt", "ROMEO:", "--tokens", str(args.tokens)]),
    ]
    for title, cmd in steps:
        rc = _step(title, cmd)
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
