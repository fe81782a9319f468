"""Build any Ember model from its config, and count parameters the way the paper does."""

from __future__ import annotations

import torch
import torch.nn as nn

from ember_neuro.errors import BadInput
from ember_neuro.kinds import registry
from ember_neuro.kinds.spec import load_class
from ember_neuro.models.config import EmberConfig
from ember_neuro.models.hooks import bind_gates, part_parameters

# The model families a variant can be built on (kinds.spec.Variant.family).
FAMILIES = {"transformer": "ember_neuro.models.transformer:TransformerEmber",
            "liquid": "ember_neuro.models.liquid:LiquidEmber",
            "audio": "ember_neuro.models.audio:AudioLiquidEmber"}


def family_class(cfg: EmberConfig) -> type:
    return load_class(FAMILIES[registry.get(cfg.variant).family])


def build_model(cfg: EmberConfig) -> nn.Module:
    return bind_gates(family_class(cfg)(cfg))


def resolve_device(name: str) -> torch.device:
    """The torch device for ``--device`` (cpu or cuda), or a one-line refusal."""
    if name == "cuda" and not torch.cuda.is_available():
        raise BadInput("--device cuda requested but CUDA is not available on this machine")
    if name not in ("cpu", "cuda"):
        raise BadInput(f"unknown device {name!r}; use cpu or cuda")
    return torch.device(name)


def param_counts(model: nn.Module) -> dict[str, int]:
    """nanoGPT counting: unique parameters, position embeddings excluded, tied head once; ``gate``:
    the variant's extra parameters (every part at a site: the paper's 108, 180, 126, 884,736)."""
    total = sum(p.numel() for p in model.parameters())
    wpe = getattr(getattr(model, "transformer", None), "wpe", None)
    non_embedding = total - (wpe.weight.numel() if wpe is not None else 0)
    gate = sum(p.numel() for p in part_parameters(model, gates_only=False).values())
    return {"total": non_embedding, "total_with_pos": total, "gate": gate}
