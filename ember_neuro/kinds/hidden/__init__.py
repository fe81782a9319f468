"""Liquid Ember (cfc-lif, and Audio Liquid Ember's audio-cfc-lif): a dithered sigmoid gate on every
CfC output neuron.

    fire = sigmoid(k (|h| - theta)),  h' = h (leak + (1 - leak) fire), rescaled to keep ||h||

h is unbounded, so each layer's |h| travels as a payload normalised by a scale calibrated on
validation data -- text, or Audio Liquid Ember's keyword clips -- (``calibration["hidden_scale"]
[layer]``, ember_neuro.deploy.calibrate).  In
normalised units v = |h| / scale in [0, 1] the gate is sigmoid(k scale (v - theta / scale)):
the same neuron as an attention head (mappers/gate.py), one unit per neuron of each layer.
Values above the scale are clipped to 1 and counted (the hybrid run reports them); the
per-unit worst case holds on the calibrated range.  Leak and the norm-keeping rescale need
all neurons of the layer and stay on the host.

Checkpoint keys (raw values, one per CfC output neuron): ``layers.{l}.gate.threshold``,
``.leak`` (-> sigmoid), ``.steepness`` (-> softplus).
"""

from __future__ import annotations

import numpy as np

from ember_neuro.kinds.spec import GateKind, Params, Scales
from ember_neuro.mappers.gate import layer_scales, map_gates, scaled_inputs
from ember_neuro.mappers.network import Addressing, MappingOptions, NeuronGroup
from ember_neuro.mappers.params import gate_units, unit_records

HOOK = "hidden"
TAG = "N"  # units are named L{layer}N{neuron}
PREFIX = "layers.{layer}.gate."
ADDRESSING = Addressing(hook=HOOK, unit_axis=-1, label="|h|")  # unit: CfC output neuron (the last axis)


def records(params: Params, n_layer: int) -> list[dict]:
    """One record per (layer, CfC output neuron), the neuron index in ``head``."""
    return unit_records(params, PREFIX, n_layer)


def map_hidden(params: Params, n_layer: int, options: MappingOptions,
               calibration: dict | None = None) -> dict[str, NeuronGroup]:
    scales = layer_scales(calibration, "hidden_scale", n_layer, "Liquid Ember")
    units = gate_units(records(params, n_layer), tag=TAG)
    scale = np.array([scales[u.layer] for u in units])
    return {HOOK: map_gates(units, options, name=HOOK, inputs=scaled_inputs(units, scale),
                            addressing=ADDRESSING)}


def calibrate(scales: Scales) -> dict:
    """hidden_scale: each layer's |h| scale."""
    return {"hidden_scale": [scales[layer]["input"] for layer in sorted(scales)]}


KIND = GateKind(name="hidden", site="cfc", attr="gate", module="ember_neuro.kinds.hidden.module:HiddenGate",
                records=records, map=map_hidden, calibrate=calibrate, swing_range="observed", unit_tag=TAG)
