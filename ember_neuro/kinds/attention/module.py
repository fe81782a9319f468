"""The attention gate's parameters in the model, and the host's part around the neurons (torch)."""

from __future__ import annotations

import torch
import torch.nn as nn

from ember_neuro import gates
from ember_neuro.models.hooks import GateModule, Hook


class AttentionGate(GateModule):
    """Per-head (theta, leak, steepness), raw; lif-fixed holds theta as a buffer."""

    UNIT_PARAMS = ("threshold", "leak", "steepness")

    def __init__(self, cfg, layer: int, fixed_threshold: float | None = None):
        super().__init__(layer)
        h = cfg.n_head
        if fixed_threshold is None:
            self.threshold = nn.Parameter(torch.full((h,), gates.THETA_INIT))
        else:
            self.register_buffer("threshold", torch.full((h,), float(fixed_threshold)))
        self.leak = nn.Parameter(torch.full((h,), gates.LEAK_RAW_INIT))
        self.steepness = nn.Parameter(torch.full((h,), gates.STEEPNESS_RAW_INIT))

    def per_head(self, t: torch.Tensor) -> torch.Tensor:
        return t.view(1, -1, 1, 1)

    def transformed(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(theta, leak, k), each (H,)."""
        return self.threshold, gates.leak_of(self.leak), gates.steepness_of(self.steepness)

    def fire(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        theta, _, k = self.transformed()
        return gates.fire_curve(inputs["input"], self.per_head(theta), self.per_head(k))

    def forward(self, p: torch.Tensor, hook: Hook, carry: object = None) -> tuple[torch.Tensor, object]:
        """Gated probabilities p' (B, H, Tq, Tk): the fire from `hook`, then the leak and each row's mass."""
        fire = hook(self, {"input": p})
        return gates.lif_gate(p, None, self.per_head(gates.leak_of(self.leak)), None, fire=fire), carry
