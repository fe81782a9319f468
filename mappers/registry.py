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
from ember_neuro.mappers.attention import map_attention
from ember_neuro.mappers.liquid import map_liquid
from ember_neuro.mappers.network import MappingOptions, NeuronGroup
from ember_neuro.mappers.params import Params, attention_records, neuron_records
from ember_neuro.mappers.refractory import map_refractory
from ember_neuro.mappers.temporal import map_temporal


class MappingError(BadInput):
    """A request the mapper refuses; the message is one line and says why."""


Mapper = Callable[[Params, int, MappingOptions, "dict | None"], dict[str, NeuronGroup]]

MAPPERS: dict[str, Mapper] = {
    "lif-learnable": map_attention,
    "lif-fixed": map_attention,
    "lif-refractory": map_refractory,
    "temporal-lif": map_temporal,
    "cfc-lif": map_liquid,
}

REFUSED: dict[str, str] = {
    "standard": "has no LIF gate to map (plain softmax attention)",
    "qwen-gate": "has no LIF gate to map: its gate is the dense Y*sigmoid(XW) after attention, a "
                 "884,736-parameter baseline with no threshold, leak or steepness to turn into neurons",
    "cfc": "has no LIF gate to map (Liquid Ember without gates)",
}


def mappable() -> tuple[str, ...]:
    return tuple(MAPPERS)


def check_variant(variant: str) -> None:
    """MappingError (one line, saying why) for a variant this release does not map."""
    if variant not in MAPPERS:
        why = REFUSED.get(variant, "is not an Ember variant")
        raise MappingError(f"variant {variant!r} {why}; this release maps {', '.join(MAPPERS)}")


def map_variant(variant: str, params: Params, n_layer: int, options: MappingOptions,
                calibration: dict | None = None) -> dict[str, NeuronGroup]:
    """The neuron groups of a checkpoint's gates, or a MappingError naming why not.

    ``calibration`` carries what a mapper needs from data (payload scales of
    unbounded inputs, measured by the host side on validation text).
    """
    check_variant(variant)
    try:
        return MAPPERS[variant](params, n_layer, options, calibration)
    except KeyError as exc:
        raise MappingError(str(exc.args[0])) from None
    except ValueError as exc:
        raise MappingError(str(exc)) from None


def gate_records(variant: str, params: Params, n_layer: int) -> list[dict]:
    """The trained gate table of any gate-bearing variant (mapped or not), for inspection."""
    if variant == "cfc-lif":
        return neuron_records(params, n_layer)
    if variant in ("lif-fixed", "lif-learnable", "lif-refractory", "temporal-lif"):
        return attention_records(params, n_layer, refractory=variant == "lif-refractory")
    return []
