"""Build any Ember model from its config, and count parameters the way the paper does."""

from __future__ import annotations

import torch.nn as nn

from ember_neuro.models.config import EmberConfig


def build_model(cfg: EmberConfig) -> nn.Module:
    if cfg.is_transformer:
        from ember_neuro.models.transformer import TransformerEmber

        return TransformerEmber(cfg)
    from ember_neuro.models.liquid import LiquidEmber

    return LiquidEmber(cfg)


GATE_KEYS = ("gate.", "temporal_")


def is_gate_param(name: str) -> bool:
    """A variant's extra gate parameters: LIF gates (with refractory and temporal ones) and
    the qwen gate -- what the paper counts as "extra params" (108, 180, 126, 884,736)."""
    return any(key in name for key in GATE_KEYS)


def param_counts(model: nn.Module) -> dict[str, int]:
    """nanoGPT counting: unique parameters, position embeddings excluded, tied head once."""
    total = sum(p.numel() for p in model.parameters())
    wpe = getattr(getattr(model, "transformer", None), "wpe", None)
    non_embedding = total - (wpe.weight.numel() if wpe is not None else 0)
    gate = sum(p.numel() for n, p in model.named_parameters() if is_gate_param(n))
    qwen = sum(p.numel() for n, p in model.named_parameters() if "qwen_gate" in n)
    return {"total": non_embedding, "total_with_pos": total, "gate": gate, "qwen_gate": qwen}
