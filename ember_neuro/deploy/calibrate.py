"""What the mapping measures on validation text, through the model's gate hook (models/hooks.py).

* :func:`calibrate`: the payload scales of unbounded gate inputs (a CfC output |h|, the
  membrane V and ||attn_out||) -- each gate kind with a ``calibrate`` turns the largest |value|
  of every layer and hook input, times CALIBRATION_HEADROOM, into the entries its mapper reads.
  A value above its scale is clipped on chip and counted by the hybrid run.
* :func:`observed_inputs`: the gate inputs the model really produces, sampled per unit (what
  ``map`` and ``validate`` measure next to their grids).
* :func:`observe`: the one capture both use (and the swing's observed ranges): the model runs
  with its trained fire while a visitor sees every gate's inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from ember_neuro.deploy.fidelity import UnitInputs, grid_inputs, points_per_unit
from ember_neuro.hybrid.paths import host_values, live, unit_index
from ember_neuro.kinds.spec import Variant
from ember_neuro.mappers import MappedNetwork
from ember_neuro.models.hooks import GateModule

CALIBRATION_SEED = 0
CALIBRATION_BATCHES = 4  # of CALIBRATION_WINDOWS windows each: 2,048 tokens at block 64
CALIBRATION_WINDOWS = 8
CALIBRATION_HEADROOM = 1.05  # payload scale = this x the largest value seen
OBSERVED_PER_UNIT = 2000
OBSERVED_WINDOWS = 4

Visitor = Callable[[GateModule, dict[str, torch.Tensor]], None]


@torch.no_grad()
def observe(model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, Any]], visit: Visitor) -> None:
    """Run the model (its trained fire) over the batches; `visit(gate, inputs)` at every gate."""
    def hook(gate: GateModule, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        visit(gate, inputs)
        return gate.fire(inputs)

    for x, _ in batches:
        model(x, hook=hook)


def calibrate(model: torch.nn.Module, variant: Variant, text: Any) -> dict[str, Any]:
    """The calibration entries of every gate kind of `variant` that needs one ({} if none does)."""
    kinds = [k for k in variant.kinds if k.calibrate is not None]
    if not kinds:
        return {}
    maxima: dict[str, dict[int, dict[str, float]]] = {}

    def visit(gate: GateModule, inputs: dict[str, torch.Tensor]) -> None:
        seen = maxima.setdefault(gate.hook, {}).setdefault(gate.layer, {})
        for source, value in inputs.items():
            seen[source] = max(seen.get(source, 0.0), float(value.abs().max()))

    batches = text.val_batches(CALIBRATION_BATCHES, CALIBRATION_WINDOWS, model.config.block_size,
                               seed=CALIBRATION_SEED)
    observe(model, batches, visit)
    out: dict[str, Any] = {"source": text.source, "batches": CALIBRATION_BATCHES, "seed": CALIBRATION_SEED,
                           "headroom": CALIBRATION_HEADROOM}
    for kind in kinds:
        layers = maxima.get(kind.hook, {})
        out.update(kind.calibrate({layer: {s: CALIBRATION_HEADROOM * m for s, m in seen.items()}
                                   for layer, seen in layers.items()}))
    return out


def observed_inputs(model: torch.nn.Module, net: MappedNetwork, text: Any, per_unit: int = OBSERVED_PER_UNIT,
                    seed: int = 0) -> dict[str, UnitInputs]:
    """Gate inputs the model produces on validation text, per group, up to `per_unit` per unit.

    A rate group gets each unit's values (idle zeros left out: masked attention keys); a group
    whose state carries across layers (the hard membrane) gets its input sequence, one row per
    layer, token by token.
    """
    x, _ = text.val_batches(1, OBSERVED_WINDOWS, model.config.block_size, seed=seed)[0]
    seen: dict[str, list[tuple[int, dict[str, np.ndarray]]]] = {}
    observe(model, [(x, None)], lambda gate, inputs: seen.setdefault(gate.hook, []).append(
        (gate.layer, {k: v.detach().double().cpu().numpy() for k, v in inputs.items()})))
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, group in net.groups.items():
        calls = seen.get(group.address.hook, [])
        if group.carries_state:
            seq = [host_values(group, inputs)["input"].ravel() for _, inputs in calls]
            tokens = min(per_unit, seq[0].size)
            out[name] = UnitInputs(np.zeros(tokens, np.int64), {"input": np.stack([s[:tokens] for s in seq])})
            continue
        keep = points_per_unit(group, per_unit)
        parts = []
        for layer, inputs in calls:
            values = host_values(group, inputs)
            first = next(iter(values.values()))
            sent = live(group, first)
            units = torch.from_numpy(unit_index(group, layer, first.shape)[sent])
            flat = {s: v[sent] for s, v in values.items()}
            for unit in units.unique().tolist():
                where = torch.nonzero(units == unit).reshape(-1)
                pick = where[torch.randperm(where.numel(), generator=g)[:keep]].numpy()
                parts.append(UnitInputs(np.full(pick.size, unit), {s: v[pick] for s, v in flat.items()}))
        out[name] = sum(parts[1:], parts[0]) if parts else grid_inputs(group, 0)
    return out
