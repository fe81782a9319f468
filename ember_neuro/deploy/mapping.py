"""A checkpoint's gates -> a :class:`MappedNetwork`, and how faithfully a backend runs it.

The library behind ``python -m ember_neuro.map`` (and used by run, validate, the
bundle and the benchmarks): reading the raw gate arrays out of a loaded model,
mapping them through the variant registry (mappers/registry.py), loading a
saved mapping instead (with the checkpoint's sha256 checked), and measuring each
unit's spike-rate error on a backend against the trained sigmoid.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ember_neuro.backends import registry
from ember_neuro.cli import package_versions
from ember_neuro.mappers import (
    MappedNetwork,
    MappingError,
    MappingOptions,
    load_mapped,
    map_variant,
)
from ember_neuro.mappers.gate import MAX_LEVELS
from ember_neuro.mappers.registry import check_variant
from ember_neuro.models.build import is_gate_param
from ember_neuro.models.checkpoint import Checkpoint

MAX_TIMESTEPS = 4096


def versions() -> dict[str, Any]:
    return {"python": platform.python_version(),
            **package_versions(("ember-neuro", "lava-nc", "torch", "numpy"))}


def check_window(timesteps: int, neurons_per_gate: int) -> None:
    """One-line refusal of a window the fixed-point mapping cannot hold."""
    t, n = timesteps, neurons_per_gate
    if t < 1 or n < 1 or t > MAX_TIMESTEPS or t * n > MAX_LEVELS:
        raise MappingError(f"--timesteps {t} / --neurons-per-gate {n} out of range (T in 1..{MAX_TIMESTEPS}, "
                           f"N >= 1, N*T <= {MAX_LEVELS}: the dither levels must fit Loihi's 24-bit "
                           "current, and the bound 1/(2NT) is tiny long before)")


def gate_params(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """A model's raw gate arrays (float64 numpy), the only input a mapper gets."""
    return {k: v.detach().double().cpu().numpy() for k, v in model.state_dict().items()
            if is_gate_param(k)}


CALIBRATION_SEED = 0
CALIBRATION_BATCHES = 4  # of 8 windows each: 2,048 tokens of validation text
CALIBRATION_HEADROOM = 1.05  # payload scale = this x the largest value seen
CALIBRATED = ("cfc-lif", "temporal-lif")


@torch.no_grad()
def calibrate(ck: Checkpoint, data_path: str | None = None) -> dict[str, Any]:
    """Payload scales of the unbounded gate inputs, measured on validation text.

    cfc-lif: the largest |h| of each CfC layer (``hidden_scale``); temporal-lif: the largest
    membrane V entering each layer's fire (``membrane_scale``) and the largest ||attn_out||
    any layer integrates (``importance_scale``, the hard membrane's input).  Each scale is
    CALIBRATION_HEADROOM times the maximum over CALIBRATION_BATCHES fixed batches; a value
    above it is clipped on chip and counted by the hybrid run.
    """
    from ember_neuro import gates
    from ember_neuro.models.data import load_data

    variant, n_layer = ck.config.variant, ck.config.n_layer
    if variant not in CALIBRATED:
        return {}
    if ck.vocab is None:
        raise MappingError(f"{ck.path} has no vocabulary (config.vocab): {variant} needs text to "
                           "calibrate its payload scales")
    data = load_data(data_path, vocab=ck.vocab)
    batches = data.val_batches(CALIBRATION_BATCHES, 8, ck.config.block_size, seed=CALIBRATION_SEED)
    seen = {"value": [0.0] * n_layer, "importance": [0.0] * n_layer}

    def hidden(layer, h, theta, k, loads=None):
        seen["value"][layer] = max(seen["value"][layer], float(h.abs().max()))
        return gates.fire_curve(h, theta, k)

    def membrane(layer, v, importance):
        seen["value"][layer] = max(seen["value"][layer], float(v.abs().max()))
        seen["importance"][layer] = max(seen["importance"][layer], float(importance.max()))
        block = ck.model.transformer.h[layer]
        return gates.membrane_fire(v, block.temporal_threshold, block.temporal_steepness)

    for x, _ in batches:
        if variant == "cfc-lif":
            ck.model(x, fire_fn=hidden)
        else:
            ck.model(x, membrane_fn=membrane)
    out: dict[str, Any] = {"source": data.source, "batches": CALIBRATION_BATCHES, "seed": CALIBRATION_SEED,
                           "headroom": CALIBRATION_HEADROOM}
    key = "hidden_scale" if variant == "cfc-lif" else "membrane_scale"
    out[key] = [CALIBRATION_HEADROOM * v for v in seen["value"]]
    if variant == "temporal-lif":
        out["importance_scale"] = CALIBRATION_HEADROOM * max(seen["importance"])
    return out


def map_checkpoint(ck: Checkpoint, options: MappingOptions, calibration: dict | None = None,
                   data: str | None = None) -> MappedNetwork:
    """Map every gate of a loaded checkpoint (MappingError, one line, for other variants).

    Variants with unbounded gate inputs are calibrated on validation text first (``data``;
    default: the Shakespeare corpus) unless ``calibration`` is given.
    """
    check_window(options.timesteps, options.neurons_per_gate)
    check_variant(ck.config.variant)
    if calibration is None:
        calibration = calibrate(ck, data)
    groups = map_variant(ck.config.variant, gate_params(ck.model), ck.config.n_layer, options, calibration)
    return MappedNetwork(
        variant=ck.config.variant, groups=groups,
        options={"timesteps": options.timesteps, "neurons_per_gate": options.neurons_per_gate,
                 "input_bits": options.input_bits, "dither_bits": options.dither_bits,
                 "levels": options.levels, "level_floor": options.level_floor,
                 "calibration": calibration},
        checkpoint={"path": ck.path, "sha256": ck.sha256, "iter_num": ck.iter_num,
                    "val_loss": ck.best_val_loss},
        versions=versions())


def choose_window(ck: Checkpoint, max_error: float | None = None, timesteps: int | None = None,
                  budget: int = 1_048_576, levels: str = "uniform", data: str | None = None) -> Any:
    """budget.choose for a checkpoint: the (T, N) with the fewest timesteps meeting `max_error`
    (or the most N at `timesteps`) within `budget` neurons of the generation layout (every unit
    owns block_size input slots).  Calibrated once; one mapping per (T, N) tried."""
    from ember_neuro.deploy import budget as B

    check_variant(ck.config.variant)
    calibration = calibrate(ck, data)
    params, n_layer = gate_params(ck.model), ck.config.n_layer

    def map_at(t: int, n: int) -> dict[str, Any]:
        return map_variant(ck.config.variant, params, n_layer,
                           MappingOptions(timesteps=t, neurons_per_gate=n, levels=levels), calibration)

    shape = map_at(1, 1)
    return B.choose(map_at, lambda n: B.deployed_neurons(shape, ck.config.block_size, n), max_error,
                    timesteps, budget)


def mapping_for(ck: Checkpoint, mapped: str | Path | None, timesteps: int | None,
                neurons_per_gate: int | None, data: str | None = None,
                levels: str | None = None) -> MappedNetwork:
    """The saved mapping at `mapped` (refused if made from another checkpoint, or for other
    T/N/levels than asked), or a fresh mapping of `ck` (defaults: T = 32, N = 1, uniform)."""
    if mapped is None:
        return map_checkpoint(ck, MappingOptions(timesteps=32 if timesteps is None else timesteps,
                                                 neurons_per_gate=1 if neurons_per_gate is None
                                                 else neurons_per_gate,
                                                 levels=levels or "uniform"), data=data)
    net = load_mapped(mapped, expect_sha256=ck.sha256)
    saved = {**net.options, "levels": net.options.get("levels", "uniform")}
    for name, asked in (("timesteps", timesteps), ("neurons_per_gate", neurons_per_gate), ("levels", levels)):
        if asked is not None and saved.get(name) != asked:
            raise MappingError(f"{mapped} was mapped with {name} = {saved.get(name)}, not {asked}; "
                               "drop the option or map again")
    return net


def format_table(rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """The per-unit fidelity table `map` prints (Liquid Ember: per layer, its worst neuron)."""
    lines = [f"{'unit':>8} {'theta':>7} {'leak':>6} {'k':>6} {'N':>3} {'w_in/w_d':>9} "
             f"{'max err':>9} {'exact':>9} {'bound':>8}  ok"]
    shown = rows
    if len(rows) > 48:  # per-neuron gates: the worst unit of each (group, layer)
        worst: dict[tuple, dict] = {}
        for r in rows:
            key = (r["group"], r["layer"])
            if key not in worst or r["max_abs_error"] > worst[key]["max_abs_error"]:
                worst[key] = r
        shown = list(worst.values())
        lines[0] += "   (worst neuron of each layer; --json lists all)"
    for r in shown:
        lines.append(
            f"{r['name']:>8} {r['theta']:7.3f} {r['leak']:6.3f} {r['k']:6.3f} {r['neurons']:3d} "
            f"{str(r['w_in']) + '/' + str(r['w_dither']):>9} {r['max_abs_error']:9.5f} "
            f"{r['fixed_worst_case_error']:9.5f} {r['bound']:8.5f}  {'yes' if r['within'] else 'NO'}")
    be = summary["emulator_bit_exact"]
    lines.append(
        f"target {summary['target']}, T={summary['timesteps']}, N={summary['neurons_per_gate']}, "
        f"{summary.get('levels', 'uniform')} levels: max error {summary['max_abs_error']:.5f} vs bound "
        f"{summary['bound']:.5f} ({summary['max_abs_error'] - summary['bound']:+.5f}); twin bit-exact: "
        f"{'n/a' if be is None else be}; {summary['seconds']:.1f} s")
    return "\n".join(lines)


def write_map_outputs(dest: Path, force: bool, net: MappedNetwork, summary: dict[str, Any],
                      measured: dict[str, Any]) -> None:
    """DIR: mapped.npz (save_mapped), manifest.json and one transfer-curve plot per group and layer,
    all written atomically."""
    import json

    from ember_neuro import plots
    from ember_neuro.atomic import atomic_dir
    from ember_neuro.deploy.fidelity import GRID_POINTS, points_per_unit
    from ember_neuro.mappers import save_mapped

    manifest = {
        "versions": dict(net.versions), "checkpoint": {**net.checkpoint, "variant": net.variant},
        "options": {"target": summary["target"], **dict(net.options)},
        "fidelity": {k: v for k, v in summary.items() if k not in ("heads", "units")},
        "heads": summary["heads"], "units": summary["units"],
    }
    with atomic_dir(dest, force=force) as tmp:
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        save_mapped(net, tmp / "mapped.npz")
        for name, m in measured["groups"].items():
            group = net.group(name)
            u, points = len(group.units), points_per_unit(group, GRID_POINTS)
            grid_rates = m["rates"][: points * u].reshape(points, u)
            grid_x = m["inputs"].values["input"][: points * u].reshape(points, u)
            for layer in sorted({unit.layer for unit in group.units}):
                idx = [i for i, unit in enumerate(group.units) if unit.layer == layer]
                if len(idx) > 16:  # per-neuron gates: the 8 steepest of the layer
                    idx = sorted(idx, key=lambda i: -group.units[i].k)[:8]
                prefix = "transfer" if name == "attention" else f"transfer_{name}"
                plots.transfer_curves(
                    tmp / f"{prefix}_L{layer}.png",
                    f"{name}, layer {layer}: mapped spike-rate gate vs trained sigmoid [{summary['target']}]",
                    [group.units[i] for i in idx], grid_x[:, idx],
                    {f"spike rate, NT={group.timesteps * group.neurons_per_gate}": grid_rates[:, idx]},
                    group.bound, errors=(f"spike rate, NT={group.timesteps * group.neurons_per_gate}",),
                    xlabel={"attention": "attention probability p", "hidden": "|h|"}.get(name, "V"))


def map_and_measure(checkpoint: str, target: str = "lava-sim", timesteps: int = 32,
                    neurons_per_gate: int = 1, out: str | None = None, force: bool = False,
                    data: str | None = None, grid_only: bool = False, timeout_s: float = 120.0,
                    bit_exact_check: bool = True, levels: str = "uniform") -> dict[str, Any]:
    """What ``map`` does: map (calibrating on `data` where needed), run every gate unit over its
    input grid (+ observed inputs) on `target` and its twin, measure, and write the mapped network
    (with manifest and plots) to `out`.  Returns the summary."""
    import sys
    import time

    from ember_neuro.atomic import check_output_dir
    from ember_neuro.deploy.fidelity import measure, observed_inputs
    from ember_neuro.models.checkpoint import load_checkpoint

    t0 = time.time()
    check_window(timesteps, neurons_per_gate)
    backend = registry.require(target)
    if not backend.spiking:
        raise MappingError(f"target {target!r} does not spike; choose one of "
                           f"{', '.join(registry.names(spiking=True))}")
    dest = Path(out) if out else None
    if dest is not None:
        check_output_dir(dest, force)
    ck = load_checkpoint(checkpoint)
    net = map_checkpoint(ck, MappingOptions(timesteps=timesteps, neurons_per_gate=neurons_per_gate,
                                            levels=levels), data=data)
    for w in net.warnings:
        print(f"warning: {w}", file=sys.stderr)
    observed, data_source = None, None
    if not grid_only:
        try:
            observed, data_source = observed_inputs(ck, net, data)
        except Exception as exc:  # noqa: BLE001 - data is optional for mapping: say so, use the grid
            print(f"warning: no observed inputs ({exc}); using the grid only", file=sys.stderr)
    measured = measure(net, target, observed, timeout_s, bit_exact_check)
    rows = measured["rows"]
    exact = [v for v in measured["bit_exact"].values() if v is not None]
    first = next(iter(measured["groups"].values()))
    summary: dict[str, Any] = {
        "target": target, "variant": net.variant, "timesteps": timesteps,
        "neurons_per_gate": neurons_per_gate, "levels": levels,
        "heads": [r for r in rows if r["group"] == "attention"] or rows, "units": rows,
        "max_abs_error": max(r["max_abs_error"] for r in rows),
        "max_exact_worst_case": max(r["fixed_worst_case_error"] for r in rows),
        "bound": min(net.group(g).bound for g in measured["groups"]),
        "emulator_bit_exact": all(exact) if exact else None,
        "bit_exact_by_group": measured["bit_exact"],
        "saturated": [s for g in net.groups.values() for s in g.saturated],
        "warnings": list(net.warnings),
        "inputs_per_head": int(max(np.bincount(first["inputs"].unit_index))),
        "observed_source": data_source, "seconds": round(time.time() - t0, 2),
    }
    if "membrane_hard_spike_fraction" in measured:
        summary["membrane_hard_spike_fraction"] = measured["membrane_hard_spike_fraction"]
    if dest is not None:
        write_map_outputs(dest, force, net, summary, measured)
        summary["out"] = str(dest)
        summary["seconds"] = round(time.time() - t0, 2)
    return summary
