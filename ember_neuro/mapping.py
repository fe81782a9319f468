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
from ember_neuro.checkpoint import Checkpoint
from ember_neuro.cli import package_versions
from ember_neuro.gates import fire_curve_np
from ember_neuro.mappers import (
    MappedNetwork,
    MappingError,
    MappingOptions,
    NeuronGroup,
    gate_counts,
    load_mapped,
    map_variant,
)
from ember_neuro.mappers.gate import FIDELITY_MARGIN, MAX_LEVELS
from ember_neuro.zoo import is_gate_param

MAX_TIMESTEPS = 4096
GRID_POINTS = 1001
OBSERVED_PER_UNIT = 2000


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


def map_checkpoint(ck: Checkpoint, options: MappingOptions) -> MappedNetwork:
    """Map every gate of a loaded checkpoint (MappingError, one line, for other variants)."""
    check_window(options.timesteps, options.neurons_per_gate)
    groups = map_variant(ck.config.variant, gate_params(ck.model), ck.config.n_layer, options)
    return MappedNetwork(
        variant=ck.config.variant, groups=groups,
        options={"timesteps": options.timesteps, "neurons_per_gate": options.neurons_per_gate,
                 "input_bits": options.input_bits, "dither_bits": options.dither_bits},
        checkpoint={"path": ck.path, "sha256": ck.sha256, "iter_num": ck.iter_num,
                    "val_loss": ck.best_val_loss},
        versions=versions())


def mapping_for(ck: Checkpoint, mapped: str | Path | None, timesteps: int | None,
                neurons_per_gate: int | None) -> MappedNetwork:
    """The saved mapping at `mapped` (refused if made from another checkpoint, or for other
    T/N than asked), or a fresh mapping of `ck` (defaults: T = 32, N = 1)."""
    if mapped is None:
        return map_checkpoint(ck, MappingOptions(timesteps=32 if timesteps is None else timesteps,
                                                 neurons_per_gate=1 if neurons_per_gate is None
                                                 else neurons_per_gate))
    net = load_mapped(mapped, expect_sha256=ck.sha256)
    for name, asked in (("timesteps", timesteps), ("neurons_per_gate", neurons_per_gate)):
        if asked is not None and net.options.get(name) != asked:
            raise MappingError(f"{mapped} was mapped with {name} = {net.options.get(name)}, not {asked}; "
                               "drop the option or map again")
    return net


@torch.no_grad()
def observed_probs(ck: Checkpoint, data_path: str | None, per_unit: int,
                   seed: int = 0) -> tuple[dict[tuple[int, int], np.ndarray], str]:
    """Attention probabilities per (layer, head) on validation text (causal entries only)."""
    from ember_neuro.data import load_data

    data = load_data(data_path, vocab=ck.vocab)
    x, _ = data.val_batches(1, 4, ck.config.block_size, seed=seed)[0]
    seen: dict[int, torch.Tensor] = {}

    def record(layer: int, p: torch.Tensor, theta: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
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


def measure(group: NeuronGroup, target: str, inputs: list[np.ndarray], timeout_s: float,
            check_bit_exact: bool = True) -> tuple[np.ndarray, np.ndarray, bool | None, np.ndarray]:
    """Run every unit's inputs on `target`: (rates, unit_index, bit-exact vs the twin, raster).

    The twin is the other implementation of the same arithmetic (lava-sim <-> emulator);
    both rasters must be identical, spike for spike.
    """
    backend = registry.require(target)
    fixed = bool(backend.fixed)
    unit_index = np.concatenate([np.full(len(x), i) for i, x in enumerate(inputs)])
    array = group.layout(unit_index, fixed=fixed)
    payload = group.encode(np.concatenate(inputs), fixed=fixed)
    raster = backend.rasters(array, payload, timeout_s)[0]
    rates = group.decode(gate_counts(raster.sum(axis=0), group.neurons_per_gate))
    bit_exact = None
    if check_bit_exact and backend.twin is not None:
        twin = registry.get(backend.twin)
        try:
            twin.check()
        except registry.BackendUnavailable:
            twin = None
        if twin is not None:
            other = twin.rasters(array, payload, timeout_s)[0]
            bit_exact = bool(other.shape == raster.shape and np.array_equal(raster, other))
    return rates, unit_index, bit_exact, raster


def fidelity_table(group: NeuronGroup, rates: np.ndarray, unit_index: np.ndarray,
                   inputs: list[np.ndarray]) -> list[dict[str, Any]]:
    """One row per unit: trained parameters, realised weights, measured and exact worst error."""
    rows = []
    fp = group.fixed_params
    w_in, w_d = fp.connection("input").weight, fp.connection("dither").weight
    for i, u in enumerate(group.units):
        err = np.abs(rates[unit_index == i] - fire_curve_np(inputs[i], u.theta, u.k))
        rows.append({
            "layer": u.layer, "head": u.head, "theta": u.theta, "leak": u.leak, "k": u.k,
            "neurons": group.neurons_per_gate, "w_in": int(w_in[i]), "w_dither": int(w_d[i]),
            "k_effective": float(group.k_effective[i]),
            "bias_mant": int(fp.bias_mant[i]), "bias_exp": int(fp.bias_exp[i]),
            "max_abs_error": float(err.max()), "bound": group.bound,
            "fixed_worst_case_error": float(group.fixed_worst_error[i]),
            "within": bool(err.max() <= group.bound + FIDELITY_MARGIN),
        })
    return rows


def format_table(rows: list[dict[str, Any]], target: str, t: int, summary: dict[str, Any]) -> str:
    """The per-unit fidelity table `map` prints."""
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


def write_map_outputs(dest: Path, force: bool, net: MappedNetwork, rows: list[dict[str, Any]],
                      summary: dict[str, Any], grid: np.ndarray, rates_grid: list[np.ndarray]) -> None:
    """DIR: manifest.json, mapped.npz (save_mapped) and one transfer-curve plot per layer, atomically."""
    import json

    from ember_neuro import plots
    from ember_neuro.atomic import atomic_dir
    from ember_neuro.mappers import save_mapped

    group = net.group("attention")
    manifest = {
        "versions": dict(net.versions), "checkpoint": {**net.checkpoint, "variant": net.variant},
        "options": {"target": summary["target"], **dict(net.options),
                    "weight_exp": int(group.fixed_params.connection("input").weight_exp)},
        "fidelity": {k: v for k, v in summary.items() if k != "heads"},
        "heads": rows,
    }
    with atomic_dir(dest, force=force) as tmp:
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        save_mapped(net, tmp / "mapped.npz")
        rates = np.stack(rates_grid, axis=1)  # (G, U)
        for layer in sorted({u.layer for u in group.units}):
            idx = [i for i, u in enumerate(group.units) if u.layer == layer]
            plots.transfer_curves(
                tmp / f"transfer_L{layer}.png",
                f"Layer {layer}: mapped spike-rate gate vs trained sigmoid [{summary['target']}]",
                [group.units[i] for i in idx], grid,
                {f"spike rate, T={group.timesteps}": rates[:, idx]}, group.bound,
                errors=(f"spike rate, T={group.timesteps}",))

def map_and_measure(checkpoint: str, target: str = "lava-sim", timesteps: int = 32,
                    neurons_per_gate: int = 1, out: str | None = None, force: bool = False,
                    data: str | None = None, grid_only: bool = False, timeout_s: float = 120.0,
                    bit_exact_check: bool = True) -> dict[str, Any]:
    """What ``map`` does: map, run every unit over a p grid (+ observed p) on `target`, measure,
    and write the mapped network (with manifest and plots) to `out`.  Returns the summary."""
    import sys
    import time

    from ember_neuro.atomic import check_output_dir
    from ember_neuro.checkpoint import load_checkpoint

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
    net = map_checkpoint(ck, MappingOptions(timesteps=timesteps, neurons_per_gate=neurons_per_gate))
    group = net.group("attention")
    for w in net.warnings:
        print(f"warning: {w}", file=sys.stderr)
    grid = np.linspace(0.0, 1.0, GRID_POINTS)
    observed: dict[tuple[int, int], np.ndarray] = {}
    data_source = None
    if not grid_only:
        try:
            observed, data_source = observed_probs(ck, data, OBSERVED_PER_UNIT)
        except Exception as exc:  # noqa: BLE001 - data is optional for mapping: say so, use the grid
            print(f"warning: no observed probabilities ({exc}); using the grid only", file=sys.stderr)
    inputs = [np.concatenate([grid, observed.get((u.layer, u.head), np.empty(0))]) for u in group.units]
    rates, unit_index, bit_exact, _ = measure(group, target, inputs, timeout_s, bit_exact_check)
    rows = fidelity_table(group, rates, unit_index, inputs)
    summary: dict[str, Any] = {
        "target": target, "timesteps": group.timesteps, "neurons_per_gate": group.neurons_per_gate,
        "heads": rows, "max_abs_error": max(r["max_abs_error"] for r in rows), "bound": group.bound,
        "emulator_bit_exact": bit_exact, "saturated": list(group.saturated),
        "warnings": list(net.warnings), "inputs_per_head": int(max(len(x) for x in inputs)),
        "observed_source": data_source, "seconds": round(time.time() - t0, 2),
    }
    if dest is not None:
        rates_grid = [rates[unit_index == i][:GRID_POINTS] for i in range(len(group.units))]
        write_map_outputs(dest, force, net, rows, summary, grid, rates_grid)
        summary["out"] = str(dest)
        summary["seconds"] = round(time.time() - t0, 2)
    return summary
