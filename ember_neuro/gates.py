"""The Ember LIF gate: the one place its formula, transforms and inits live.

Everything else (models, mapper, emulator, validation, the torch-free hardware
path) imports from here, so a trained checkpoint means the same thing
everywhere.  This module does not import torch: each function works on numpy
arrays and on torch tensors alike (only operators, ``abs``, ``sum``/``mean``
with ``axis``/``keepdims``, ``clip`` and ``reshape``; :func:`sigmoid` and
:func:`softplus` dispatch on the array type).  The models call it with tensors
(and get gradients), the mapper with numpy floats.

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
import sys
from typing import Any

import numpy as np

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
HIDDEN_NORM_EPS = 1e-6


def _torch_of(x: Any) -> Any:
    """The torch module if `x` is a tensor (already imported by whoever made it), else None."""
    return sys.modules["torch"] if type(x).__module__.startswith("torch") else None


def sigmoid(z: Any) -> Any:
    """Logistic function; overflow-free in numpy (tanh form), torch.sigmoid for tensors."""
    torch = _torch_of(z)
    if torch is not None:
        return torch.sigmoid(z)
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def softplus(z: Any) -> Any:
    """log(1 + e^z); torch's softplus for tensors (its gradient), exact logaddexp in numpy."""
    torch = _torch_of(z)
    if torch is not None:
        return torch.nn.functional.softplus(z)
    return np.logaddexp(0.0, np.asarray(z, dtype=np.float64))


def softplus_inverse(y: Any) -> Any:
    """The raw value whose softplus is y > 0: y + log(-expm1(-y)) (torch for tensors, math for floats)."""
    torch = _torch_of(y)
    if torch is not None:
        return y + torch.log(-torch.expm1(-y))
    return y + math.log(-math.expm1(-y))


def leak_of(leak_raw: Any) -> Any:
    return sigmoid(leak_raw)


def steepness_of(steepness_raw: Any) -> Any:
    return softplus(steepness_raw)


def fire_curve(x: Any, theta: Any, k: Any) -> Any:
    """sigmoid(k * (|x| - theta)): the part that runs as spiking neurons."""
    return sigmoid(k * (abs(x) - theta))


def fire_curve_np(x: Any, theta: float, k: float) -> np.ndarray:
    """:func:`fire_curve` on anything array-like, as float64 numpy (mapping, validation)."""
    return fire_curve(np.asarray(x, dtype=np.float64), theta, k)


def apply_fire(p: Any, fire: Any, leak: Any) -> Any:
    """p * (leak + (1 - leak) * fire): the host-side multiply (chip gives `fire`)."""
    return p * (leak + (1.0 - leak) * fire)


def renormalise_rows(gated: Any, original: Any) -> Any:
    """Rescale each query row (last axis) of `gated` to the mass of `original`."""
    mass = original.sum(axis=-1, keepdims=True)
    gmass = gated.sum(axis=-1, keepdims=True)
    return gated * (mass / gmass.clip(min=RENORM_EPS))


def lif_gate(p: Any, theta: Any, leak: Any, k: Any, fire: Any = None) -> Any:
    """Full attention gate on probabilities p (B, H, Tq, Tk).

    theta, leak, k broadcast against p (per head: shape (1, H, 1, 1), or
    (B, H, 1, Tk) for refractory thresholds).  `fire` may be supplied by a
    spiking backend instead of the sigmoid; everything else is identical.
    """
    if fire is None:
        fire = fire_curve(p, theta, k)
    return renormalise_rows(apply_fire(p, fire, leak), p)


def column_load(p: Any) -> Any:
    """Mean attention each key receives over the queries of its head: (B, H, 1, Tk).

    Over *all* queries -- not causal, so refractory gates cannot decode token by token.
    """
    return p.mean(axis=-2, keepdims=True)


def layer_load(p: Any) -> Any:
    """Mean attention received per key over heads and queries: (B, Tk)."""
    return p.mean(axis=(1, 2))


def refractory_theta(theta: Any, ref_strength_raw: Any, cross_layer_weight_raw: Any, col_load: Any,
                     prev_load: Any = None) -> Any:
    """theta_eff = theta + softplus(ref) col_load + sigmoid(cross) prev_load (all broadcast: the
    per-head values as (1, H, 1, 1), col_load (B, H, 1, Tk), prev_load (B, 1, 1, Tk)).  The first
    layer has no previous layer (prev_load None): no cross term, so its cross weight stays unused."""
    th = theta + softplus(ref_strength_raw) * col_load
    return th if prev_load is None else th + sigmoid(cross_layer_weight_raw) * prev_load


def membrane_integrate(v: Any, importance: Any, leak: Any) -> Any:
    """The temporal-LIF membrane entering a layer: V = V * leak + importance (leak = sigmoid(decay);
    a hard-spike model uses the leak the chip's 12-bit decay realises, kinds/membrane/module.py)."""
    return v * leak + importance


def membrane_fire(v: Any, threshold_raw: Any, steepness_raw: Any) -> Any:
    """fire = sigmoid(softplus(steepness) (V - softplus(threshold))): the part spiking neurons run."""
    return sigmoid(softplus(steepness_raw) * (v - softplus(threshold_raw)))


def hidden_gate(h: Any, theta: Any, leak: Any, k: Any, fire: Any = None) -> Any:
    """Liquid Ember per-neuron gate on CfC output h (..., D), rescaled to keep ||h||."""
    if fire is None:
        fire = fire_curve(h, theta, k)
    out = apply_fire(h, fire, leak)
    norm_h = (h * h).sum(axis=-1, keepdims=True) ** 0.5
    norm_out = (out * out).sum(axis=-1, keepdims=True) ** 0.5
    return out * (norm_h / norm_out.clip(min=HIDDEN_NORM_EPS))
