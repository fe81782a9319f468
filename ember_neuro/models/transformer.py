"""Transformer Ember: nanoGPT with a learned LIF gate on attention probabilities.

One screen per idea: the gate math is in gates.py; this file only places it.
State-dict key names (raw, pre-transform gate values) follow from the module
structure below; mappers/params.py documents and reads them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ember_neuro import gates
from ember_neuro.models.config import EmberConfig

# fire_fn(layer, p, theta, k, loads) -> fire, same shape as p.  None means the trained sigmoid.
# loads: None, or for lif-refractory {"col_load": (B, H, 1, Tk), "prev_load": (B, 1, 1, Tk)}.
FireFn = Callable[..., torch.Tensor]
# membrane_fn(layer, v, importance) -> fire (B, T) of temporal-lif's membrane after this layer's
# integration (v; importance = ||attn_out|| is what it integrated).  None means the trained
# sigmoid.  With hard_membrane the fire is 0/1 and the MLP runs only where it is 1.
MembraneFn = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


class LIFGate(nn.Module):
    """Per-head LIF gate parameters (raw) for one attention layer."""

    def __init__(self, n_head: int, variant: str):
        super().__init__()
        self.variant = variant
        if variant == "lif-fixed":
            self.register_buffer("threshold", torch.full((n_head,), gates.LIF_FIXED_THETA))
        else:
            self.threshold = nn.Parameter(torch.full((n_head,), gates.THETA_INIT))
        self.leak = nn.Parameter(torch.full((n_head,), gates.LEAK_RAW_INIT))
        self.steepness = nn.Parameter(torch.full((n_head,), gates.STEEPNESS_RAW_INIT))
        if variant == "lif-refractory":
            self.ref_strength = nn.Parameter(torch.full((n_head,), gates.REF_STRENGTH_INIT))
            self.cross_layer_weight = nn.Parameter(
                torch.full((n_head,), gates.CROSS_LAYER_WEIGHT_INIT)
            )

    def transformed(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(theta, leak, k), each (H,)."""
        return self.threshold, gates.leak_of(self.leak), gates.steepness_of(self.steepness)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: EmberConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.n_head, self.n_embd = cfg.n_head, cfg.n_embd
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.attn_dropout = nn.Dropout(cfg.dropout)
        self.resid_dropout = nn.Dropout(cfg.dropout)
        self.gate = LIFGate(cfg.n_head, cfg.variant) if cfg.has_lif_gate else None
        self.qwen_gate = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False) if cfg.variant == "qwen-gate" else None
        self.register_buffer(
            "mask", torch.tril(torch.ones(cfg.block_size, cfg.block_size)).bool(), persistent=False
        )

    def probabilities(self, x: torch.Tensor, past_k: Optional[torch.Tensor] = None,
                      past_v: Optional[torch.Tensor] = None):
        """QKV and the causal softmax: p (B, H, T, Tk) of the new rows of x over the past and new
        keys, and the keys and values of all Tk positions (B, H, Tk, hd)."""
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        if past_k is not None:
            k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        tk = k.size(2)
        past = tk - t
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(~self.mask[past:past + t, :tk], float("-inf"))
        return F.softmax(att, dim=-1), k, v

    def gate_loads(self, p: torch.Tensor, prev_load: Optional[torch.Tensor]) -> Optional[dict]:
        """lif-refractory's host payloads: column load (B, H, 1, Tk), previous load (B, 1, 1, Tk)."""
        if self.gate is None or self.gate.variant != "lif-refractory":
            return None
        prev = torch.zeros_like(p[:, :1, :1]) if prev_load is None else prev_load[:, None, None, :]
        return {"col_load": gates.column_load(p), "prev_load": prev}

    def gate_probs(self, p: torch.Tensor, prev_load: Optional[torch.Tensor],
                   fire_fn: Optional[FireFn]) -> torch.Tensor:
        """Apply the LIF gate to post-softmax probabilities p (B, H, Tq, Tk)."""
        theta, leak, k = self.gate.transformed()
        h = self.n_head
        loads = self.gate_loads(p, prev_load)
        if loads is not None:
            th = gates.refractory_theta(theta, self.gate.ref_strength,
                                        self.gate.cross_layer_weight, p, prev_load)
        else:
            th = theta.view(1, h, 1, 1)
        kk, lk = k.view(1, h, 1, 1), leak.view(1, h, 1, 1)
        fire = fire_fn(self.layer, p, th, kk, loads) if fire_fn is not None else None
        return gates.lif_gate(p, th, lk, kk, fire=fire)

    def gate_with_fire(self, p: torch.Tensor, fire: torch.Tensor) -> torch.Tensor:
        """The host part of the gate once `fire` is known: the leak product and row renormalisation."""
        _, leak, _ = self.gate.transformed()
        return gates.lif_gate(p, None, leak.view(1, self.n_head, 1, 1), None, fire=fire)

    def attend(self, p: torch.Tensor, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The (gated) probabilities times the values, through the output projection."""
        b, t, c = x.shape
        y = (self.attn_dropout(p) @ v).transpose(1, 2).contiguous().view(b, t, c)
        if self.qwen_gate is not None:
            y = y * torch.sigmoid(self.qwen_gate(x))
        return self.resid_dropout(self.c_proj(y))

    def forward(self, x, prev_load=None, fire_fn=None, cache=None):
        """cache: None (whole sequence) or a dict holding this layer's keys/values so far;
        the new rows of x attend to the cached positions and to themselves (causally)."""
        past = (cache.get("k"), cache.get("v")) if cache is not None else (None, None)
        p, k, v = self.probabilities(x, *past)
        if cache is not None:
            cache["k"], cache["v"] = k, v
        load = gates.layer_load(p)
        if self.gate is not None:
            p = self.gate_probs(p, prev_load, fire_fn)
        return self.attend(p, v, x), load


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
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg, layer)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)
        self.temporal = cfg.variant == "temporal-lif"
        if self.temporal:
            self.temporal_decay = nn.Parameter(torch.tensor(gates.TEMPORAL_DECAY_INIT))
            self.temporal_threshold = nn.Parameter(torch.tensor(gates.TEMPORAL_THRESHOLD_INIT))
            self.temporal_steepness = nn.Parameter(torch.tensor(gates.TEMPORAL_STEEPNESS_INIT))

    def forward(self, x, state):
        """state: dict carrying prev_load (refractory) and membrane V (temporal)."""
        caches = state.get("caches")
        attn_out, load = self.attn(self.ln_1(x), state.get("prev_load"), state.get("fire_fn"),
                                   None if caches is None else caches[self.attn.layer])
        x = x + attn_out
        if self.temporal:
            importance = attn_out.norm(dim=-1)
            v = gates.membrane_integrate(state["v"], importance, self.temporal_decay)
            membrane_fn = state.get("membrane_fn")
            if membrane_fn is None:
                fire = gates.membrane_fire(v, self.temporal_threshold, self.temporal_steepness)
            else:
                fire = membrane_fn(self.attn.layer, v, importance)
            if state.get("hard_membrane"):  # a spike runs the MLP; no spike skips it
                run = fire > 0.5
                update = torch.zeros_like(x)
                if bool(run.any()):
                    update[run] = self.mlp(self.ln_2(x[run]))
                x = x + update
                stats = state.get("stats")
                if stats is not None:
                    stats["mlp_run"] = stats.get("mlp_run", 0) + int(run.sum())
                    stats["mlp_total"] = stats.get("mlp_total", 0) + run.numel()
            else:
                x = x + fire.unsqueeze(-1) * self.mlp(self.ln_2(x))
            state["v"] = v * (1.0 - fire)
        else:
            x = x + self.mlp(self.ln_2(x))
        state["prev_load"] = load
        return x


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

    def forward(self, idx, targets=None, fire_fn: Optional[FireFn] = None,
                caches: Optional[list[dict]] = None, membrane_fn: Optional[MembraneFn] = None,
                hard_membrane: bool = False, stats: Optional[dict] = None):
        """Whole sequence (caches=None) or incremental decoding with a KV cache.

        caches: one dict per layer (start with empty dicts); idx then holds only the
        new tokens, placed after the cached positions.  The temporal-LIF membrane is
        per token, so new tokens start from V = 0 either way.  membrane_fn /
        hard_membrane replace temporal-lif's membrane fire (stats counts the MLPs a
        hard membrane ran: mlp_run of mlp_total).
        """
        b, t = idx.shape
        pos0 = 0 if not caches or "k" not in caches[0] else caches[0]["k"].size(2)
        if pos0 + t > self.config.block_size:
            raise ValueError(
                f"sequence length {pos0 + t} exceeds block_size {self.config.block_size}")
        if caches is not None and self.config.variant == "lif-refractory":
            raise ValueError("lif-refractory cannot decode incrementally: its column load "
                             "averages over all queries (not causal); use whole-sequence mode")
        pos = torch.arange(pos0, pos0 + t, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        state = {"fire_fn": fire_fn, "prev_load": None, "caches": caches, "membrane_fn": membrane_fn,
                 "hard_membrane": hard_membrane, "stats": stats,
                 "v": torch.zeros(b, t, device=idx.device, dtype=x.dtype)}
        for block in self.transformer.h:
            x = block(x, state)
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss
