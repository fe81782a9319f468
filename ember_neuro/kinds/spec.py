"""What a gate kind and a variant are: the two extension points of the model side (numpy only).

A **gate kind** is everything one kind of learned gate needs, in one place: where it sits in
the model and the torch module that holds its trained parameters there, how those parameters
read from a checkpoint, how they become neuron groups, what the mapping must first measure on
text, whether decoding may cache, and how ``inspect`` shows it.  The spiking side needs none of
this at run time: a mapped :class:`~ember_neuro.mappers.network.NeuronGroup` carries its own
:class:`~ember_neuro.mappers.network.Addressing` (which hook it answers, how values reach units).

A **variant** is a model family plus the parts at its sites: gate kinds, and host-only parts
(qwen-gate's dense gate) that no neuron runs.

The torch module of a part is named by a ``"package.module:Class"`` string (or given as the
class) and imported only when a model is built, so this module -- and every kind's spec --
imports without torch (the Python 3.10 core and the INRC bundle never load them anyway).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ember_neuro.mappers.network import MappingOptions, NeuronGroup

Params = Mapping[str, Any]  # raw state-dict arrays of the gate parameters (float64 numpy)
Scales = Mapping[int, Mapping[str, float]]  # per layer, per hook input: the payload scale calibrated on text


def load_class(ref: str | type) -> type:
    """A class given directly, or by its ``"package.module:Class"`` path (imported now)."""
    if isinstance(ref, type):
        return ref
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Part:
    """Something a variant places at a site of its model family: a torch module under ``attr``."""

    name: str  # what the part is called (a gate kind: the hook name its module calls)
    site: str  # where the family places it, e.g. "attn" (post-softmax p), "mlp", "cfc"
    attr: str  # the module's attribute in its host module: its state-dict prefix
    module: str | type  # the torch module class, or "package.module:Class"
    options: Mapping[str, Any] = field(default_factory=dict)  # passed to the module

    def build(self, cfg: Any, layer: int) -> Any:
        return load_class(self.module)(cfg, layer, **self.options)


@dataclass(frozen=True)
class GateKind(Part):
    """A learned LIF gate whose fire runs on spiking neurons (see the module docstring).

    ``records(params, n_layer)`` -> one dict per trained unit (``layer``, ``head``, and the
    transformed values); ``map(params, n_layer, options, calibration)`` -> {group: NeuronGroup};
    ``calibrate(scales)`` -> the calibration entries the mapper reads, from each layer's payload
    scale per hook input (ember_neuro.deploy.calibrate; None: nothing to measure); ``noncausal``:
    why a new token changes earlier gates ("" when it does not, so decoding may keep a cache);
    ``swing_range``: the input range of a unit's attenuation swing
    ("unit": [0, 1]; "observed": the layer's observed |input|; None: no per-unit swing);
    ``inspect_key``: where ``inspect --json`` lists the records; ``describe(records)`` -> the
    lines ``inspect`` prints besides the unit table; ``slots(batch, block, whole)``: inputs per
    unit a persistent runner lays out (default batch x block); ``metrics(stats, config)``: what
    a hybrid evaluation reports of the kind's spikes besides the losses (the MLPs a membrane skips);
    ``hard_spike``: whether its module trains with the deployed 0/1 spike (``EmberConfig.spike``).
    """

    hook: str = ""  # the hook its module calls and its groups answer (default: the kind's name)
    unit_tag: str = "H"  # how its units are named: L{layer}{tag}{index} (H: head, N: neuron)
    records: Callable[[Params, int], list[dict]] = lambda params, n_layer: []  # noqa: E731
    map: Callable[[Params, int, MappingOptions, Mapping | None], dict[str, NeuronGroup]] | None = None
    calibrate: Callable[[Scales], dict[str, Any]] | None = None
    noncausal: str = ""
    swing_range: str | None = "unit"
    inspect_key: str = "gates"
    describe: Callable[[list[dict]], list[str]] | None = None
    slots: Callable[[int, int, bool], int] | None = None  # (batch, block, whole) -> inputs per unit
    metrics: Callable[[Mapping[int, Mapping[str, float]], Any], dict] | None = None  # (path stats, config)
    hard_spike: bool = False  # its module can train with the deployed hard spike (config spike "hard")

    def __post_init__(self) -> None:
        if not self.hook:
            object.__setattr__(self, "hook", self.name)

    def build(self, cfg: Any, layer: int) -> Any:
        module = super().build(cfg, layer)
        module.hook = self.hook  # the name its neuron groups answer
        return module


@dataclass(frozen=True)
class Variant:
    """An Ember variant: a model family and the parts at its sites (gate kinds first)."""

    name: str
    family: str  # "transformer", "liquid" or "audio" (ember_neuro.models.build.FAMILIES)
    parts: tuple[Part, ...] = ()
    refused: str = ""  # why it cannot be mapped (no gate kind), one line

    @property
    def kinds(self) -> tuple[GateKind, ...]:
        return tuple(p for p in self.parts if isinstance(p, GateKind))

    @property
    def mappable(self) -> bool:
        return bool(self.kinds)

    def at(self, site: str) -> Part | None:
        found = [p for p in self.parts if p.site == site]
        return found[0] if found else None

    @property
    def noncausal(self) -> str:
        """Why this variant cannot decode with a cache ("" when it can)."""
        return next((k.noncausal for k in self.kinds if k.noncausal), "")
