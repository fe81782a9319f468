"""Liquid Ember: a stack of CfC layers (ncps), each with one site for a gate on its output.

    cfc   the CfC output h (B, T, D) of every layer (cfc-lif's per-neuron LIF gates)

Paper: 4 layers x 128 dim gates = 1,536 gate parameters; CfC with 192 units projected back to
128 outputs.  The gate's fire comes from the ``hook`` argument (models/hooks.py).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ember_neuro.models.config import EmberConfig
from ember_neuro.models.hooks import Hook, place, site, trained


def _cfc(input_size: int, units: int, proj_size: int) -> nn.Module:
    try:
        from ncps.torch import CfC
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "Liquid Ember needs ncps: pip install 'ember-neuro[liquid]'"
        ) from exc
    return CfC(input_size, units, proj_size=proj_size, batch_first=True)


class LiquidLayer(nn.Module):
    def __init__(self, cfg: EmberConfig, layer: int):
        super().__init__()
        self.ln = nn.LayerNorm(cfg.n_embd)
        self.cfc = _cfc(cfg.n_embd, cfg.cfc_units, cfg.n_embd)
        self.sites = place(self, cfg, layer, "cfc")

    def forward(self, x: torch.Tensor, hook: Hook, cache: Optional[dict] = None) -> torch.Tensor:
        """cache: None (whole sequence from rest) or a dict carrying this layer's CfC state."""
        h, hx = self.cfc(self.ln(x), None if cache is None else cache.get("hx"))
        if cache is not None:
            cache["hx"] = hx
        gate = site(self, "cfc")
        return x + (h if gate is None else gate(h, hook))


class LiquidEmber(nn.Module):
    def __init__(self, cfg: EmberConfig):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.layers = nn.ModuleList([LiquidLayer(cfg, i) for i in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight

    @staticmethod
    def claimed_shapes(cfg: EmberConfig) -> tuple[str, dict[str, tuple]]:
        """(layer key prefix, {key: shape}) of tensors whose size model_args claims (None: any)."""
        return "layers.", {"wte.weight": (cfg.vocab_size, cfg.n_embd),
                           "layers.0.cfc.rnn_cell.ff1.weight": (cfg.cfc_units, None)}

    def forward(self, idx: torch.Tensor, targets: Optional[torch.Tensor] = None, hook: Optional[Hook] = None,
                caches: Optional[list[dict]] = None):
        """Whole sequence (caches=None), or incremental decoding: caches holds one dict per layer
        (start with empty dicts) carrying the CfC state, and idx only the new tokens."""
        x = self.wte(idx)
        for i, layer in enumerate(self.layers):
            x = layer(x, hook or trained, None if caches is None else caches[i])
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss
