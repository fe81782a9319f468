"""Describe an Ember checkpoint (or an untrained preset): config, counts, gate table.

    python -m ember_neuro.inspect ckpt.pt [--json]
    python -m ember_neuro.inspect --preset paper --variant lif-refractory

Heads are named the way the research notes do: "L0H3 theta=1.14, k=2.82".

Every gate unit also gets its attenuation ``swing`` = (1 - leak)(fire(hi) - fire(lo))
over its input range (ember_neuro/swing.py): p in [0, 1] for attention heads, the
observed |h| range on validation text for Liquid Ember's neurons (``--data``).  A
pass-through gate has swing ~ 0; "strong" means swing >= 0.25.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import Any

from ember_neuro.cli import add_json_option, parser, run_and_report
from ember_neuro.deploy.mapping import gate_params
from ember_neuro.kinds import registry
from ember_neuro.kinds.spec import GateKind
from ember_neuro.models.build import build_model, param_counts
from ember_neuro.models.checkpoint import load_checkpoint
from ember_neuro.models.config import PRESETS, config_for

PER_UNIT_ROWS = 16  # more units per layer than this: per-layer statistics unless --all
STANDARD_KEYS = ("kind", "layer", "head", "theta", "leak", "k", "swing", "swing_range")


def describe(model, cfg, val_loss: float, source: str, iter_num: int | None) -> dict:
    """The config, the parameter counts and every gate kind's trained units (by inspect key)."""
    counts = param_counts(model)
    d = {
        "source": source, "variant": cfg.variant, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
        "n_embd": cfg.n_embd, "block_size": cfg.block_size, "vocab_size": cfg.vocab_size,
        "iter_num": iter_num, "gate_param_count": counts["gate"], "total_param_count": counts["total"],
        "val_loss": None if math.isnan(val_loss) else val_loss, "spike": cfg.spike,
    }
    if cfg.is_classifier:  # Audio Liquid Ember: its front end and classes instead of a vocabulary
        d.update(frames=cfg.block_size, n_mels=cfg.n_mels, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                 audio_length=cfg.audio_length, num_classes=cfg.num_classes, cfc_units=cfg.cfc_units)
    # every kind's key, empty where this variant has none (a JSON reader finds each key every time)
    d.update({k.inspect_key: [] for v in registry.VARIANTS.values() for k in v.kinds})
    d.update(registry.gate_records(cfg.variant, gate_params(model), cfg.n_layer))
    return d


DataOf = Callable[[], Any] | None  # the checkpoint's validation data, loaded on demand (None: none)


def add_swings(d: dict, model, data_of: DataOf) -> None:
    """Per-unit ``swing`` in d["gates"] and a ``swing`` summary (deploy/swing.py).  A kind whose swing
    needs an observed input range (Liquid Ember's |h|) needs the checkpoint's validation data (text
    in its vocabulary, or its keyword clips); without it the swing is None."""
    from ember_neuro.deploy import swing

    if not d["gates"]:
        return
    data = None
    if swing.needs_data(model):
        if data_of is None:
            d["swing"] = {"units": len(d["gates"]),
                          "note": f"{d['variant']} swing needs a checkpoint's validation data"}
            for g in d["gates"]:
                g["swing"] = None
            return
        data = data_of()
    units = swing.unit_swings(model, data)
    by_unit = {(u["kind"], u["layer"], u["head"]): u for u in units}
    for g in d["gates"]:
        u = by_unit[(g["kind"], g["layer"], g["head"])]
        g["swing"] = u["swing"]
        if data is not None:
            g["swing_range"] = [u["lo"], u["hi"]]
    d["swing"] = swing.summarise(units)


FIRE_BATCHES = 8  # validation batches (of 8 sequences) the observed fire rates are measured on


def add_fire_rates(d: dict, model, data_of: DataOf) -> None:
    """Per layer of a kind whose fire gates compute (temporal-lif's membrane): the mean fire and the
    share of tokens whose fire is exactly 0 (their MLP is skipped), observed on validation text --
    for a hard-spike model the spike rate and the MLP calls it saves."""
    from ember_neuro.models.hooks import observed_fire

    kinds = [k for k in registry.get(d["variant"]).kinds if k.metrics is not None]
    if not kinds or data_of is None:
        return
    data = data_of()
    seen = observed_fire(model, (x for x, _ in data.val_batches(FIRE_BATCHES, 8, model.config.block_size,
                                                                  seed=0)))
    for kind in kinds:
        for row in d[kind.inspect_key]:
            if row.get("kind") == kind.name and (kind.hook, row["layer"]) in seen:
                fire = seen[(kind.hook, row["layer"])]
                row["fire_rate"] = float(fire.mean())
                row["skipped"] = float((fire == 0).double().mean())


def unit_table(kind: GateKind, rows: list[dict], show_all: bool) -> list[str]:
    """One row per unit (theta, leak, k, swing, and any further trained values), or with many units
    per layer (per-neuron gates) min / mean / max per layer unless ``show_all``."""
    per_layer = max(sum(1 for r in rows if r["layer"] == layer) for layer in {r["layer"] for r in rows})
    if per_layer > PER_UNIT_ROWS and not show_all:
        lines = ["per-neuron gates, per layer (min / mean / max); --all lists every neuron"]
        for layer in sorted({r["layer"] for r in rows}):
            rl = [r for r in rows if r["layer"] == layer]
            stats = [f"{key} {min(r[key] for r in rl):.3f}/{sum(r[key] for r in rl) / len(rl):.3f}/"
                     f"{max(r[key] for r in rl):.3f}" for key in ("theta", "leak", "k")]
            lines.append(f"  L{layer} ({len(rl)} neurons): " + "  ".join(stats))
        return lines
    extra = [key for key in rows[0] if key not in STANDARD_KEYS]
    lines = [f"{'unit':>8} {'theta':>8} {'leak':>7} {'k':>7} {'swing':>6}"
             + "".join(f" {key.split('_')[0]:>7}" for key in extra)]
    for r in rows:
        sw = "--" if r.get("swing") is None else f"{r['swing']:.3f}"
        lines.append(f"{'L' + str(r['layer']) + kind.unit_tag + str(r['head']):>8} {r['theta']:8.3f} "
                     f"{r['leak']:7.3f} {r['k']:7.3f} {sw:>6}" + "".join(f" {r[key]:7.3f}" for key in extra))
    return lines


def format_text(d: dict, show_all: bool = False) -> str:
    shape = (f"  CfC units {d['cfc_units']}  classes {d['num_classes']}  input {d['n_mels']}-bin log-mel "
             f"(n_fft {d['n_fft']}, hop {d['hop_length']}), {d['frames']} frames per "
             f"{d['audio_length']}-sample clip" if "num_classes" in d
             else f"  heads {d['n_head']}  block {d['block_size']}  vocab {d['vocab_size']}")
    lines = [
        f"{d['source']}",
        f"variant {d['variant']}  layers {d['n_layer']}  dim {d['n_embd']}" + shape,
        f"parameters {d['total_param_count']:,} (nanoGPT count)  gate parameters "
        f"{d['gate_param_count']:,}",
        f"val loss {d['val_loss']:.4f}" if d["val_loss"] is not None else "val loss -- (untrained)",
    ]
    if d.get("spike") == "hard":
        lines.append("membrane: hard spikes (trained with the chip's 0/1 spike; a silent token skips "
                     "its MLP)")
    kinds = registry.get(d["variant"]).kinds
    if not kinds:
        lines.append("no LIF gate (nothing to map)")
    notes = []
    for kind in kinds:
        rows = [r for r in d[kind.inspect_key] if r.get("kind") == kind.name]
        if rows and "theta" in rows[0]:
            lines += unit_table(kind, rows, show_all)
        if kind.describe is not None:
            notes += kind.describe(rows)
    sw = d.get("swing", {})
    if "strong" in sw:
        lines.append(f"swing (1 - leak)(fire(hi) - fire(lo)) >= {sw['bar']}: {sw['strong']} of "
                     f"{sw['units']} units ({sw['strong_fraction']:.0%}); "
                     f"median {sw['swing_quantiles'][2]:.3f}, max {sw['swing_quantiles'][4]:.3f}")
    return "\n".join(lines + notes)


def main(argv: list[str] | None = None) -> int:
    ap = parser("ember_neuro.inspect", __doc__)
    ap.add_argument("checkpoint", nargs="?", help="checkpoint .pt file")
    ap.add_argument("--preset", choices=list(PRESETS), help="describe an untrained model")
    ap.add_argument("--variant", choices=registry.names(), help="with --preset")
    add_json_option(ap)
    ap.add_argument("--all", action="store_true", help="list every per-neuron gate (Liquid Ember)")
    ap.add_argument("--data", default=None,
                    help="validation data for an observed input range (Liquid Ember's |h|): text "
                         "(default: the Shakespeare corpus), or for an audio model a Speech Commands v2 "
                         "folder (default: the project's keyword set)")
    args = ap.parse_args(argv)
    if bool(args.checkpoint) == bool(args.preset):
        ap.error("give either a checkpoint or --preset P --variant V")
    if args.preset and not args.variant:
        ap.error("--preset needs --variant")

    def describe_source(a: argparse.Namespace) -> dict:
        if a.checkpoint:
            from functools import cache

            from ember_neuro.models.data import data_for

            ck = load_checkpoint(a.checkpoint)
            d = describe(ck.model, ck.config, ck.best_val_loss, ck.path, ck.iter_num)
            if ck.labels is not None:
                d["labels"] = list(ck.labels)
            has_data = ck.vocab is not None or ck.labels is not None
            data_of = cache(lambda: data_for(ck, a.data)) if has_data else None
            add_swings(d, ck.model, data_of)
            add_fire_rates(d, ck.model, data_of)
            return d
        cfg = config_for(a.variant, a.preset)
        model = build_model(cfg)
        d = describe(model, cfg, math.nan, f"untrained {a.variant} ({a.preset} preset)", None)
        add_swings(d, model, None)
        return d

    return run_and_report(describe_source, args, "interrupted", lambda d: print(format_text(d, args.all)))


if __name__ == "__main__":
    sys.exit(main())
