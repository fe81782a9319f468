"""Liquid Ember's per-neuron gate in the model (torch)."""

from __future__ import annotations

import torch
import torch.nn as nn

from ember_neuro import gates
from ember_neuro.models.hooks import GateModule, Hook


class HiddenGate(GateModule):
    """Per CfC output neuron (theta, leak, steepness), raw."""

    UNIT_PARAMS = ("threshold", "leak", "steepness")

    def __init__(self, cfg, layer: int):
        super().__init__(layer)
        d = cfg.n_embd
        self.threshold = nn.Parameter(torch.full((d,), gates.THETA_INIT))
        self.leak = nn.Parameter(torch.full((d,), gates.LEAK_RAW_INIT))
        self.steepness = nn.Parameter(torch.full((d,), gates.STEEPNESS_RAW_INIT))

    def transformed(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.threshold, gates.leak_of(self.leak), gates.steepness_of(self.steepness)

    def fire(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        theta, _, k = self.transformed()
        return gates.fire_curve(inputs["input"], theta, k)

    def forward(self, h: torch.Tensor, hook: Hook) -> torch.Tensor:
        """h' (B, T, D): the fire from `hook`, the leak, and ||h|| kept."""
        theta, leak, k = self.transformed()
        return gates.hidden_gate(h, theta, leak, k, fire=hook(self, {"input": h}))
