"""Map a trained Ember checkpoint's LIF gates onto spiking neurons and measure fidelity.

    python -m ember_neuro.map ckpt.pt --target lava-sim [--timesteps 32] [--out DIR] [--json] [--force]

Targets:
  lava-sim        Lava's bit-accurate Loihi 2 fixed-point simulation (default)
  lava-sim-float  Lava's floating-point simulation
  emulator        ember-neuro's vectorised fixed-point emulator (bit-exact with lava-sim)
  loihi2          Lava's Loihi2HwCfg: needs Intel's lava-loihi extension (INRC)

Every gate's neurons are run over a dense grid of p in [0, 1] (1,001 points)
plus attention probabilities observed on validation text; the table shows each
head's max |spike rate - sigmoid(k(p - theta))| against the physical bound
1/(2 N T).  For fixed-point targets the same inputs are also run on the other
fixed-point implementation (Lava vs emulator) and compared spike for spike.
DIR receives manifest.json, mapped.npz and one transfer-curve plot per layer,
all or nothing.  See docs/mapping.md for the derivation.

Exit status: 0 every head within 1/(2NT) + 0.002; 1 mapped, but some head
outside that bar; 2 bad input (message says which); 3 target not available here.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ember_neuro import backends, plots
from ember_neuro.atomic import OutputExists, atomic_dir, check_output_dir
from ember_neuro.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from ember_neuro.cli import package_versions, run_guarded
from ember_neuro.gate_table import gate_units
from ember_neuro.gates import fire_curve_np
from ember_neuro.mappers import MappedGates, MappingOptions, map_gates
from ember_neuro.mappers.description import gate_counts
from ember_neuro.mappers.lif_gate import MAX_LEVELS

GRID_POINTS = 1001
OBSERVED_PER_UNIT = 2000
MAX_TIMESTEPS = 4096
MAPPABLE = ("lif-learnable", "lif-fixed", "temporal-lif")


class MapError(RuntimeError):
    """A request the mapper refuses, with a one-line reason."""


def mappable_units(ck: Checkpoint):
    variant = ck.config.variant
    if not ck.config.has_lif_gate:
        kind = "Liquid Ember (CfC)" if variant == "cfc" else "Transformer Ember"
        raise MapError(f"no LIF gate to map: {ck.path} is a {variant!r} {kind} checkpoint "
                       f"without gate parameters")
    if variant not in MAPPABLE:
        need = {"lif-refractory": "thresholds that move with attention load",
                "cfc-lif": "per-neuron gates on unbounded CfC outputs"}.get(variant, "another scheme")
        raise MapError(f"variant {variant!r} is not mapped yet (it needs {need}); "
                       f"this release maps {', '.join(MAPPABLE)}")
    return gate_units(ck.model)


@torch.no_grad()
def observed_probs(ck: Checkpoint, data_path: str | None, per_unit: int, seed: int = 0):
    """Attention probabilities per (layer, head) on validation text (causal entries only)."""
    from ember_neuro.data import load_data

    data = load_data(data_path, vocab=ck.vocab)
    cfg = ck.config
    x, _ = data.val_batches(1, 4, cfg.block_size, seed=seed)[0]
    seen: dict[int, torch.Tensor] = {}

    def record(layer, p, theta, k):
        seen[layer] = p.detach().clone()
        return torch.sigmoid(k * (p.abs() - theta))

    ck.model(x, fire_fn=record)
    g = torch.Generator().manual_seed(seed)
    t = x.shape[1]
    causal = torch.tril(torch.ones(t, t, dtype=torch.bool))
    out = {}
    for layer, p in seen.items():
        for h in range(p.shape[1]):
            vals = p[:, h][:, causal].reshape(-1)
            idx = torch.randperm(vals.numel(), generator=g)[:per_unit]
            out[(layer, h)] = vals[idx].double().numpy()
    return out, data.source


def measure(mapped: MappedGates, target: str, inputs: list[np.ndarray], timeout_s: float,
            check_bit_exact: bool = True):
    """Run every unit's inputs on `target`; per-unit rates and the bit-exact comparison."""
    fixed = backends.is_fixed(target)
    unit_index = np.concatenate([np.full(len(x), i) for i, x in enumerate(inputs)])
    values = np.concatenate(inputs)
    array = mapped.layout(unit_index, fixed=fixed)
    payload = mapped.encode(values, fixed=fixed)
    raster = backends.run_raster(target, array, payload, timeout_s=timeout_s)
    counts = gate_counts(raster.sum(axis=0), mapped.neurons_per_gate)
    rates = mapped.decode(counts)
    bit_exact = None
    if check_bit_exact:
        other = {"lava-sim": "emulator", "emulator": "lava-sim",
                 "lava-sim-float": "emulator-float", "emulator-float": "lava-sim-float"}.get(target)
        if other is not None:
            raster2 = backends.run_raster(other, array, payload, timeout_s=timeout_s)
            bit_exact = bool(raster.shape == raster2.shape and np.array_equal(raster, raster2))
    return rates, unit_index, bit_exact, raster


def fidelity_table(mapped: MappedGates, rates, unit_index, inputs) -> list[dict]:
    rows = []
    fp = mapped.fixed_params
    for i, u in enumerate(mapped.units):
        x = inputs[i]
        r = rates[unit_index == i]
        err = np.abs(r - fire_curve_np(x, u.theta, u.k))
        rows.append({
            "layer": u.layer, "head": u.head, "theta": u.theta, "leak": u.leak, "k": u.k,
            "neurons": mapped.neurons_per_gate,
            "w_in": int(fp.w_in[i]), "w_dither": int(fp.w_dither[i]),
            "k_effective": float(mapped.k_effective[i]),
            "bias_mant": int(fp.bias_mant[i]), "bias_exp": int(fp.bias_exp[i]),
            "max_abs_error": float(err.max()), "bound": mapped.bound,
            "fixed_worst_case_error": float(mapped.fixed_worst_error[i]),
            "within": bool(err.max() <= mapped.bound + 0.002),
        })
    return rows


def versions() -> dict:
    return {"python": platform.python_version(),
            **package_versions(("ember-neuro", "lava-nc", "torch", "numpy"))}


def format_table(rows: list[dict], target: str, t: int, summary: dict) -> str:
    lines = [f"{'head':>6} {'theta':>7} {'leak':>6} {'k':>6} {'N':>3} {'w_in/w_d':>9} "
             f"{'max err':>9} {'bound':>8}  ok"]
    for r in rows:
        lines.append(
            f"{'L{}H{}'.format(r['layer'], r['head']):>6} {r['theta']:7.3f} {r['leak']:6.3f} {r['k']:6.3f} "
            f"{r['neurons']:3d} {str(r['w_in']) + '/' + str(r['w_dither']):>9} "
            f"{r['max_abs_error']:9.5f} {r['bound']:8.5f}  {'yes' if r['within'] else 'NO'}")
    be = summary["emulator_bit_exact"]
    lines.append(
        f"target {target}, T={t}: max error {summary['max_abs_error']:.5f} vs bound "
        f"{summary['bound']:.5f} (+{summary['max_abs_error'] - summary['bound']:.5f}); "
        f"emulator bit-exact: {'n/a' if be is None else be}; {summary['seconds']:.1f} s")
    return "\n".join(lines)


def write_outputs(dest: Path, force: bool, mapped: MappedGates, rows, summary, grid,
                  rates_grid: list[np.ndarray], manifest: dict) -> None:
    with atomic_dir(dest, force=force) as tmp:
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        fp, fl = mapped.fixed_params, mapped.float_params
        np.savez(
            tmp / "mapped.npz",
            layer=np.array([u.layer for u in mapped.units]),
            head=np.array([u.head for u in mapped.units]),
            theta=np.array([u.theta for u in mapped.units]),
            leak=np.array([u.leak for u in mapped.units]),
            k=np.array([u.k for u in mapped.units]),
            levels=mapped.levels,
            fixed_w_in=fp.w_in, fixed_w_dither=fp.w_dither, fixed_bias_mant=fp.bias_mant,
            fixed_bias_exp=fp.bias_exp, fixed_dither=fp.dither,
            fixed_weight_exp=np.array([fp.in_weight_exp, fp.dither_weight_exp]),
            fixed_du_dv_vth=np.array([fp.du, fp.dv, fp.vth]),
            float_w_in=fl.w_in, float_w_dither=fl.w_dither, float_bias=fl.bias_mant,
            float_dither=fl.dither, float_du_dv_vth=np.array([fl.du, fl.dv, fl.vth]),
        )
        for layer in sorted({u.layer for u in mapped.units}):
            curves = []
            for i, u in enumerate(mapped.units):
                if u.layer == layer:
                    curves.append({"name": u.name, "theta": u.theta, "k": u.k, "p": grid,
                                   "rate": rates_grid[i], "target": fire_curve_np(grid, u.theta, u.k)})
            plots.transfer_curves(tmp / f"transfer_L{layer}.png", layer, curves,
                                  mapped.timesteps, mapped.bound, f"[{summary['target']}]")


def run(args) -> dict:
    t0 = time.time()
    if args.timesteps < 1:
        raise MapError(f"--timesteps must be >= 1, got {args.timesteps}")
    if args.timesteps > MAX_TIMESTEPS or args.timesteps * args.neurons_per_gate > MAX_LEVELS:
        raise MapError(f"--timesteps {args.timesteps} is too large (max {MAX_TIMESTEPS}, and "
                       f"T * neurons-per-gate <= {MAX_LEVELS}); the bound 1/(2T) is already tiny")
    backends.check_target(args.target)
    dest = Path(args.out) if args.out else None
    if dest is not None:
        check_output_dir(dest, args.force)
    ck = load_checkpoint(args.checkpoint)
    units = mappable_units(ck)
    mapped = map_gates(units, MappingOptions(timesteps=args.timesteps,
                                             neurons_per_gate=args.neurons_per_gate))
    for w in mapped.warnings:
        print(f"warning: {w}", file=sys.stderr)
    grid = np.linspace(0.0, 1.0, GRID_POINTS)
    observed, data_source = {}, None
    if not args.grid_only:
        try:
            observed, data_source = observed_probs(ck, args.data, OBSERVED_PER_UNIT)
        except Exception as exc:  # data is optional for mapping: say so, go on with the grid
            print(f"warning: no observed probabilities ({exc}); using the grid only", file=sys.stderr)
    inputs = [np.concatenate([grid, observed.get((u.layer, u.head), np.empty(0))]) for u in units]
    rates, unit_index, bit_exact, _ = measure(mapped, args.target, inputs, args.timeout,
                                              check_bit_exact=not args.no_bit_exact_check)
    rows = fidelity_table(mapped, rates, unit_index, inputs)
    summary = {
        "target": args.target,
        "timesteps": mapped.timesteps,
        "neurons_per_gate": mapped.neurons_per_gate,
        "heads": rows,
        "max_abs_error": max(r["max_abs_error"] for r in rows),
        "bound": mapped.bound,
        "emulator_bit_exact": bit_exact,
        "saturated": list(mapped.saturated),
        "warnings": list(mapped.warnings),
        "inputs_per_head": int(max(len(x) for x in inputs)),
        "observed_source": data_source,
    }
    summary["seconds"] = round(time.time() - t0, 2)
    if dest is not None:
        rates_grid = [rates[unit_index == i][:GRID_POINTS] for i in range(len(units))]
        manifest = {
            "versions": versions(),
            "checkpoint": {"path": ck.path, "sha256": ck.sha256, "variant": ck.config.variant,
                           "iter_num": ck.iter_num, "val_loss": ck.best_val_loss},
            "options": {"target": args.target, "timesteps": mapped.timesteps,
                        "neurons_per_gate": mapped.neurons_per_gate,
                        "input_bits": mapped.input_bits, "dither_bits": mapped.dither_bits,
                        "weight_exp": mapped.fixed_params.in_weight_exp},
            "fidelity": {k: v for k, v in summary.items() if k != "heads"},
            "heads": rows,
        }
        write_outputs(dest, args.force, mapped, rows, summary, grid, rates_grid, manifest)
        summary["out"] = str(dest)
        summary["seconds"] = round(time.time() - t0, 2)
    return summary


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m ember_neuro.map", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="Ember checkpoint (.pt)")
    ap.add_argument("--target", default="lava-sim", help=f"one of {', '.join(backends.TARGETS)}")
    ap.add_argument("--timesteps", "-T", type=int, default=32, help="window length T (default 32)")
    ap.add_argument("--neurons-per-gate", "-N", type=int, default=1,
                    help="neurons per gate; the bound is 1/(2NT) (default 1)")
    ap.add_argument("--out", help="write manifest, mapped parameters and plots to this folder")
    ap.add_argument("--force", action="store_true", help="replace --out if it exists")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--data", help="validation text for observed probabilities (default: Shakespeare)")
    ap.add_argument("--grid-only", action="store_true", help="skip observed probabilities")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a Lava run is stopped")
    ap.add_argument("--no-bit-exact-check", action="store_true",
                    help="skip running the other fixed-point implementation")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code, summary = run_guarded(
        run, args, (CheckpointError, MapError, OutputExists, PermissionError, ValueError, TimeoutError),
        "interrupted: nothing was written")
    if code:
        return code
    if args.json:
        print(json.dumps(summary))
    else:
        print(format_table(summary["heads"], summary["target"], summary["timesteps"], summary))
        if "out" in summary:
            print(f"wrote {summary['out']}/ (manifest.json, mapped.npz, transfer_L*.png)")
    ok = all(r["within"] for r in summary["heads"])
    return 0 if ok or math.isnan(summary["max_abs_error"]) else 1


if __name__ == "__main__":
    sys.exit(main())
