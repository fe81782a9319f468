"""Loihi 2 fixed-point arithmetic: every decision a named function (after nengo-loihi's discretize.py).

This is the one place where bit widths, shifts and roundings live.  The mapper
uses them to choose parameters, the numpy reference and the torch emulator use
them to run neurons, validation uses them to explain float-vs-fixed spikes.
Each function is tested directly in tests/core/test_loihi.py, edge values
included, and the step functions are checked against Lava's own models.

Source of truth: Lava 0.10.0's bit-accurate models (``PyLifResetModelBitAcc``,
``PySparseModelBitAcc``, ``lava.utils.weightutils``):

    a_in  = sum_c  wshift(w_c * s_c, e_c)        one Sparse per connection, int32
    u     = fold24(decay(u, du + 1) + (a_in << 6))
    v     = clip24(decay(v, dv) + u + bias),  bias = mant << exp
    spike = v > (vth << 6);  v <- 0 on spike

The integer functions take numpy int64 arrays (or Python ints) and, for the
emulator, torch int64 tensors: they use operators only, plus :func:`_where`,
which dispatches on the array type without importing torch here.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

# -- widths and limits (Lava's LavaPyType precisions) -------------------------------------------
WEIGHT_BITS = 8  # synaptic weight magnitude
WEIGHT_MAX = 2**WEIGHT_BITS - 1  # 255
WEIGHT_EXP_MIN, WEIGHT_EXP_MAX = -8, 7  # shared per connection (Sparse weight_exp)
ACT_BITS = 16  # Sparse a_out / LIF a_in are declared 16-bit signed (the dendritic accumulator)
ACT_LIMIT = 2 ** (ACT_BITS - 1)  # |a_in| must stay below this on Loihi
ACT_SHIFT = 6  # the LIF left-shifts its synaptic input to MSB-align it with u
VTH_SHIFT = 6  # ... and its threshold
VTH_BITS = 17  # unsigned threshold mantissa
UV_BITS = 24  # u and v
UV_MAX = 2 ** (UV_BITS - 1)
DECAY_BITS = 12  # du, dv are 12-bit unsigned; decays are x * (4096 - d) >> 12
DECAY_UNITY = 2**DECAY_BITS
DECAY_MAX = DECAY_UNITY - 1  # 4095: u forgets exactly (du's +1 offset); v keeps v/4096
BIAS_MANT_BITS = 13  # signed mantissa -4096 .. 4095
BIAS_MANT_MAX = 2 ** (BIAS_MANT_BITS - 1) - 1
BIAS_EXP_MAX = 7  # 3-bit exponent
PAYLOAD_BITS = 24  # graded spike payload (Lava's Python ports are typed at 24 bits)

# -- the chip (Intel's public material via open-neuromorphic.org; SPEC section 7) ----------------
NEURONS_PER_CHIP = 1_048_576  # "up to 1 M neurons"
CORES_PER_CHIP = 128  # neuro cores
NEURONS_PER_CORE = NEURONS_PER_CHIP // CORES_PER_CHIP  # 8192


def _where(cond: Any, a: Any, b: Any) -> Any:
    """np.where or torch.where, by the type of `cond` (torch is never imported here)."""
    if type(cond).__module__.startswith("torch"):
        return sys.modules["torch"].where(cond, a, b)
    return np.where(cond, a, b)


def wrap_int32(x: Any) -> Any:
    """The value an int32 register holds for int64 `x` (two's complement wrap)."""
    return ((x + 2**31) & 0xFFFFFFFF) - 2**31


def act_shift(a_in: Any) -> Any:
    """Synaptic input as the LIF adds it to u: ``a_in << 6`` in an int32 register."""
    return wrap_int32(a_in << ACT_SHIFT)


def threshold(vth: int) -> int:
    """The effective threshold the LIF compares v with: ``vth << 6``."""
    return int(vth) << VTH_SHIFT


def decay(x: Any, d: int) -> Any:
    """Loihi's decay ``sign(x) * ((|x| * (4096 - d)) >> 12)`` (rounds toward zero)."""
    q = (abs(x) * (DECAY_UNITY - int(d))) >> DECAY_BITS
    return _where(x < 0, -q, q)


def decay_constant(keep: float) -> int:
    """The 12-bit decay d that keeps `keep` of a state per step: round(4096 (1 - keep)), in 0..4095."""
    return min(DECAY_MAX, max(0, int(round(DECAY_UNITY * (1.0 - float(keep))))))


def kept_fraction(d: int) -> float:
    """The fraction of a state a decay d keeps per step (before rounding toward zero): 1 - d / 4096."""
    return 1.0 - int(d) / DECAY_UNITY


def current_decay_constant(du: int) -> int:
    """u decays with du + 1 (Lava's ``ds_offset``), so du = 4095 forgets u exactly."""
    return int(du) + 1


def fold_current(u: Any) -> Any:
    """Lava's 24-bit overflow rule for u: values past +-2^23 are folded back by 2^24."""
    w = u - (u > UV_MAX) * (2 * UV_MAX)
    return wrap_int32(w + (w <= -UV_MAX) * (2 * UV_MAX))


def clip_voltage(v: Any) -> Any:
    """v saturates (it never wraps) at +-(2^23 - 1)."""
    return v.clip(-(UV_MAX - 1), UV_MAX - 1) if hasattr(v, "clip") else max(-(UV_MAX - 1),
                                                                              min(UV_MAX - 1, v))


def weight_shift(acc: Any, exp: int) -> Any:
    """A connection's int32 accumulator scaled by its shared weight exponent.

    ``acc << exp`` for exp > 0 (wrapping in int32), an arithmetic (floor) right shift
    otherwise -- exactly ``PySparseModelBitAcc``.
    """
    acc = wrap_int32(acc)
    return wrap_int32(acc << exp) if exp > 0 else acc >> (-exp)


def lava_weights(w: np.ndarray, n_cols: int) -> np.ndarray:
    """Weights as Lava's bit-accurate Sparse applies them (int64 values).

    ``clip_weights`` to 8 bits and ``truncate_weights`` (MIXED sign mode keeps 7
    magnitude bits and the sign, dropping the LSB).  The sign mode is decided over
    the whole (M, n_cols) matrix, implicit zeros included, as ``determine_sign_mode``
    does; each row holds exactly one weight.
    """
    w = np.asarray(w).astype(np.int64).astype(np.int32).astype(np.int64)
    lo, hi = int(w.min(initial=0)), int(w.max(initial=0))
    if n_cols == 1 and w.size and not np.any(w == 0):
        lo, hi = int(w.min()), int(w.max())
    if lo >= 0:  # EXCITATORY
        return np.clip(w, 0, WEIGHT_MAX)
    if hi <= 0:  # INHIBITORY
        return -np.clip(-w, 0, WEIGHT_MAX)
    return (np.clip(w, -WEIGHT_MAX - 1, WEIGHT_MAX) >> 1) << 1  # MIXED


def split_bias(value: Any) -> tuple[Any, Any, Any]:
    """value ~ mant * 2^exp with a 13-bit signed mantissa and exp in 0..7; (mant, exp, clipped).

    The smallest exponent that fits keeps the most precision; a value beyond
    4095 * 2^7 is saturated and reported (never wrapped).  The mantissa rounds half to
    even (``np.rint``, as Python's ``round``).  A scalar gives ints and a bool; an array gives
    arrays of its shape (the mapper scores every candidate weight pair at once).
    """
    v = np.asarray(value, np.float64)
    mant = np.rint(v[..., None] / 2.0 ** np.arange(BIAS_EXP_MAX + 1))
    fits = (mant >= -BIAS_MANT_MAX - 1) & (mant <= BIAS_MANT_MAX)
    clipped = ~fits.any(axis=-1)
    exp = np.where(clipped, BIAS_EXP_MAX, fits.argmax(axis=-1))
    chosen = np.take_along_axis(mant, exp[..., None], axis=-1)[..., 0]
    mant = np.where(clipped, np.where(v > 0, BIAS_MANT_MAX, -BIAS_MANT_MAX - 1), chosen).astype(np.int64)
    if v.ndim == 0:
        return int(mant), int(exp), bool(clipped)
    return mant, exp.astype(np.int64), clipped


def bias_value(mant: np.ndarray, exp: np.ndarray) -> np.ndarray:
    """Lava's effective bias: int16 Vars, the mantissa shifted by the exponent in int32."""
    mant = np.asarray(mant).astype(np.int64).astype(np.int16).astype(np.int32)
    exp = np.asarray(exp).astype(np.int64).astype(np.int16)
    out = np.where(exp >= 0, np.left_shift(mant, np.maximum(exp, 0)),
                   np.right_shift(mant, np.maximum(-exp, 0)))
    return out.astype(np.int32).astype(np.int64)


def fits_act(max_abs_a_in: Any) -> Any:
    """Whether a synaptic input of this size fits the 16-bit dendritic accumulator (elementwise)."""
    return max_abs_a_in < ACT_LIMIT


def memoryless_drive(a_in: Any, bias: Any) -> Any:
    """v of a neuron with du = dv = 4095 after one step from rest: ``(a_in << 6) + bias``.

    Exact for the mapping's gate neurons at every step (u forgets; the ascending
    dither makes v's residual after a failed step irrelevant, see mappers/gate.py).
    """
    return act_shift(a_in) + bias


def lif_fixed_subthreshold(u: Any, v: Any, a_in: Any, bias: Any, du: int, dv: int) -> tuple[Any, Any]:
    """u and v after one bit-accurate step (``PyLifResetModelBitAcc.subthr_dynamics``), before spiking."""
    u = fold_current(wrap_int32(decay(u, current_decay_constant(du)) + act_shift(a_in)))
    return u, clip_voltage(wrap_int32(decay(v, dv) + u + bias))


def lif_float_subthreshold(u: Any, v: Any, a_in: Any, bias: Any, du: float, dv: float) -> tuple[Any, Any]:
    """u and v after one floating-point step: ``PyLifModelFloat``'s float64 operations in order."""
    u = u * (1 - du) + a_in
    return u, v * (1 - dv) + u + bias


def fire_and_reset(v: Any, vth_effective: Any) -> tuple[Any, Any]:
    """Strict threshold (``v > vth``; a tie is no spike) and reset to 0: (v, spikes)."""
    spikes = v > vth_effective
    return _where(spikes, 0, v), spikes


def lif_fixed_step(u: Any, v: Any, a_in: Any, bias: Any, du: int, dv: int,
                   vth: int) -> tuple[Any, Any, Any]:
    """One bit-accurate LIF step (``PyLifResetModelBitAcc``); returns (u, v, spikes).

    Pure: integer arrays in (int64 values of int32 registers), new arrays out.
    """
    u, v = lif_fixed_subthreshold(u, v, a_in, bias, du, dv)
    v, spikes = fire_and_reset(v, threshold(vth))
    return u, v, spikes


def lif_float_step(u: Any, v: Any, a_in: Any, bias: Any, du: float, dv: float,
                   vth: float) -> tuple[Any, Any, Any]:
    """One floating-point LIF step (``PyLifResetModelFloat``); returns (u, v, spikes)."""
    u, v = lif_float_subthreshold(u, v, a_in, bias, du, dv)
    v, spikes = fire_and_reset(v, vth)
    return u, v, spikes
