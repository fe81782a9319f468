"""Trained gate parameters, read from a checkpoint's raw state-dict arrays (numpy only).

The key names the package reads (raw, pre-transform values; see ember_neuro/models/transformer.py
and ember_neuro/models/liquid.py, which define them):

    transformer.h.{l}.attn.gate.threshold           (H,)  theta (lif-fixed: buffer = 1.0)
    transformer.h.{l}.attn.gate.leak                (H,)  leak_raw      -> sigmoid
    transformer.h.{l}.attn.gate.steepness           (H,)  steepness_raw -> softplus
    transformer.h.{l}.attn.gate.ref_strength        (H,)  lif-refractory -> softplus
    transformer.h.{l}.attn.gate.cross_layer_weight  (H,)  lif-refractory -> sigmoid
    transformer.h.{l}.temporal_decay / _threshold / _steepness   ()  temporal-lif
    layers.{l}.gate.threshold / leak / steepness    (D,)  cfc-lif, one per CfC output neuron

A mapper receives ``params``: {key: float64 array} for these keys only, so the
mapping never touches torch or the rest of the model.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ember_neuro.gates import leak_of, sigmoid, softplus, steepness_of

ATTENTION = "transformer.h.{layer}.attn.gate."
TEMPORAL = "transformer.h.{layer}.temporal_"
NEURON = "layers.{layer}.gate."

Params = Mapping[str, np.ndarray]


def _get(params: Params, key: str) -> np.ndarray:
    if key not in params:
        raise KeyError(f"checkpoint lacks gate parameter {key}")
    return np.asarray(params[key], dtype=np.float64).reshape(-1)


def _gate_records(params: Params, prefix: str, n_layer: int, extra: bool) -> list[dict]:
    records = []
    for layer in range(n_layer):
        p = prefix.format(layer=layer)
        theta = _get(params, p + "threshold")
        leak = leak_of(_get(params, p + "leak"))
        k = steepness_of(_get(params, p + "steepness"))
        more = {}
        if extra:
            more = {"ref_strength": softplus(_get(params, p + "ref_strength")),
                    "cross_layer_weight": sigmoid(_get(params, p + "cross_layer_weight"))}
        for h in range(theta.shape[0]):
            rec = {"layer": layer, "head": h, "theta": float(theta[h]), "leak": float(leak[h]),
                   "k": float(k[h])}
            rec.update({name: float(vals[h]) for name, vals in more.items()})
            records.append(rec)
    return records


def attention_records(params: Params, n_layer: int, refractory: bool = False) -> list[dict]:
    """One record per (layer, head): theta, leak, k (+ transformed refractory weights)."""
    return _gate_records(params, ATTENTION, n_layer, refractory)


def neuron_records(params: Params, n_layer: int) -> list[dict]:
    """Liquid Ember: one record per (layer, CfC output neuron), the neuron index in ``head``."""
    return _gate_records(params, NEURON, n_layer, False)


def temporal_records(params: Params, n_layer: int) -> list[dict]:
    """temporal-lif per-layer membrane parameters, transformed."""
    out = []
    for layer in range(n_layer):
        p = TEMPORAL.format(layer=layer)
        out.append({"layer": layer,
                    "decay": float(sigmoid(_get(params, p + "decay"))[0]),
                    "threshold": float(softplus(_get(params, p + "threshold"))[0]),
                    "steepness": float(softplus(_get(params, p + "steepness"))[0])})
    return out
