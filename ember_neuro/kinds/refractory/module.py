"""The refractory gate in the model: the attention gate plus its load inputs (torch)."""

from __future__ import annotations

import torch
import torch.nn as nn

from ember_neuro import gates
from ember_neuro.kinds.attention.module import AttentionGate
from ember_neuro.models.hooks import Hook


class RefractoryGate(AttentionGate):
    """Per head also ref_strength and cross_layer_weight (raw); carries this layer's load to the next."""

    def __init__(self, cfg, layer: int):
        super().__init__(cfg, layer)
        self.ref_strength = nn.Parameter(torch.full((cfg.n_head,), gates.REF_STRENGTH_INIT))
        self.cross_layer_weight = nn.Parameter(torch.full((cfg.n_head,), gates.CROSS_LAYER_WEIGHT_INIT))

    def fire(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """sigmoid(k (|p| - theta_eff)), theta_eff = theta + softplus(ref) col_load + sigmoid(cross)
        prev_load; layer 0 has no previous layer (its prev_load input is 0 and takes no part, as in
        training)."""
        theta, _, k = self.transformed()
        theta_eff = gates.refractory_theta(self.per_head(theta), self.per_head(self.ref_strength),
                                           self.per_head(self.cross_layer_weight), inputs["col_load"],
                                           inputs["prev_load"] if self.layer > 0 else None)
        return gates.fire_curve(inputs["input"], theta_eff, self.per_head(k))

    def forward(self, p: torch.Tensor, hook: Hook, carry: torch.Tensor | None = None):
        """carry: the previous layer's load (B, Tk) (None in layer 0: zeros); returns this layer's."""
        load = gates.layer_load(p)  # this layer's, for the next (computed first: the order autograd sums in)
        prev = torch.zeros_like(p[:, :1, :1]) if carry is None else carry[:, None, None, :]
        fire = hook(self, {"input": p, "col_load": gates.column_load(p), "prev_load": prev})
        return gates.lif_gate(p, None, self.per_head(gates.leak_of(self.leak)), None, fire=fire), load
