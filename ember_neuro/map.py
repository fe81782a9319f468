"""Map a trained Ember checkpoint's LIF gates onto spiking neurons and measure fidelity.

    python -m ember_neuro.map ckpt.pt --target lava-sim [--timesteps 32] [--out DIR] [--json] [--force]

Every gate's neurons are run over a dense grid of p in [0, 1] (1,001 points)
plus attention probabilities observed on validation text; the table shows each
head's max |spike rate - sigmoid(k(p - theta))| against the physical bound
1/(2 N T).  The same inputs also run on the target's twin -- the other
implementation of the same arithmetic (lava-sim <-> emulator) -- and the two
rasters are compared spike for spike.

DIR receives mapped.npz (the saved, versioned mapped network that
`run --mapped DIR`, `validate --mapped DIR` and the INRC bundle read; schema in
docs/mapped-format.md), manifest.json (options, fidelity, provenance) and one
transfer-curve plot per layer, all or nothing.  See docs/mapping.md for the
derivation.

Exit status: 0 every head within 1/(2NT) + 0.002; 1 mapped, but some head
outside that bar; 2 bad input (the message says which); 3 target not available
here; 4 a runtime fault (a Lava process died, a timeout, a full disk); 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from ember_neuro.backends import registry
from ember_neuro.cli import add_levels_option, run_guarded, torch_threads
from ember_neuro.mapping import format_table, map_and_measure


def _targets() -> str:
    return "\n".join(f"  {b.name:<15} {b.description}" for b in registry.BACKENDS.values() if b.spiking)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m ember_neuro.map",
                                 description=__doc__ + "\ntargets:\n" + _targets(),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="Ember checkpoint (.pt)")
    ap.add_argument("--target", default="lava-sim", metavar="NAME",
                    help="where the neurons run (default lava-sim; list above)")
    ap.add_argument("--timesteps", "-T", type=int, default=32, help="window length T (default 32)")
    ap.add_argument("--neurons-per-gate", "-N", type=int, default=1,
                    help="neurons per gate; the bound is 1/(2NT) (default 1)")
    add_levels_option(ap, "uniform")
    ap.add_argument("--out", help="write mapped.npz, manifest.json and plots to this folder")
    ap.add_argument("--force", action="store_true", help="replace --out if it exists")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--data", help="validation text for observed probabilities (default: Shakespeare)")
    ap.add_argument("--grid-only", action="store_true", help="skip observed probabilities")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a Lava run is stopped")
    ap.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads (default 1)")
    ap.add_argument("--no-bit-exact-check", action="store_true",
                    help="skip running the target's twin implementation")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code, summary = run_guarded(
        lambda a: torch_threads(a.threads) or map_and_measure(
            a.checkpoint, a.target, a.timesteps, a.neurons_per_gate, a.out, a.force, a.data, a.grid_only,
            a.timeout, not a.no_bit_exact_check, a.levels),
        args, "interrupted: nothing was written")
    if code:
        return code
    if args.json:
        print(json.dumps(summary))
    else:
        print(format_table(summary["units"], summary))
        if "out" in summary:
            print(f"wrote {summary['out']}/ (mapped.npz, manifest.json, transfer_L*.png)")
    ok = all(r["within"] for r in summary["units"])
    return 0 if ok or math.isnan(summary["max_abs_error"]) else 1


if __name__ == "__main__":
    sys.exit(main())
