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
import json
import math
import sys

from ember_neuro.cli import run_guarded
from ember_neuro.deploy.mapping import gate_params
from ember_neuro.mappers.params import temporal_records
from ember_neuro.mappers.registry import gate_records
from ember_neuro.models.build import build_model, param_counts
from ember_neuro.models.checkpoint import load_checkpoint
from ember_neuro.models.config import PRESETS, VARIANTS, config_for

NOTABLE_THETA = 0.1  # the notes call heads with |theta| above this "deviating from pass-through"


def describe(model, cfg, val_loss: float, source: str, iter_num: int | None) -> dict:
    counts = param_counts(model)
    params = gate_params(model)
    return {
        "source": source,
        "variant": cfg.variant,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_embd": cfg.n_embd,
        "block_size": cfg.block_size,
        "vocab_size": cfg.vocab_size,
        "iter_num": iter_num,
        "gate_param_count": counts["gate"],
        "total_param_count": counts["total"],
        "val_loss": None if math.isnan(val_loss) else val_loss,
        "gates": gate_records(cfg.variant, params, cfg.n_layer),
        "temporal": temporal_records(params, cfg.n_layer) if cfg.variant == "temporal-lif" else [],
    }


def add_swings(d: dict, model, vocab: str | None, data_path: str | None) -> None:
    """Per-unit ``swing`` in d["gates"] and a ``swing`` summary (swing.py).  Liquid Ember needs
    text in the checkpoint's vocabulary for its |h| range; without it the swing is None."""
    from ember_neuro import swing

    if not d["gates"]:
        return
    data = None
    if not model.config.is_transformer:
        if vocab is None:
            d["swing"] = {"units": len(d["gates"]), "note": "cfc-lif swing needs a checkpoint's vocabulary"}
            for g in d["gates"]:
                g["swing"] = None
            return
        from ember_neuro.models.data import load_data

        data = load_data(data_path, vocab=vocab)
    units = swing.unit_swings(model, data)
    by_unit = {(u["layer"], u["head"]): u for u in units}
    for g in d["gates"]:
        u = by_unit[(g["layer"], g["head"])]
        g["swing"] = u["swing"]
        if data is not None:
            g["swing_range"] = [u["lo"], u["hi"]]
    d["swing"] = swing.summarise(units)


def format_text(d: dict, show_all: bool = False) -> str:
    lines = [
        f"{d['source']}",
        f"variant {d['variant']}  layers {d['n_layer']}  heads {d['n_head']}  dim {d['n_embd']}"
        f"  block {d['block_size']}  vocab {d['vocab_size']}",
        f"parameters {d['total_param_count']:,} (nanoGPT count)  gate parameters "
        f"{d['gate_param_count']:,}",
        f"val loss {d['val_loss']:.4f}" if d["val_loss"] is not None else "val loss -- (untrained)",
    ]
    gates = d["gates"]
    if not gates:
        lines.append("no LIF gate (nothing to map)")
    per_neuron = d["variant"] == "cfc-lif"
    if gates and (not per_neuron or show_all):
        extra = "ref_strength" in gates[0]
        lines.append(f"{'unit':>8} {'theta':>8} {'leak':>7} {'k':>7} {'swing':>6}"
                     + (f" {'ref':>7} {'cross':>7}" if extra else ""))
        for g in gates:
            name = f"L{g['layer']}{'N' if per_neuron else 'H'}{g['head']}"
            sw = "--" if g.get("swing") is None else f"{g['swing']:.3f}"
            row = f"{name:>8} {g['theta']:8.3f} {g['leak']:7.3f} {g['k']:7.3f} {sw:>6}"
            if extra:
                row += f" {g['ref_strength']:7.3f} {g['cross_layer_weight']:7.3f}"
            lines.append(row)
    elif gates:
        lines.append("per-neuron gates, per layer (min / mean / max); --all lists every neuron")
        for layer in sorted({g["layer"] for g in gates}):
            gl = [g for g in gates if g["layer"] == layer]
            stats = []
            for key in ("theta", "leak", "k"):
                vals = [g[key] for g in gl]
                stats.append(f"{key} {min(vals):.3f}/{sum(vals) / len(vals):.3f}/{max(vals):.3f}")
            lines.append(f"  L{layer} ({len(gl)} neurons): " + "  ".join(stats))
    sw = d.get("swing", {})
    if "strong" in sw:
        lines.append(f"swing (1 - leak)(fire(hi) - fire(lo)) >= {sw['bar']}: {sw['strong']} of "
                     f"{sw['units']} units ({sw['strong_fraction']:.0%}); "
                     f"median {sw['swing_quantiles'][2]:.3f}, max {sw['swing_quantiles'][4]:.3f}")
    if gates and not per_neuron:
        notable = [g for g in gates if abs(g["theta"]) > NOTABLE_THETA]
        if notable:
            lines.append(f"off pass-through (|theta| > {NOTABLE_THETA}): " + "; ".join(
                f"L{g['layer']}H{g['head']} θ={g['theta']:.2f}, k={g['k']:.2f}"
                + (" (bypass)" if g["theta"] < 0 else "") for g in notable))
    for t in d["temporal"]:
        lines.append(f"  L{t['layer']} membrane: decay={t['decay']:.3f} "
                     f"threshold={t['threshold']:.3f} steepness={t['steepness']:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ember_neuro.inspect", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?", help="checkpoint .pt file")
    ap.add_argument("--preset", choices=list(PRESETS), help="describe an untrained model")
    ap.add_argument("--variant", choices=VARIANTS, help="with --preset")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--all", action="store_true", help="list every per-neuron gate (Liquid Ember)")
    ap.add_argument("--data", default=None,
                    help="text for Liquid Ember's observed |h| range (default: the Shakespeare corpus)")
    args = ap.parse_args(argv)
    if bool(args.checkpoint) == bool(args.preset):
        ap.error("give either a checkpoint or --preset P --variant V")
    if args.preset and not args.variant:
        ap.error("--preset needs --variant")

    def describe_source(a: argparse.Namespace) -> dict:
        if a.checkpoint:
            ck = load_checkpoint(a.checkpoint)
            d = describe(ck.model, ck.config, ck.best_val_loss, ck.path, ck.iter_num)
            add_swings(d, ck.model, ck.vocab, a.data)
            return d
        cfg = config_for(a.variant, a.preset)
        model = build_model(cfg)
        d = describe(model, cfg, math.nan, f"untrained {a.variant} ({a.preset} preset)", None)
        add_swings(d, model, None, None)
        return d

    code, d = run_guarded(describe_source, args, "interrupted")
    if code:
        return code
    print(json.dumps(d) if args.json else format_text(d, args.all))
    return 0


if __name__ == "__main__":
    sys.exit(main())
