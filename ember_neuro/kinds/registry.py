"""The Ember variants: the one table that names them, each a model family and the parts at its sites.

Adding a gate kind means one folder in ember_neuro/kinds/ (its spec and its torch module) and one
entry here; everything else (map, run, validate, inspect, export, the bundle) iterates over the
variant's kinds and the mapped groups' addressing.  :func:`register` adds a variant at run time
(an extension's, or a test's).  Numpy only: the torch modules load when a model is built.
"""

from __future__ import annotations

from typing import Any

from ember_neuro.kinds import attention, hidden, membrane, refractory
from ember_neuro.kinds.spec import Part, Variant
from ember_neuro.mappers.network import MappingError, MappingOptions, NeuronGroup

QWEN = Part(name="qwen", site="attn_out", attr="qwen_gate", module="ember_neuro.kinds.qwen:QwenGate")

VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("standard", "transformer", refused="has no LIF gate to map (plain softmax attention)"),
    Variant("lif-fixed", "transformer", (attention.FIXED,)),
    Variant("lif-learnable", "transformer", (attention.KIND,)),
    Variant("lif-refractory", "transformer", (refractory.KIND,)),
    Variant("temporal-lif", "transformer", (attention.KIND, membrane.KIND)),
    Variant("qwen-gate", "transformer", (QWEN,),
            refused="has no LIF gate to map: its gate is the dense Y*sigmoid(XW) after attention, a "
                    "884,736-parameter baseline with no threshold, leak or steepness to turn into neurons"),
    Variant("cfc", "liquid", refused="has no LIF gate to map (Liquid Ember without gates)"),
    Variant("cfc-lif", "liquid", (hidden.KIND,)),
    Variant("audio-cfc", "audio", refused="has no LIF gate to map (Audio Liquid Ember without gates)"),
    Variant("audio-cfc-lif", "audio", (hidden.KIND,)),
)}


def register(variant: Variant) -> Variant:
    """Add (or replace) a variant; returns it."""
    VARIANTS[variant.name] = variant
    return variant


def names() -> tuple[str, ...]:
    return tuple(VARIANTS)


def mappable() -> tuple[str, ...]:
    """The variants with a gate kind, in table order."""
    return tuple(name for name, v in VARIANTS.items() if v.mappable)


def get(name: str) -> Variant:
    if name not in VARIANTS:
        raise MappingError(f"variant {name!r} is not an Ember variant; expected one of: "
                           f"{', '.join(VARIANTS)}")
    return VARIANTS[name]


def check_variant(name: str) -> Variant:
    """The variant if it maps onto neurons, else a MappingError (one line, saying why)."""
    v = VARIANTS.get(name)
    if v is None or not v.mappable:
        why = v.refused if v is not None else "is not an Ember variant"
        raise MappingError(f"variant {name!r} {why}; this release maps {', '.join(mappable())}")
    return v


def map_variant(name: str, params: Any, n_layer: int, options: MappingOptions,
                calibration: dict | None = None) -> dict[str, NeuronGroup]:
    """The neuron groups of a checkpoint's gates, or a MappingError naming why not.

    ``calibration`` carries what a kind needs from data (payload scales of unbounded inputs,
    measured on validation text by ember_neuro.deploy.calibrate).
    """
    groups: dict[str, NeuronGroup] = {}
    for kind in check_variant(name).kinds:
        try:
            groups.update(kind.map(params, n_layer, options, calibration))
        except KeyError as exc:
            raise MappingError(str(exc.args[0])) from None
        except ValueError as exc:
            raise MappingError(str(exc)) from None
    return groups


def gate_records(name: str, params: Any, n_layer: int) -> dict[str, list[dict]]:
    """The trained units of every gate kind of a variant, by ``inspect`` key ("gates", "temporal")."""
    out: dict[str, list[dict]] = {}
    for kind in VARIANTS[name].kinds:
        rows = kind.records(params, n_layer)
        out.setdefault(kind.inspect_key, []).extend({"kind": kind.name, **r} for r in rows)
    return out
