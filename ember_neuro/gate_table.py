"""Read transformed gate parameters out of a model: the table users and the mapper see."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ember_neuro.mappers.description import GateUnit


def _f(t: torch.Tensor) -> list[float]:
    return [float(x) for x in t.detach().double().reshape(-1)]


def gate_records(model: nn.Module) -> list[dict]:
    """One record per gate unit: layer, head (or neuron), theta, leak, k (+ extras)."""
    records = []
    if hasattr(model, "transformer"):
        for li, block in enumerate(model.transformer.h):
            gate = block.attn.gate
            if gate is None:
                continue
            theta, leak, k = (_f(t) for t in gate.transformed())
            extra = {}
            if gate.variant == "lif-refractory":
                extra["ref_strength"] = _f(F.softplus(gate.ref_strength))
                extra["cross_layer_weight"] = _f(torch.sigmoid(gate.cross_layer_weight))
            for h in range(len(theta)):
                rec = {"layer": li, "head": h, "theta": theta[h], "leak": leak[h], "k": k[h]}
                rec.update({name: vals[h] for name, vals in extra.items()})
                records.append(rec)
    else:
        for li, layer in enumerate(getattr(model, "layers", [])):
            if layer.gate is None:
                continue
            theta, leak, k = (_f(t) for t in layer.gate.transformed())
            records += [{"layer": li, "head": n, "theta": theta[n], "leak": leak[n], "k": k[n]}
                        for n in range(len(theta))]
    return records


def temporal_records(model: nn.Module) -> list[dict]:
    """temporal-lif per-layer membrane parameters (transformed)."""
    out = []
    for li, block in enumerate(getattr(getattr(model, "transformer", None), "h", [])):
        if getattr(block, "temporal", False):
            out.append({
                "layer": li,
                "decay": float(torch.sigmoid(block.temporal_decay)),
                "threshold": float(F.softplus(block.temporal_threshold)),
                "steepness": float(F.softplus(block.temporal_steepness)),
            })
    return out


def gate_units(model: nn.Module) -> list[GateUnit]:
    return [GateUnit(r["layer"], r["head"], r["theta"], r["leak"], r["k"])
            for r in gate_records(model)]
