"""Attention heads (lif-learnable, lif-fixed, temporal-lif's attention): one dithered sigmoid gate per head.

    fire = sigmoid(k (p - theta))   on every post-softmax probability p in [0, 1]

The host multiplies p by leak + (1 - leak) fire and renormalises each query row
(ember_neuro.gates.lif_gate): both need the whole row, so only the fire runs on neurons.
lif-fixed is the same gate with theta = 1 held as a buffer.  Masked (future) keys have p = 0
and gated = 0 whatever the fire, so they are never sent (``Addressing.idle_zero``).

Checkpoint keys (raw, pre-transform values, one per head):

    transformer.h.{l}.attn.gate.threshold   (H,)  theta (lif-fixed: a buffer = 1.0)
    transformer.h.{l}.attn.gate.leak        (H,)  -> sigmoid
    transformer.h.{l}.attn.gate.steepness   (H,)  -> softplus
"""

from __future__ import annotations

import dataclasses

from ember_neuro.gates import LIF_FIXED_THETA
from ember_neuro.kinds.spec import GateKind, Params
from ember_neuro.mappers.gate import map_gates
from ember_neuro.mappers.network import Addressing, MappingOptions, NeuronGroup
from ember_neuro.mappers.params import gate_units, unit_records

HOOK = "attention"
PREFIX = "transformer.h.{layer}.attn.gate."
ADDRESSING = Addressing(hook=HOOK, unit_axis=1, idle_zero=True, label="attention probability p")  # unit: head
NOTABLE_THETA = 0.1  # the notes call heads with |theta| above this "deviating from pass-through"
MAX_SLOTS = 8192


def records(params: Params, n_layer: int) -> list[dict]:
    """One record per (layer, head): theta, leak, k."""
    return unit_records(params, PREFIX, n_layer)


def map_attention(params: Params, n_layer: int, options: MappingOptions,
                  calibration: dict | None = None) -> dict[str, NeuronGroup]:
    units = gate_units(records(params, n_layer))
    return {HOOK: map_gates(units, options, name=HOOK, addressing=ADDRESSING, relative=True)}


def slots(batch: int, block: int, whole: bool) -> int:
    """Inputs per head in one exchange: a whole batch's causal rows (evaluation), capped; one
    query row per sequence over at most `block` keys (generation)."""
    return int(min(MAX_SLOTS, batch * block * (block + 1) // 2)) if whole else batch * block


def describe_heads(rows: list[dict]) -> list[str]:
    """The heads off pass-through, named as the notes do ("L0H3 theta=1.14, k=2.82")."""
    notable = [r for r in rows if abs(r["theta"]) > NOTABLE_THETA]
    if not notable:
        return []
    return [f"off pass-through (|theta| > {NOTABLE_THETA}): " + "; ".join(
        f"L{r['layer']}H{r['head']} θ={r['theta']:.2f}, k={r['k']:.2f}"
        + (" (bypass)" if r["theta"] < 0 else "") for r in notable)]


KIND = GateKind(name="attention", site="attn", attr="gate",
                module="ember_neuro.kinds.attention.module:AttentionGate",
                records=records, map=map_attention, describe=describe_heads, slots=slots)
FIXED = dataclasses.replace(KIND, name="attention-fixed", options={"fixed_threshold": LIF_FIXED_THETA})
