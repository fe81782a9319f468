"""Validate a checkpoint's mapped gates on every validated simulator, spike for spike, and through NIR.

    python -m ember_neuro.validate ckpt.pt [--out DIR] [--force] [--json] [-T T] [-N N]
                                           [--mapped MAPDIR] [--nir FILE] [--grid-only] [--data TEXT]

Why: a spike-rate gate is only trustworthy if simulators written by other people
produce the same spikes from the same neurons.  One neuron array -- every gate
unit at a 1,001-point p grid (input i = b*U + u, the NIR layout) plus observed
attention probabilities -- runs on each simulator below (one Lava run per
arithmetic).  Every pair gets the fraction of identical (step, neuron) slots
and the rate cosine; every slot where two float simulators differ is listed
with its distance to threshold and cause.  Float and fixed point legitimately
differ near threshold; those slots are explained by recomputing the fixed-point
drive.  The NIR round trip exports the gates (or reads --nir FILE), imports them
in snnTorch and Norse (dt passed explicitly) and compares with the float
reference.  Error vs T (8..64) uses the references' fast twins (the emulators,
bit-exact with Lava).  --mapped MAPDIR validates the mapping `map --out MAPDIR`
saved (refused if made from another checkpoint).

DIR (default runs/validate-<ckpt stem>-T<T>) gets report.md, report.json,
gates.nir and the figures, all or nothing.  Exit 0: every bar met; 1: a bar
missed (report still written); 2: bad input; 3: a backend unavailable here;
4: a simulator failed at run time (a Lava process died, a timeout, a full disk).
"""

from __future__ import annotations

import argparse
import sys
import time

from ember_neuro import cli
from ember_neuro.backends import registry
from ember_neuro.validation.compare import roles
from ember_neuro.validation.pipeline import Progress, ValidateRequest, summary, validate_checkpoint


def build_parser() -> argparse.ArgumentParser:
    table = "\n".join(f"  {b.label:<16}{b.description}" + ("  [reference]" if b.reference else "")
                      for b in registry.validated())
    ap = cli.parser("ember_neuro.validate", __doc__, cli.WINDOW_EPILOG
                    + f"\nsimulators compared (the backend registry, in report order):\n{table}\n")
    ap.add_argument("checkpoint", help="Ember checkpoint (.pt) with LIF gates")
    cli.add_window_options(ap, ", or the --mapped mapping's")
    ap.add_argument("--mapped", metavar="MAPDIR", help="validate the mapping saved by `map --out MAPDIR`")
    ap.add_argument("--out", help="report folder (default runs/validate-<ckpt stem>-<T<T>|mapped|chosen>)")
    ap.add_argument("--force", action="store_true", help="replace --out if it exists")
    cli.add_json_option(ap, "print one JSON summary object on stdout")
    ap.add_argument("--nir", help="validate this existing NIR gate file instead of exporting one")
    ap.add_argument("--grid-only", action="store_true", help="skip observed attention probabilities")
    ap.add_argument("--data", help="text for observed probabilities (default: the checkpoint's corpus)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a Lava run is stopped")
    cli.add_threads_option(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    t0 = time.time()
    args = build_parser().parse_args(argv)
    progress = Progress(enabled=not args.json and sys.stderr.isatty())  # a bar is for people

    def validate(a: argparse.Namespace) -> dict:
        try:
            cli.torch_threads(a.threads)
            return validate_checkpoint(cli.from_args(ValidateRequest, a), progress, t0)
        finally:  # the bar is gone before an error line is printed
            progress.close()

    def report(result: dict) -> None:
        sims = roles()
        for key in sims.headline_pairs():
            print(f"{key:<30} agreement {result['agreement'][key]:.7f}")
        print(f"NIR round trip vs {sims.ref_float}: {result['nir_roundtrip']}")
        print(f"max_abs_error {result['max_abs_error']:.6f} (bound {result['bound']:.6f}); "
              f"{'all bars met' if result['passed'] else 'MISSED: ' + '; '.join(result['failures'])}; "
              f"{result['seconds']:.1f} s")
        print(f"wrote {result['out']}/report.md")

    return cli.run_and_report(lambda a: summary(validate(a)) if a.json else validate(a), args,
                          "interrupted: nothing was written", report, lambda r: 0 if r["passed"] else 1)


if __name__ == "__main__":
    sys.exit(main())
