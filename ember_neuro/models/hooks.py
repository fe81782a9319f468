"""The gate as a hook: how a model family hosts its variant's parts, and how their fire is supplied.

A gate module (one per gate kind, ember_neuro/kinds/<kind>/module.py) computes, around the
neurons, what the host computes: the inputs it sends (``{source: tensor}``) and what it does
with the fire it gets back.  Where the fire comes from is the caller's choice, passed down the
forward as one function::

    hook(gate, inputs) -> fire          (default :func:`trained`: the trained sigmoid itself)

The hybrid run answers with spiking neurons (ember_neuro/hybrid/torch_hook.py), calibration
and fidelity observe the inputs (ember_neuro/deploy/calibrate.py), the ONNX export marks a
gate node where the host graph is cut (export/onnx.py).  The model itself never knows which.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn as nn

from ember_neuro.kinds import registry


class GateModule(nn.Module):
    """A gate kind's trained parameters at one layer, and the host's part around its neurons.

    ``hook``: the name its neuron groups answer (their Addressing.hook), set by its GateKind when it
    builds the module.  ``UNIT_PARAMS``: the
    per-unit (threshold, leak, steepness) parameters, which strong-gate training treats apart.
    ``CHECKPOINT_NAMES``: own parameter -> its name in checkpoints, relative to the host module,
    for parameters saved flat beside the host's children (temporal-lif's ``temporal_decay``).
    """

    hook: str = ""
    UNIT_PARAMS: tuple[str, ...] = ()
    CHECKPOINT_NAMES: dict[str, str] = {}

    def __init__(self, layer: int):
        super().__init__()
        self.layer = layer

    def fire(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The trained fire for hook inputs (what the neurons approximate)."""
        raise NotImplementedError

    @classmethod
    def bind(cls, modules: list[GateModule], like: list[GateModule] | None = None) -> None:
        """Tie what this kind's modules share across layers, from their values or those of `like`
        (the same kind's modules of the model a fine-tune starts from); default: nothing."""


Hook = Callable[[GateModule, dict[str, torch.Tensor]], torch.Tensor]


def trained(gate: GateModule, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The default hook: every gate computes its trained fire."""
    return gate.fire(inputs)


def place(host: nn.Module, cfg, layer: int, *sites: str) -> dict[str, str]:
    """Build the variant's parts for these sites of `host` as its children; returns {site: attribute}.

    A part's module is registered under the part's own attribute (its state-dict prefix).  Flat
    checkpoint names a module declares (``CHECKPOINT_NAMES``) are translated by hooks on the host:
    the host sees them before its children do when a state dict loads.
    """
    variant = registry.get(cfg.variant)
    placed = {}
    for site in sites:
        part = variant.at(site)
        if part is None:
            continue
        module = part.build(cfg, layer)
        host.add_module(part.attr, module)
        placed[site] = part.attr
        names = getattr(module, "CHECKPOINT_NAMES", {})
        if names:
            _translate(host, part.attr, names)
    return placed


def _translate(host: nn.Module, attr: str, names: dict[str, str]) -> None:
    def save(module: nn.Module, state: dict, prefix: str, local_metadata: dict) -> None:
        for own, flat in names.items():
            state[prefix + flat] = state.pop(f"{prefix}{attr}.{own}")

    def load(module: nn.Module, state: dict, prefix: str, *args: object) -> None:
        for own, flat in names.items():
            if prefix + flat in state:
                state[f"{prefix}{attr}.{own}"] = state.pop(prefix + flat)

    host.register_state_dict_post_hook(save)
    host.register_load_state_dict_pre_hook(load)


def site(host: nn.Module, name: str) -> nn.Module | None:
    """The module at a site that :func:`place` filled (None where the variant has nothing there)."""
    attr = host.sites.get(name)
    return None if attr is None else getattr(host, attr)


def gate_modules(model: nn.Module) -> list[tuple[str, GateModule]]:
    """(qualified name, module) of every gate module of a model, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, GateModule)]


@torch.no_grad()
def observed_fire(model: nn.Module, batches: Iterable[torch.Tensor]) -> dict[tuple[str, int], torch.Tensor]:
    """Every gate's trained fire on these token batches, flattened and joined over the batches, by
    (hook, layer): what ``inspect`` shows per layer and the bench counts as skipped MLPs."""
    seen: dict[tuple[str, int], list[torch.Tensor]] = {}

    def record(gate: GateModule, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        fire = gate.fire(inputs)
        seen.setdefault((gate.hook, gate.layer), []).append(fire.flatten())
        return fire

    for x in batches:
        model(x, hook=record)
    return {key: torch.cat(fires) for key, fires in seen.items()}


def bind_gates(model: nn.Module, like: nn.Module | None = None) -> nn.Module:
    """Let each gate kind tie what its layers share (:meth:`GateModule.bind`), from the model's own
    values or from `like`'s; returns the model."""

    def by_class(m: nn.Module) -> dict[type, list[GateModule]]:
        out: dict[type, list[GateModule]] = {}
        for _, g in gate_modules(m):
            out.setdefault(type(g), []).append(g)
        return out

    source = by_class(like) if like is not None else {}
    for cls, modules in by_class(model).items():
        cls.bind(modules, source.get(cls))
    return model


def _parts(model: nn.Module, gates_only: bool) -> tuple[tuple[str, ...], set[str]]:
    """Module prefixes of the placed parts (gate modules only, or every part), and the flat
    checkpoint names their modules declare."""
    prefixes, flats = [], set()
    for host_name, host in model.named_modules():
        for attr in getattr(host, "sites", {}).values():
            child = getattr(host, attr)
            if gates_only and not isinstance(child, GateModule):
                continue
            base = f"{host_name}." if host_name else ""
            prefixes.append(f"{base}{attr}.")
            flats |= {base + flat for flat in getattr(child, "CHECKPOINT_NAMES", {}).values()}
    return tuple(prefixes), flats


def part_state(model: nn.Module, gates_only: bool = True) -> dict[str, torch.Tensor]:
    """The checkpoint entries (state-dict keys) of a model's gate modules, or of every placed part."""
    prefixes, flats = _parts(model, gates_only)
    return {k: v for k, v in model.state_dict().items() if k in flats or k.startswith(prefixes)}


def part_parameters(model: nn.Module, gates_only: bool = True) -> dict[str, nn.Parameter]:
    """The parameters of a model's gate modules (or of every placed part), by parameter name."""
    prefixes, _ = _parts(model, gates_only)
    return {n: p for n, p in model.named_parameters() if n.startswith(prefixes)}
