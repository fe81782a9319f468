"""Trained gate parameters from a checkpoint's raw state-dict arrays: the readers every kind uses.

A mapper receives ``params``: {key: float64 array} of the gate parameters only (the raw,
pre-transform values a checkpoint stores), so the mapping never touches torch or the rest of
the model.  Each gate kind (ember_neuro/kinds/<kind>/) documents the keys it reads; a unit's
three parameters transform as ember_neuro/gates.py says: theta raw, leak = sigmoid(raw),
k = softplus(raw).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ember_neuro.gates import leak_of, steepness_of
from ember_neuro.mappers.network import GateUnit

Params = Mapping[str, np.ndarray]


def read_param(params: Params, key: str) -> np.ndarray:
    """One raw array, flat float64; a KeyError naming the key when the checkpoint lacks it."""
    if key not in params:
        raise KeyError(f"checkpoint lacks gate parameter {key}")
    return np.asarray(params[key], dtype=np.float64).reshape(-1)


def unit_records(params: Params, prefix: str, n_layer: int,
                 extra: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None) -> list[dict]:
    """One record per unit of every layer: ``layer``, ``head`` (its index in the layer), theta,
    leak, k from ``{prefix}threshold/leak/steepness`` (prefix formatted with the layer), plus each
    ``extra`` key transformed by its function."""
    records = []
    for layer in range(n_layer):
        p = prefix.format(layer=layer)
        theta = read_param(params, p + "threshold")
        leak = leak_of(read_param(params, p + "leak"))
        k = steepness_of(read_param(params, p + "steepness"))
        more = {name: fn(read_param(params, p + name)) for name, fn in (extra or {}).items()}
        for h in range(theta.shape[0]):
            rec = {"layer": layer, "head": h, "theta": float(theta[h]), "leak": float(leak[h]),
                   "k": float(k[h])}
            rec.update({name: float(vals[h]) for name, vals in more.items()})
            records.append(rec)
    return records


def gate_units(records: list[dict], tag: str = "H") -> list[GateUnit]:
    """The units of unit records (``tag`` names them: L0H3 for a head, L1N7 for a neuron)."""
    return [GateUnit(r["layer"], r["head"], r["theta"], r["leak"], r["k"], tag=tag) for r in records]
