"""Map a trained Ember checkpoint's LIF gates onto spiking neurons and measure fidelity.

    python -m ember_neuro.map ckpt.pt --target lava-sim [--out DIR] [--json] [--force] [-T T] [-N N]

Every gate's neurons are run over a dense grid of p in [0, 1] (1,001 points)
plus attention probabilities observed on validation text; the table shows each
head's max |spike rate - sigmoid(k(p - theta))| against the physical bound
1/(2 N T).  The same inputs also run on the target's twin -- the other
implementation of the same arithmetic (lava-sim <-> emulator) -- and the two
rasters are compared spike for spike.

With no window flags, the window is the faithful one chosen on calibration text (see "the
window" below): the first command on a checkpoint searches a few candidates, later ones reuse it.

Choosing the window for a per-gate error instead: --max-error E picks the fewest timesteps T (then the
fewest neurons per gate N) whose exact worst-case error is <= E within --neuron-budget
neurons of the generation layout (default one Loihi 2 chip, 1,048,576); with -T too it
picks the fewest N at that T; -T with --neuron-budget alone takes the most N the budget
holds.  It prints the choice and its Loihi 2 neuron count, then maps with it:

    python -m ember_neuro.map ckpt.pt --max-error 0.005 --levels auto
    python -m ember_neuro.map ckpt.pt -T 8 --neuron-budget 100000

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

import math
import sys

from ember_neuro import cli
from ember_neuro.backends import registry
from ember_neuro.deploy.mapping import MapRequest, format_table, map_and_measure


def _targets() -> str:
    return "\n".join(f"  {b.name:<15} {b.description}" for b in registry.BACKENDS.values() if b.spiking)


def build_parser():
    ap = cli.parser("ember_neuro.map", __doc__, cli.WINDOW_EPILOG + "\ntargets:\n" + _targets())
    ap.add_argument("checkpoint", help="Ember checkpoint (.pt)")
    ap.add_argument("--target", default="lava-sim", metavar="NAME",
                    help="where the neurons run (default lava-sim; list above)")
    cli.add_window_options(ap)
    ap.add_argument("--max-error", type=float, default=None, metavar="E",
                    help="choose T (fewest) and N for an exact per-gate worst case <= E")
    ap.add_argument("--neuron-budget", type=int, default=None, metavar="B",
                    help="neurons the choice may use (default 1,048,576: one Loihi 2 chip)")
    ap.add_argument("--out", help="write mapped.npz, manifest.json and plots to this folder")
    ap.add_argument("--force", action="store_true", help="replace --out if it exists")
    cli.add_json_option(ap)
    ap.add_argument("--data", help="validation text for observed probabilities (default: Shakespeare)")
    ap.add_argument("--grid-only", action="store_true", help="skip observed probabilities")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a Lava run is stopped")
    cli.add_threads_option(ap)
    ap.add_argument("--no-bit-exact-check", action="store_true",
                    help="skip running the target's twin implementation")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def map_it(a) -> dict:
        cli.torch_threads(a.threads)
        return map_and_measure(cli.from_args(MapRequest, a, bit_exact_check=not a.no_bit_exact_check))

    def report(summary: dict) -> None:
        print(format_table(summary["units"], summary))
        if "out" in summary:
            print(f"wrote {summary['out']}/ (mapped.npz, manifest.json, transfer_L*.png)")

    def status(summary: dict) -> int:
        ok = all(r["within"] for r in summary["units"])
        return 0 if ok or math.isnan(summary["max_abs_error"]) else 1

    return cli.run_and_report(map_it, args, "interrupted: nothing was written", report, status)


if __name__ == "__main__":
    sys.exit(main())
