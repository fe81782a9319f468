"""Liquid Ember (cfc-lif): a dithered sigmoid gate on every CfC output neuron.

    fire = sigmoid(k (|h| - theta)),  h' = h (leak + (1 - leak) fire), rescaled to keep ||h||

h is unbounded, so each layer's |h| travels as a payload normalised by a scale
calibrated on validation text (``calibration["hidden_scale"][layer]``, measured by
the host: ember_neuro/deploy/mapping.py).  In normalised units v = |h| / scale in [0, 1]
the gate is sigmoid(k scale (v - theta / scale)): the same neuron as an attention
head (mappers/gate.py), one unit per neuron of each layer.  Values above the
scale are clipped to 1 and counted (the hybrid run reports them); the per-unit
worst case holds on the calibrated range.  Leak and the norm-keeping rescale need
all neurons of the layer and stay on the host.
"""

from __future__ import annotations

import math

import numpy as np

from ember_neuro.mappers.gate import GateInputs, map_gates
from ember_neuro.mappers.network import GateUnit, MappingOptions, NeuronGroup
from ember_neuro.mappers.params import Params, neuron_records


def layer_scales(calibration: dict | None, key: str, n_layer: int, what: str) -> list[float]:
    """The calibrated payload scale of each layer, or a one-line ValueError saying why not."""
    scales = (calibration or {}).get(key)
    if scales is None or len(scales) != n_layer:
        raise ValueError(f"{what}: no calibrated payload scale per layer ({key}); map through "
                         "ember_neuro.deploy.mapping, which measures it on validation text")
    for layer, s in enumerate(scales):
        if not (isinstance(s, (int, float)) and math.isfinite(s) and s > 0):
            raise ValueError(f"{what}: the payload scale of layer {layer} cannot be calibrated (observed "
                             f"maximum {s!r} on the calibration text; outputs constantly zero?)")
    return [float(s) for s in scales]


def scaled_inputs(units: list[GateUnit], scale: np.ndarray) -> GateInputs:
    """sigmoid(k (|x| - theta)) with |x| / scale as the payload: coef = k scale, center = theta / scale."""
    k = np.array([u.k for u in units])
    theta = np.array([u.theta for u in units])
    coef = (k * scale)[:, None]
    return GateInputs(("input",), coef, scale[:, None].astype(np.float64), theta / scale)


def map_liquid(params: Params, n_layer: int, options: MappingOptions,
               calibration: dict | None = None) -> dict[str, NeuronGroup]:
    scales = layer_scales(calibration, "hidden_scale", n_layer, "Liquid Ember")
    records = neuron_records(params, n_layer)
    units = [GateUnit(r["layer"], r["head"], r["theta"], r["leak"], r["k"], tag="N") for r in records]
    scale = np.array([scales[u.layer] for u in units])
    return {"hidden": map_gates(units, options, name="hidden", inputs=scaled_inputs(units, scale))}
