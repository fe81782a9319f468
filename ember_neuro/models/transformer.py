"""Transformer Ember: nanoGPT whose sites host a variant's gates.

The gate formulas are in ember_neuro/gates.py and each gate kind's module in
ember_neuro/kinds/<kind>/module.py; this file only says where they sit:

    attn      the post-softmax probabilities p (B, H, T, Tk) of every layer (the LIF gates)
    attn_out  the attention output y before its projection (qwen-gate's dense gate)
    mlp       the MLP's update of the residual stream (temporal-lif's membrane)

A site the variant leaves empty computes plain nanoGPT.  Every gate's fire comes from the
``hook`` argument (models/hooks.py: the trained sigmoid unless a caller supplies another), and a
part that carries state from layer to layer (the refractory load, the membrane V) passes it up
the stack in an explicit :class:`Carry`.  State-dict key names follow from the module
structure and each part's attribute; every kind documents the keys it reads.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ember_neuro.kinds import registry
from ember_neuro.models.config import EmberConfig
from ember_neuro.models.hooks import Hook, place, site, trained


class Carry(NamedTuple):
    """What the parts at each site pass from one layer to the next (None: nothing yet)."""

    attn: Any = None
    mlp: Any = None


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: EmberConfig, layer: int):
        super().__init__()
        self.n_head, self.n_embd = cfg.n_head, cfg.n_embd
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.attn_dropout = nn.Dropout(cfg.dropout)
        self.resid_dropout = nn.Dropout(cfg.dropout)
        self.register_buffer(
            "mask", torch.tril(torch.ones(cfg.block_size, cfg.block_size)).bool(), persistent=False
        )
        self.sites = place(self, cfg, layer, "attn", "attn_out")

    def probabilities(self, x: torch.Tensor, past_k: Optional[torch.Tensor] = None,
                      past_v: Optional[torch.Tensor] = None, pad: Optional[torch.Tensor] = None):
        """QKV and the causal softmax: p (B, H, T, Tk) of the new rows of x over the past and new
        keys, and the keys and values of all Tk positions (B, H, Tk, hd).  ``pad`` (B,): the left
        padding of each row of a ragged batch; its keys get p = 0 (a padding query attends to the
        padding only, so no row is all -inf)."""
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        if past_k is not None:
            k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        tk = k.size(2)
        past = tk - t
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        allowed = self.mask[past:past + t, :tk]
        if pad is not None:
            key_real = torch.arange(tk, device=x.device)[None, :] >= pad[:, None]  # (B, Tk)
            query_pad = torch.arange(past, past + t, device=x.device)[None, :] < pad[:, None]  # (B, T)
            allowed = allowed[None, None] & (key_real[:, None, None, :] | query_pad[:, None, :, None])
        att = att.masked_fill(~allowed, float("-inf"))
        return F.softmax(att, dim=-1), k, v

    def attend(self, p: torch.Tensor, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The (gated) probabilities times the values, through the output projection."""
        b, t, c = x.shape
        y = (self.attn_dropout(p) @ v).transpose(1, 2).contiguous().view(b, t, c)
        out_gate = site(self, "attn_out")
        if out_gate is not None:
            y = out_gate(y, x)
        return self.resid_dropout(self.c_proj(y))

    def forward(self, x: torch.Tensor, hook: Hook, cache: Optional[dict] = None, carry: Any = None,
                pad: Optional[torch.Tensor] = None):
        """cache: None (whole sequence) or this layer's keys and values so far (updated in place)."""
        past = (cache.get("k"), cache.get("v")) if cache is not None else (None, None)
        p, k, v = self.probabilities(x, *past, pad=pad)
        if cache is not None:
            cache["k"], cache["v"] = k, v
        gate = site(self, "attn")
        if gate is not None:
            p, carry = gate(p, hook, carry)
        return self.attend(p, v, x), carry


class MLP(nn.Module):
    def __init__(self, cfg: EmberConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: EmberConfig, layer: int):
        super().__init__()
        # placed first, so its parameters come first in the block (as the membrane's did when they
        # were the block's own): parameter order is gradient-clipping order, and training reproduces
        self.sites = place(self, cfg, layer, "mlp")
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg, layer)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.ln_2(x))

    def forward(self, x: torch.Tensor, hook: Hook, cache: Optional[dict], carry: Carry,
                pad: Optional[torch.Tensor] = None):
        a, attn_carry = self.attn(self.ln_1(x), hook, cache, carry.attn, pad)
        x = x + a
        gate = site(self, "mlp")
        if gate is None:
            return x + self.ffn(x), Carry(attn_carry, carry.mlp)
        update, mlp_carry = gate(x, a, self.ffn, hook, carry.mlp)
        return x + update, Carry(attn_carry, mlp_carry)


class TransformerEmber(nn.Module):
    def __init__(self, cfg: EmberConfig):
        super().__init__()
        self.config = cfg
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(cfg.vocab_size, cfg.n_embd),
            wpe=nn.Embedding(cfg.block_size, cfg.n_embd),
            drop=nn.Dropout(cfg.dropout),
            h=nn.ModuleList([Block(cfg, i) for i in range(cfg.n_layer)]),
            ln_f=nn.LayerNorm(cfg.n_embd, bias=cfg.bias),
        ))
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)
        for name, prm in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(prm, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @staticmethod
    def claimed_shapes(cfg: EmberConfig) -> tuple[str, dict[str, tuple]]:
        """(layer key prefix, {key: shape}) of tensors whose size model_args claims (checkpoint checks)."""
        return "transformer.h.", {"transformer.wte.weight": (cfg.vocab_size, cfg.n_embd),
                                  "transformer.wpe.weight": (cfg.block_size, cfg.n_embd)}

    def forward(self, idx: torch.Tensor, targets: Optional[torch.Tensor] = None, hook: Optional[Hook] = None,
                caches: Optional[list[dict]] = None, pad: Optional[torch.Tensor] = None):
        """Whole sequence (caches=None) or incremental decoding with a KV cache: caches holds one dict
        per layer (start with empty dicts), idx only the new tokens after the cached positions.
        hook supplies every gate's fire (default: the trained sigmoid).  ``pad`` (B,) long: a ragged
        batch's left padding per row (positions count from each row's first real token, padded keys
        are masked), so each row computes what it computes alone."""
        b, t = idx.shape
        pos0 = 0 if not caches or "k" not in caches[0] else caches[0]["k"].size(2)
        if pos0 + t > self.config.block_size:
            raise ValueError(f"sequence length {pos0 + t} exceeds block_size {self.config.block_size}")
        if caches is not None and (noncausal := registry.get(self.config.variant).noncausal):
            raise ValueError(f"{self.config.variant} cannot decode incrementally: {noncausal}; "
                             "use whole-sequence mode")
        pos = torch.arange(pos0, pos0 + t, device=idx.device)
        if pad is not None:
            pos = (pos[None, :] - pad[:, None]).clamp(min=0)  # (B, T): each row's own positions
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        carry = Carry()
        for i, block in enumerate(self.transformer.h):
            x, carry = block(x, hook or trained, None if caches is None else caches[i], carry, pad)
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss
