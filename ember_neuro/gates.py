"""The Ember LIF gate: the one place its formula, transforms and inits live.

Everything else (models, mapper, emulator, validation) imports from here, so a
trained checkpoint means the same thing everywhere.

Raw (pre-transform) parameters are what checkpoints store:

    theta = theta_raw                  (threshold, identity-like init 0.0)
    leak  = sigmoid(leak_raw)          (init raw 1.0 -> 0.731, "mild attenuation")
    k     = softplus(steepness_raw)    (init raw 0.0 -> ln 2 = 0.693)

The steepness init is ours (the notes only say "init -> sigmoid ~ pass-through"):
with theta = 0 and k = ln 2 the fire curve over p in [0, 1] stays within
[0.5, 0.667], so after renormalisation the gated attention differs from plain
attention by a few percent at most -- identity-like, as the notes require.

    fire  = sigmoid(k * (|p| - theta))
    gated = p * (leak + (1 - leak) * fire)
    p'    = gated * (sum_row p / sum_row gated)      # each query row keeps its mass
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

THETA_INIT = 0.0
LEAK_RAW_INIT = 1.0
STEEPNESS_RAW_INIT = 0.0
LIF_FIXED_THETA = 1.0

# lif-refractory (per head)
REF_STRENGTH_INIT = -2.0
CROSS_LAYER_WEIGHT_INIT = -2.0

# temporal-lif (per layer)
TEMPORAL_DECAY_INIT = 1.0
TEMPORAL_THRESHOLD_INIT = 0.0
TEMPORAL_STEEPNESS_INIT = 1.5

RENORM_EPS = 1e-12


@dataclass(frozen=True)
class GateParams:
    """Transformed parameters of one gate unit (a head, or one CfC neuron)."""

    theta: float
    leak: float
    k: float

    @staticmethod
    def from_raw(theta_raw: float, leak_raw: float, steepness_raw: float) -> GateParams:
        return GateParams(
            theta=float(theta_raw),
            leak=float(torch.sigmoid(torch.tensor(float(leak_raw), dtype=torch.float64))),
            k=float(F.softplus(torch.tensor(float(steepness_raw), dtype=torch.float64))),
        )


def leak_of(leak_raw: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(leak_raw)


def steepness_of(steepness_raw: torch.Tensor) -> torch.Tensor:
    return F.softplus(steepness_raw)


def fire_curve(x: torch.Tensor, theta: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """sigmoid(k * (|x| - theta)): the part that runs as spiking neurons."""
    return torch.sigmoid(k * (x.abs() - theta))


def fire_curve_np(x, theta: float, k: float):
    """NumPy/float version of :func:`fire_curve` for mapping and validation."""
    import numpy as np

    z = k * (np.abs(x) - theta)
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


def apply_fire(p: torch.Tensor, fire: torch.Tensor, leak: torch.Tensor) -> torch.Tensor:
    """p * (leak + (1 - leak) * fire): the host-side multiply (chip gives `fire`)."""
    return p * (leak + (1.0 - leak) * fire)


def renormalise_rows(gated: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Rescale each query row (last dim) of `gated` to the mass of `original`."""
    mass = original.sum(dim=-1, keepdim=True)
    gmass = gated.sum(dim=-1, keepdim=True)
    return gated * (mass / gmass.clamp_min(RENORM_EPS))


def lif_gate(
    p: torch.Tensor,
    theta: torch.Tensor,
    leak: torch.Tensor,
    k: torch.Tensor,
    fire: torch.Tensor | None = None,
) -> torch.Tensor:
    """Full attention gate on probabilities p (B, H, Tq, Tk).

    theta, leak, k broadcast against p (per head: shape (H, 1, 1) or
    (B, H, 1, Tk) for refractory thresholds). `fire` may be supplied by a
    spiking backend instead of the sigmoid; everything else is identical.
    """
    if fire is None:
        fire = fire_curve(p, theta, k)
    return renormalise_rows(apply_fire(p, fire, leak), p)


def refractory_theta(
    theta: torch.Tensor,
    ref_strength_raw: torch.Tensor,
    cross_layer_weight_raw: torch.Tensor,
    p: torch.Tensor,
    prev_load: torch.Tensor | None,
) -> torch.Tensor:
    """theta_eff = theta + softplus(ref)*column_load + sigmoid(cross)*prev_load.

    p: (B, H, Tq, Tk); theta/ref/cross: (H,). column_load is the mean over
    queries (B, H, 1, Tk) -- note: over *all* queries, so not causal for
    token-by-token decoding. prev_load (B, Tk) is the previous layer's load
    averaged over heads and queries (None for the first layer).
    """
    h = theta.shape[0]
    col_load = p.mean(dim=-2, keepdim=True)
    th = theta.view(1, h, 1, 1) + F.softplus(ref_strength_raw).view(1, h, 1, 1) * col_load
    if prev_load is not None:
        th = th + torch.sigmoid(cross_layer_weight_raw).view(1, h, 1, 1) * prev_load[:, None, None, :]
    return th


def layer_load(p: torch.Tensor) -> torch.Tensor:
    """Mean attention received per key over heads and queries: (B, Tk)."""
    return p.mean(dim=(1, 2))


def temporal_step(
    v: torch.Tensor,
    importance: torch.Tensor,
    decay_raw: torch.Tensor,
    threshold_raw: torch.Tensor,
    steepness_raw: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer of the temporal-LIF membrane (per token).

    V = V*sigmoid(decay) + importance; fire = sigmoid(softplus(steep)*(V - softplus(thr)));
    returns (fire, V_after_soft_reset) with V_after = V*(1-fire).
    """
    v = v * torch.sigmoid(decay_raw) + importance
    fire = torch.sigmoid(F.softplus(steepness_raw) * (v - F.softplus(threshold_raw)))
    return fire, v * (1.0 - fire)


def hidden_gate(h: torch.Tensor, theta: torch.Tensor, leak: torch.Tensor, k: torch.Tensor,
                fire: torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    """Liquid Ember per-neuron gate on CfC output h (..., D), rescaled to keep ||h||."""
    if fire is None:
        fire = fire_curve(h, theta, k)
    out = apply_fire(h, fire, leak)
    scale = h.norm(dim=-1, keepdim=True) / out.norm(dim=-1, keepdim=True).clamp_min(eps)
    return out * scale


def logit(q: float) -> float:
    return math.log(q / (1.0 - q))
