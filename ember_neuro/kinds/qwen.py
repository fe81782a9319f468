"""qwen-gate's dense gate Y sigmoid(X W) after attention: a host-only part (a baseline, no neurons; torch)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class QwenGate(nn.Linear):
    """W (C, C) without bias, saved as ``transformer.h.{l}.attn.qwen_gate.weight``."""

    def __init__(self, cfg, layer: int):
        super().__init__(cfg.n_embd, cfg.n_embd, bias=False)

    def forward(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return y * torch.sigmoid(F.linear(x, self.weight))
