"""temporal-lif's membrane in the model: V across layers, and each layer's MLP scaled by its fire (torch).

Two trained forms (``EmberConfig.spike``):

* ``soft`` (the notes' model): fire = sigmoid(k (V - theta)), each layer with its own decay,
  threshold and steepness; the MLP update is scaled by the fractional fire.
* ``hard`` (the neuron the chip runs, ``--temporal hard``): fire = [V > theta], a 0/1 spike, with
  one leak and one threshold shared by every layer (the chip's membrane neuron has one of each:
  kinds/membrane/__init__.hard_membrane) and the leak its 12-bit decay realises.  What the layers
  keep apart is a per-layer input gain g_l = exp(gain_l) on ||attn_out|| (``temporal_gain``),
  applied by the host before it sends the value, so the chip is unchanged: a neuron that was
  reset at the layer below spikes iff ||attn_out|| > theta / g_l, a per-layer threshold.
  Training sees the spike forward and snnTorch's sigmoid surrogate backward, applied to
  s k (V - theta) with slope 1: ``surrogate_slope`` s = 1 is the soft fire's own gradient, and
  ``train --surrogate-slope`` (default 4) sharpens it; k and s only shape that surrogate.  A
  token that does not spike skips its MLP: it is not computed (see :meth:`MembraneGate.forward`).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ember_neuro import gates
from ember_neuro.errors import BadInput
from ember_neuro.mappers import loihi
from ember_neuro.models.hooks import GateModule, Hook

SHARED = ("decay", "threshold", "steepness")  # what a hard membrane shares across layers


def surrogate_spike() -> object:
    """snnTorch's Heaviside with a sigmoid surrogate gradient (forward x > 0, strict as on Loihi)."""
    try:
        from snntorch import surrogate
    except ImportError as exc:  # an optional dependency of training with hard spikes
        raise BadInput("a hard-spike temporal-lif model needs snntorch for its surrogate gradient: "
                       "pip install snntorch") from exc
    return surrogate.sigmoid(slope=1.0)


class MembraneGate(GateModule):
    """Per layer: decay, threshold, steepness (raw scalars), saved under their flat checkpoint names
    beside the block's modules (``transformer.h.{l}.temporal_decay``; models.hooks.place)."""

    CHECKPOINT_NAMES = {"decay": "temporal_decay", "threshold": "temporal_threshold",
                        "steepness": "temporal_steepness"}

    def __init__(self, cfg, layer: int):
        super().__init__(layer)
        self.hard = getattr(cfg, "spike", "soft") == "hard"
        self.decay = nn.Parameter(torch.tensor(gates.TEMPORAL_DECAY_INIT))
        self.threshold = nn.Parameter(torch.tensor(gates.TEMPORAL_THRESHOLD_INIT))
        self.steepness = nn.Parameter(torch.tensor(gates.TEMPORAL_STEEPNESS_INIT))
        self._spike = surrogate_spike() if self.hard else None
        if self.hard:
            self.gain = nn.Parameter(torch.tensor(0.0))  # raw: g = exp(gain), 1 at the start
            self.CHECKPOINT_NAMES = {**type(self).CHECKPOINT_NAMES, "gain": "temporal_gain"}
        self.surrogate_slope = 1.0  # x k: the surrogate's steepness (training only; the spike is the same)
        self.compute_silent = False  # True: every token's MLP is computed and masked (the bench's reference)

    @classmethod
    def bind(cls, modules: list[MembraneGate], like: list[MembraneGate] | None = None) -> None:
        """A hard membrane's layers share one leak, threshold and steepness: the means (of the
        transformed values) over the layers of `like` (default: these modules, as they are now),
        as one Parameter each (soft: nothing)."""
        if not modules or not modules[0].hard:
            return
        src = like or modules
        with torch.no_grad():
            leak = float(torch.stack([gates.sigmoid(m.decay) for m in src]).mean())
            theta = float(torch.stack([gates.softplus(m.threshold) for m in src]).mean())
            k = float(torch.stack([gates.softplus(m.steepness) for m in src]).mean())
            raw = {"decay": math.log(leak / (1.0 - leak)), "threshold": gates.softplus_inverse(theta),
                   "steepness": gates.softplus_inverse(k)}
        for name in SHARED:
            shared = nn.Parameter(torch.tensor(raw[name], dtype=modules[0].decay.dtype))
            for m in modules:
                setattr(m, name, shared)

    def leak(self) -> torch.Tensor:
        """sigmoid(decay); hard: the leak the chip's 12-bit decay realises (straight through)."""
        lam = gates.sigmoid(self.decay)
        if not self.hard:
            return lam
        chip = loihi.kept_fraction(loihi.decay_constant(float(lam.detach())))
        return lam + (chip - lam).detach()

    def fire(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        if not self.hard:
            return gates.membrane_fire(inputs["input"], self.threshold, self.steepness)
        k = gates.softplus(self.steepness) * self.surrogate_slope
        return self._spike(k * (inputs["input"] - gates.softplus(self.threshold)))

    def forward(self, x: torch.Tensor, attn_out: torch.Tensor, mlp, hook: Hook,
                carry: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The MLP update fire * mlp(x) (B, T, C) and the membrane after the soft reset, V (1 - fire).

        carry: V (B, T) from the layer below (None: 0).  Outside training, a token whose fire is
        exactly 0 (a silent spike) is not computed: the MLP runs on the gathered rows that fire
        and its result is scattered back, so the skip is real (also in the exported ONNX graph,
        where it becomes NonZero / GatherND / ScatterND).  Training computes every row: the
        surrogate gradient of a silent token needs its MLP output (and ``compute_silent`` asks for
        the same, for the bench to measure what skipping saves).
        """
        importance = attn_out.norm(dim=-1)
        if self.hard:
            importance = importance * torch.exp(self.gain)
        v = gates.membrane_integrate(torch.zeros_like(importance) if carry is None else carry, importance,
                                     self.leak())
        fire = hook(self, {"input": v, "importance": importance})
        if self.compute_silent or (self.training and torch.is_grad_enabled()):
            update = fire.unsqueeze(-1) * mlp(x)
        else:
            update = skip_silent(x, fire, mlp)
        return update, v * (1.0 - fire)


def skip_silent(x: torch.Tensor, fire: torch.Tensor, mlp) -> torch.Tensor:
    """fire * mlp(x) computed only on the rows (tokens) whose fire is not 0: (B, T, C).  Where every
    row fires (a soft gate) the plain product; a traced graph always gathers (the export's skip)."""
    if not torch.jit.is_tracing() and bool((fire != 0).all()):
        return fire.unsqueeze(-1) * mlp(x)
    rows = torch.nonzero(fire, as_tuple=True)
    update = torch.zeros_like(x)
    return update.index_put(rows, fire[rows].unsqueeze(-1) * mlp(x[rows]))

