"""lif-learnable, lif-fixed (and temporal-lif's attention): one dithered sigmoid gate per head.

fire = sigmoid(k (p - theta)) on each attention probability p in [0, 1] (mappers/gate.py);
lif-fixed is the same with theta = 1 stored as a buffer.
"""

from __future__ import annotations

from ember_neuro.mappers.gate import map_gates
from ember_neuro.mappers.network import GateUnit, MappingOptions, NeuronGroup
from ember_neuro.mappers.params import Params, attention_records


def map_attention(params: Params, n_layer: int, options: MappingOptions,
                  calibration: dict | None = None) -> dict[str, NeuronGroup]:
    units = [GateUnit(r["layer"], r["head"], r["theta"], r["leak"], r["k"])
             for r in attention_records(params, n_layer)]
    return {"attention": map_gates(units, options, name="attention")}
