"""temporal-lif's membrane: a per-token potential carried across layers that gates each layer's MLP.

    V = V sigmoid(decay) + ||attn_out||;  fire = sigmoid(k (V - threshold));  x += fire mlp(x);
    V = V (1 - fire)                                  (k = softplus(steepness), threshold = softplus(.))

Two neuron groups answer the model's ``membrane`` hook (``--temporal`` picks one):

* ``membrane`` (mode "rate", faithful): the host integrates V, and the fire of each token and
  layer is a dithered sigmoid gate on V (mappers/gate.py), one unit per layer; V is unbounded,
  so its payload is normalised by a per-layer scale calibrated on validation text
  (``calibration["membrane_scale"]``).
* ``membrane_hard`` (mode "hard"): one LIF neuron per token whose voltage *is* V, carried
  across the layers of a forward pass (one Lava step per layer, reset every n_layer steps):
  the host sends ||attn_out|| (the hook's ``importance``) and a spike means the MLP runs.  A
  neuron has one leak and one threshold, while the model trains one per layer, so the neuron
  takes their means (the spread is in the group's warnings); hard mode is a different model
  than the trained soft one, and ``run --eval`` measures what it costs.

A fire of exactly 0 skips that token's MLP (ember_neuro.kinds.membrane.module), so a spiking
membrane saves the MLP's compute wherever it stays silent.

Checkpoint keys (raw, one scalar per layer): ``transformer.h.{l}.temporal_decay``,
``temporal_threshold``, ``temporal_steepness``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ember_neuro.gates import sigmoid, softplus
from ember_neuro.kinds.spec import GateKind, Params, Scales
from ember_neuro.mappers import loihi
from ember_neuro.mappers.gate import layer_scales, map_gates, scaled_inputs
from ember_neuro.mappers.network import (
    Addressing,
    Arithmetic,
    Connection,
    GateUnit,
    MappingOptions,
    NeuronGroup,
)
from ember_neuro.mappers.params import read_param

HOOK = "membrane"
PREFIX = "transformer.h.{layer}.temporal_"
RATE = Addressing(hook=HOOK, label="membrane V")  # one unit per layer
HARD = Addressing(hook=HOOK, mode="hard", reads=(("input", "importance"),), label="||attn_out||")
HARD_INPUT_BITS = 12
VTH_MAX = 2**loihi.VTH_BITS - 1


def records(params: Params, n_layer: int) -> list[dict]:
    """Per layer: decay = sigmoid(raw), threshold = softplus(raw), steepness = softplus(raw); a
    hard-spike model's also its host-side input gain = exp(raw) (module.py)."""
    out = []
    for layer in range(n_layer):
        p = PREFIX.format(layer=layer)
        row = {"layer": layer, "decay": float(sigmoid(read_param(params, p + "decay"))[0]),
               "threshold": float(softplus(read_param(params, p + "threshold"))[0]),
               "steepness": float(softplus(read_param(params, p + "steepness"))[0])}
        if p + "gain" in params:
            row["gain"] = float(np.exp(read_param(params, p + "gain"))[0])
        out.append(row)
    return out


def membrane_units(params: Params, n_layer: int) -> list[GateUnit]:
    """One unit per layer: theta = threshold, leak = decay, k = steepness."""
    return [GateUnit(r["layer"], 0, r["threshold"], r["decay"], r["steepness"], tag="M")
            for r in records(params, n_layer)]


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
                                dv=loihi.decay_constant(lam), vth=vth),
        k_effective=np.ones(1), fixed_worst_error=np.zeros(1), warnings=tuple(warnings),
        saturated=tuple(saturated), reset_windows=n_layer, addressing=HARD)


def importance_scale(calibration: dict | None) -> float:
    scale = (calibration or {}).get("importance_scale")
    if not (isinstance(scale, (int, float)) and np.isfinite(scale) and scale > 0):
        raise ValueError(f"temporal-lif's hard membrane: the ||attn_out|| scale cannot be calibrated "
                         f"(observed maximum {scale!r})")
    return float(scale)


def map_membrane(params: Params, n_layer: int, options: MappingOptions,
                 calibration: dict | None = None) -> dict[str, NeuronGroup]:
    scale = np.array(layer_scales(calibration, "membrane_scale", n_layer, "temporal-lif's membrane"))
    units = membrane_units(params, n_layer)
    return {HOOK: map_gates(units, options, name=HOOK, inputs=scaled_inputs(units, scale), addressing=RATE),
            "membrane_hard": hard_membrane(units, importance_scale(calibration), n_layer)}


def calibrate(scales: Scales) -> dict:
    """membrane_scale: per layer, the scale of V entering the fire; importance_scale: that of the
    ||attn_out|| any layer integrates (the hard neuron's input)."""
    layers = sorted(scales)
    return {"membrane_scale": [scales[layer]["input"] for layer in layers],
            "importance_scale": max(scales[layer]["importance"] for layer in layers)}


def mlp_flops(config: Any) -> dict[str, float]:
    """Per token: FLOPs of one layer's MLP and of the whole forward pass at full context.

    Multiply-adds count 2; the MLP is 2 matmuls n -> 4n -> n (16 n^2); attention is the
    QKV and output projections (8 n^2) plus scores and weighted values at a full block
    (4 n T); the head 2 n V.  Only matrix products are counted (NeuroBench-style).
    """
    n, t, v, layers = config.n_embd, config.block_size, config.vocab_size, config.n_layer
    mlp = 16.0 * n * n
    total = layers * (mlp + 8.0 * n * n + 4.0 * n * t) + 2.0 * n * v
    return {"mlp_per_layer": mlp, "forward": total}


def metrics(stats: Mapping[int, Mapping[str, float]], config: Any) -> dict[str, float]:
    """The MLP calls a spiking membrane skipped (fire exactly 0) and the forward FLOPs that saves."""
    total = sum(s["gates"] for s in stats.values())
    if not total:
        return {}
    skip = 1.0 - sum(s["firing"] for s in stats.values()) / total
    flops = mlp_flops(config)
    saved = skip * config.n_layer * flops["mlp_per_layer"]
    return {"mlp_skip_fraction": skip, "mlp_flops_saved_per_token": saved,
            "flops_saved_fraction": saved / flops["forward"]}


def describe(rows: list[dict]) -> list[str]:
    """One line per layer; with ``fire_rate`` / ``skipped`` (inspect measures them on validation
    text) the observed mean fire and the share of MLP calls a zero fire skipped."""
    lines = []
    for r in rows:
        line = (f"  L{r['layer']} membrane: decay={r['decay']:.3f} threshold={r['threshold']:.3f} "
                f"steepness={r['steepness']:.3f}" + (f" gain={r['gain']:.3f}" if "gain" in r else ""))
        if "fire_rate" in r:
            line += f"  fire rate {r['fire_rate']:.3f}, MLP skipped {r['skipped']:.1%}"
        lines.append(line)
    if rows and "skipped" in rows[0]:
        lines.append(f"  MLP calls skipped overall: {sum(r['skipped'] for r in rows) / len(rows):.1%} "
                     f"(validation text, {len(rows)} layers)")
    return lines


KIND = GateKind(name="membrane", site="mlp", attr="temporal",
                module="ember_neuro.kinds.membrane.module:MembraneGate",
                records=records, map=map_membrane, calibrate=calibrate, swing_range=None,
                inspect_key="temporal", describe=describe, metrics=metrics, hard_spike=True)
