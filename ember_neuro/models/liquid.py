"""Liquid Ember: a stack of CfC layers (ncps), each followed by a per-neuron LIF gate.

State-dict gate keys (raw values, one per output neuron of the layer):

    layers.{l}.gate.threshold  (D,)   theta
    layers.{l}.gate.leak       (D,)   leak_raw      -> sigmoid
    layers.{l}.gate.steepness  (D,)   steepness_raw -> softplus

Paper: 4 layers x 128 dim gates = 1,536 gate parameters; CfC with 192 units
projected back to 128 outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ember_neuro import gates
from ember_neuro.models.config import EmberConfig

# fire_fn(layer, h, theta, k) -> fire for unbounded CfC outputs h (B, T, D)
FireFn = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _cfc(input_size: int, units: int, proj_size: int) -> nn.Module:
    try:
        from ncps.torch import CfC
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "Liquid Ember needs ncps: pip install 'ember-neuro[liquid]'"
        ) from exc
    return CfC(input_size, units, proj_size=proj_size, batch_first=True)


class NeuronGate(nn.Module):
    """Per-neuron LIF gate parameters for one CfC layer."""

    def __init__(self, dim: int):
        super().__init__()
        self.threshold = nn.Parameter(torch.full((dim,), gates.THETA_INIT))
        self.leak = nn.Parameter(torch.full((dim,), gates.LEAK_RAW_INIT))
        self.steepness = nn.Parameter(torch.full((dim,), gates.STEEPNESS_RAW_INIT))

    def transformed(self):
        return self.threshold, gates.leak_of(self.leak), gates.steepness_of(self.steepness)


class LiquidLayer(nn.Module):
    def __init__(self, cfg: EmberConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.ln = nn.LayerNorm(cfg.n_embd)
        self.cfc = _cfc(cfg.n_embd, cfg.cfc_units, cfg.n_embd)
        self.gate = NeuronGate(cfg.n_embd) if cfg.variant == "cfc-lif" else None

    def forward(self, x, fire_fn: Optional[FireFn] = None, cache: Optional[dict] = None):
        """cache: None (whole sequence from rest) or a dict carrying this layer's CfC state."""
        hx = None if cache is None else cache.get("hx")
        h, hx = self.cfc(self.ln(x), hx)
        if cache is not None:
            cache["hx"] = hx
        if self.gate is not None:
            theta, leak, k = self.gate.transformed()
            fire = fire_fn(self.layer, h, theta, k) if fire_fn is not None else None
            h = gates.hidden_gate(h, theta, leak, k, fire=fire)
        return x + h


class LiquidEmber(nn.Module):
    def __init__(self, cfg: EmberConfig):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.layers = nn.ModuleList([LiquidLayer(cfg, i) for i in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight

    def forward(self, idx, targets=None, fire_fn: Optional[FireFn] = None,
                caches: Optional[list[dict]] = None, **hooks):
        """Whole sequence (caches=None), or incremental decoding: caches holds one dict per layer
        (start with empty dicts) carrying the CfC state, and idx only the new tokens.  Other
        hooks (the transformer's membrane) do not apply and are ignored."""
        x = self.wte(idx)
        for i, layer in enumerate(self.layers):
            x = layer(x, fire_fn, None if caches is None else caches[i])
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss
