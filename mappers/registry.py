"""Which Ember variant maps onto spiking neurons, and how: one entry per variant.

Adding a variant means adding a mapper module (one per gate kind) and one entry
in :data:`MAPPERS`; a variant without an entry is refused with the reason in
:data:`REFUSED`.  A mapper takes the checkpoint's raw gate arrays
(mappers/params.py), the layer count and the options, and returns the named
neuron groups of the :class:`~ember_neuro.mappers.network.MappedNetwork`.
"""

from __future__ import annotations

from collections.abc import Callable

from ember_neuro.errors import BadInput
from ember_neuro.mappers import gate
from ember_neuro.mappers.network import GateUnit, MappingOptions, NeuronGroup
from ember_neuro.mappers.params import Params, attention_records, neuron_records


class MappingError(BadInput):
    """A request the mapper refuses; the message is one line and says why."""


def _attention(params: Params, n_layer: int, options: MappingOptions) -> dict[str, NeuronGroup]:
    """Per-head attention gates (lif-learnable, lif-fixed, and temporal-lif's attention)."""
    units = [GateUnit(r["layer"], r["head"], r["theta"], r["leak"], r["k"])
             for r in attention_records(params, n_layer)]
    return {"attention": gate.map_gates(units, options, name="attention")}


Mapper = Callable[[Params, int, MappingOptions], dict[str, NeuronGroup]]

MAPPERS: dict[str, Mapper] = {
    "lif-learnable": _attention,
    "lif-fixed": _attention,
    # the attention gates; the per-token membrane stays on the host for now
    "temporal-lif": _attention,
}

REFUSED: dict[str, str] = {
    "standard": "has no LIF gate to map (plain softmax attention)",
    "qwen-gate": "has no LIF gate to map: its gate is the dense Y*sigmoid(XW) after attention, a "
                 "884,736-parameter baseline with no threshold, leak or steepness to turn into neurons",
    "cfc": "has no LIF gate to map (Liquid Ember without gates)",
    "lif-refractory": "is not mapped yet: its thresholds move with attention load (a third graded "
                      "input per neuron)",
    "cfc-lif": "is not mapped yet: its per-neuron gates sit on unbounded CfC outputs (a per-layer "
               "payload scale)",
}


def mappable() -> tuple[str, ...]:
    return tuple(MAPPERS)


def check_variant(variant: str) -> None:
    """MappingError (one line, saying why) for a variant this release does not map."""
    if variant not in MAPPERS:
        why = REFUSED.get(variant, "is not an Ember variant")
        raise MappingError(f"variant {variant!r} {why}; this release maps {', '.join(MAPPERS)}")


def map_variant(variant: str, params: Params, n_layer: int,
                options: MappingOptions) -> dict[str, NeuronGroup]:
    """The neuron groups of a checkpoint's gates, or a MappingError naming why not."""
    check_variant(variant)
    try:
        return MAPPERS[variant](params, n_layer, options)
    except KeyError as exc:
        raise MappingError(str(exc.args[0])) from None


def gate_records(variant: str, params: Params, n_layer: int) -> list[dict]:
    """The trained gate table of any gate-bearing variant (mapped or not), for inspection."""
    if variant == "cfc-lif":
        return neuron_records(params, n_layer)
    if variant in ("lif-fixed", "lif-learnable", "lif-refractory", "temporal-lif"):
        return attention_records(params, n_layer, refractory=variant == "lif-refractory")
    return []
