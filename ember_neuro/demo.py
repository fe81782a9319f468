"""The main job in one command (what `make demo` runs).

1. describe the shipped checkpoint (its trained gate table);
2. map every gate onto spiking neurons on --target (default lava-sim, Lava's
   bit-accurate Loihi 2 simulation) and print the fidelity table;
3. generate a short text with the spiking gate in the loop (hybrid inference).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ember_neuro import inspect as inspect_cli
from ember_neuro import map as map_cli
from ember_neuro import run as run_cli

DEFAULT_CKPT = Path(__file__).parent / "checkpoints" / "lif-learnable-small.pt"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ember_neuro.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(DEFAULT_CKPT))
    ap.add_argument("--target", default="lava-sim")
    ap.add_argument("--timesteps", "-T", type=int, default=32)
    ap.add_argument("--out", default="runs/demo-map", help="mapped network folder (replaced)")
    ap.add_argument("--tokens", type=int, default=60)
    args = ap.parse_args(argv)
    print("== 1. checkpoint ==", flush=True)
    rc = inspect_cli.main([args.checkpoint])
    if rc:
        return rc
    print(f"\n== 2. map to {args.target} (T={args.timesteps}) ==", flush=True)
    rc = map_cli.main([args.checkpoint, "--target", args.target, "--timesteps", str(args.timesteps),
                       "--out", args.out, "--force"])
    if rc:
        return rc
    print(f"\n== 3. hybrid generation, gate on {args.target} ==", flush=True)
    return run_cli.main([args.checkpoint, "--backend", args.target, "--timesteps",
                         str(args.timesteps), "--prompt", "ROMEO:", "--tokens", str(args.tokens)])


if __name__ == "__main__":
    sys.exit(main())
