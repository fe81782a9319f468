"""temporal-lif: the attention gates, plus the per-token membrane carried across layers.

    V = V sigmoid(decay) + ||attn_out||;  fire = sigmoid(k (V - threshold));  x += fire mlp(x);
    V = V (1 - fire)                                  (k = softplus(steepness), threshold = softplus(.))

Two ways to put the membrane on neurons:

* ``membrane`` (rate mode, faithful): the host integrates V, and the fire of each
  token and layer is a dithered sigmoid gate on V (mappers/gate.py), one unit per
  layer; V is unbounded, so its payload is normalised by a per-layer scale
  calibrated on validation text (``calibration["membrane_scale"]``).
* ``membrane_hard`` (hard mode): one LIF neuron per token whose voltage *is* V,
  carried across the layers of a forward pass (one Lava step per layer, reset
  every n_layer steps): the host sends ||attn_out|| and a spike means the MLP runs.
  A neuron has one leak and one threshold, while the model trains one per layer,
  so the neuron takes their means (the spread is in the group's warnings); hard
  mode is a different model than the trained soft one, and `run --eval` measures
  what it costs.
"""

from __future__ import annotations

import numpy as np

from ember_neuro.mappers import loihi
from ember_neuro.mappers.attention import map_attention
from ember_neuro.mappers.gate import map_gates
from ember_neuro.mappers.liquid import layer_scales, scaled_inputs
from ember_neuro.mappers.network import Arithmetic, Connection, GateUnit, MappingOptions, NeuronGroup
from ember_neuro.mappers.params import Params, temporal_records

HARD_INPUT_BITS = 12
VTH_MAX = 2**loihi.VTH_BITS - 1


def membrane_units(params: Params, n_layer: int) -> list[GateUnit]:
    """One unit per layer: theta = softplus(threshold), leak = sigmoid(decay), k = softplus(steepness)."""
    return [GateUnit(r["layer"], 0, r["threshold"], r["decay"], r["steepness"], tag="M")
            for r in temporal_records(params, n_layer)]


def hard_membrane(units: list[GateUnit], scale: float, n_layer: int) -> NeuronGroup:
    """The LIF neuron per token: v = lambda v + ||attn_out||, spike iff v > theta, v <- 0 on spike.

    Fixed point: payload round(I / scale 2^12) through weight 255 and exponent -5, so one
    payload unit of I/scale adds 255 2^7 to a_in (< 2^15); v = decay(v, dv) + (a_in << 6)
    with dv = round(4096 (1 - lambda)); vth = round(theta / scale 255 2^7) (17 bits).
    """
    lam = float(np.mean([u.leak for u in units]))
    theta = float(np.mean([u.theta for u in units]))
    exp = 7 - HARD_INPUT_BITS
    w = loihi.WEIGHT_MAX
    vth = int(round(theta / scale * w * 2.0 ** (HARD_INPUT_BITS + exp)))
    warnings = [f"the hard membrane neuron uses one leak {lam:.4f} (layers: "
                f"{', '.join(f'{u.leak:.4f}' for u in units)}) and one threshold {theta:.4f} (layers: "
                f"{', '.join(f'{u.theta:.4f}' for u in units)})"]
    saturated = []
    if vth > VTH_MAX:
        warnings.append(f"the hard membrane threshold {theta:.3g} is {theta / scale:.1f} payload scales; "
                        f"clipped to the 17-bit vth")
        saturated.append("membrane")
        vth = VTH_MAX
    unit = GateUnit(0, 0, theta, lam, float(np.mean([u.k for u in units])), tag="M", label="membrane")
    one = np.ones(1)
    return NeuronGroup(
        name="membrane_hard", units=(unit,), timesteps=1, neurons_per_gate=1, levels=np.zeros(0),
        float_params=Arithmetic(False, (Connection("input", one.copy()),), np.zeros(1), np.zeros(1),
                                du=1.0, dv=1.0 - lam, vth=theta),
        fixed_params=Arithmetic(True, (Connection("input", np.array([w]), exp, bits=HARD_INPUT_BITS,
                                                  scale=np.array([scale])),),
                                np.zeros(1, np.int64), np.zeros(1, np.int64), du=loihi.DECAY_MAX,
                                dv=int(round(loihi.DECAY_UNITY * (1.0 - lam))), vth=vth),
        k_effective=np.ones(1), fixed_worst_error=np.zeros(1), warnings=tuple(warnings),
        saturated=tuple(saturated), reset_windows=n_layer)


def map_temporal(params: Params, n_layer: int, options: MappingOptions,
                 calibration: dict | None = None) -> dict[str, NeuronGroup]:
    scales = layer_scales(calibration, "membrane_scale", n_layer, "temporal-lif's membrane")
    units = membrane_units(params, n_layer)
    scale = np.array(scales)
    return {**map_attention(params, n_layer, options),
            "membrane": map_gates(units, options, name="membrane", inputs=scaled_inputs(units, scale)),
            "membrane_hard": hard_membrane(units, importance_scale(calibration), n_layer)}


def importance_scale(calibration: dict | None) -> float:
    scale = (calibration or {}).get("importance_scale")
    if not (isinstance(scale, (int, float)) and np.isfinite(scale) and scale > 0):
        raise ValueError(f"temporal-lif's hard membrane: the ||attn_out|| scale cannot be calibrated "
                         f"(observed maximum {scale!r})")
    return float(scale)
