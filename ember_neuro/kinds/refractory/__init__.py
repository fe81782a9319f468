"""lif-refractory: the attention gate whose threshold moves with attention load.

    theta_eff = theta + softplus(ref_strength) * column_load + sigmoid(cross_layer_weight) * prev_load
    fire      = sigmoid(k (p - theta_eff))
              = sigmoid(k (p - theta) - k s column_load - k c prev_load)

The load terms are two more graded host inputs of the same dithered neuron
(mappers/gate.py): the host computes the column load (mean attention a key receives
over the queries of its head) and the previous layer's load (that mean, also over
heads) -- both in [0, 1] -- and sends them next to p; the chip holds -k s and -k c as
the weights of their own connections, each with its own weight exponent, and the exact
worst case covers the whole box p, column load, previous load in [0, 1]^3.  Layer 0 has
no previous layer: its prev_load weight is 0.  The column load averages over *all*
queries, so the gate is not causal: decoding runs the whole window again for each new
token (no KV cache).

Checkpoint keys: those of the attention gate, plus per head
``transformer.h.{l}.attn.gate.ref_strength`` (-> softplus) and ``.cross_layer_weight`` (-> sigmoid).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ember_neuro.gates import sigmoid, softplus
from ember_neuro.kinds import attention
from ember_neuro.kinds.spec import Params
from ember_neuro.mappers.gate import GateInputs, map_gates
from ember_neuro.mappers.network import MappingOptions, NeuronGroup
from ember_neuro.mappers.params import gate_units, unit_records

SOURCES = ("input", "col_load", "prev_load")
EXTRA = {"ref_strength": softplus, "cross_layer_weight": sigmoid}
NONCAUSAL = "its column load averages over all queries of the window (not causal)"


def records(params: Params, n_layer: int) -> list[dict]:
    """One record per (layer, head): theta, leak, k and the transformed load weights."""
    return unit_records(params, attention.PREFIX, n_layer, EXTRA)


def refractory_inputs(rows: list[dict]) -> GateInputs:
    """coef = [k, -k softplus(ref), -k sigmoid(cross)] per head (the last 0 in layer 0)."""
    k = np.array([r["k"] for r in rows])
    s = np.array([r["ref_strength"] for r in rows])
    c = np.array([r["cross_layer_weight"] for r in rows]) * np.array([r["layer"] > 0 for r in rows])
    coef = np.stack([k, -k * s, -k * c], axis=1)
    return GateInputs(SOURCES, coef, np.ones_like(coef), np.array([r["theta"] for r in rows]))


def map_refractory(params: Params, n_layer: int, options: MappingOptions,
                   calibration: dict | None = None) -> dict[str, NeuronGroup]:
    rows = records(params, n_layer)
    return {attention.HOOK: map_gates(gate_units(rows), options, name=attention.HOOK,
                                      inputs=refractory_inputs(rows), addressing=attention.ADDRESSING,
                                      relative=True)}


KIND = dataclasses.replace(attention.KIND, name="refractory",
                           module="ember_neuro.kinds.refractory.module:RefractoryGate",
                           records=records, map=map_refractory, noncausal=NONCAUSAL)
