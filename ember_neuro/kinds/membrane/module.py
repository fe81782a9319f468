"""temporal-lif's membrane in the model: V across layers, and each layer's MLP scaled by its fire (torch)."""

from __future__ import annotations

import torch
import torch.nn as nn

from ember_neuro import gates
from ember_neuro.models.hooks import GateModule, Hook


class MembraneGate(GateModule):
    """Per layer: decay, threshold, steepness (raw scalars), saved under their flat checkpoint names
    beside the block's modules (``transformer.h.{l}.temporal_decay``; models.hooks.place)."""

    CHECKPOINT_NAMES = {"decay": "temporal_decay", "threshold": "temporal_threshold",
                        "steepness": "temporal_steepness"}

    def __init__(self, cfg, layer: int):
        super().__init__(layer)
        self.decay = nn.Parameter(torch.tensor(gates.TEMPORAL_DECAY_INIT))
        self.threshold = nn.Parameter(torch.tensor(gates.TEMPORAL_THRESHOLD_INIT))
        self.steepness = nn.Parameter(torch.tensor(gates.TEMPORAL_STEEPNESS_INIT))

    def fire(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return gates.membrane_fire(inputs["input"], self.threshold, self.steepness)

    def forward(self, x: torch.Tensor, attn_out: torch.Tensor, mlp, hook: Hook,
                carry: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The MLP update fire * mlp(x) (B, T, C) and the membrane after the soft reset, V (1 - fire).

        carry: V (B, T) from the layer below (None: 0).  A token whose fire is exactly 0 (a silent
        spiking membrane) skips its MLP: the update is 0 either way, so this changes no number.
        """
        importance = attn_out.norm(dim=-1)
        v = gates.membrane_integrate(torch.zeros_like(importance) if carry is None else carry, importance,
                                     self.decay)
        fire = hook(self, {"input": v, "importance": importance})
        run = fire != 0
        if torch.jit.is_tracing() or bool(run.all()):
            update = fire.unsqueeze(-1) * mlp(x)
        else:
            update = torch.zeros_like(x)
            if bool(run.any()):
                update[run] = fire[run].unsqueeze(-1) * mlp(x[run])
        return update, v * (1.0 - fire)
