"""Map trained LIF gates (theta, k) to a dithered-threshold spiking neuron.

Why a dither: a LIF neuron driven by a constant current has a rate curve that is
not a sigmoid.  Instead we make the sigmoid's *inverse* explicit.  Over a window
of T steps a gate's N neurons face the N*T ascending logit levels

    l_m = logit((m + 1/2) / (N T)),   m = 0 .. N T - 1,

neuron c meeting level m = t N + c at window step t.  A memoryless LIF neuron
(du = dv = 1) with drive k(p - theta) spikes at step t iff k(p - theta) > l_m, so
its spike count is n = #{m : l_m < k(p - theta)} = round(N T sigmoid(k(p - theta))),
which is the best any N binary neurons can do over T steps:
|n / (N T) - sigmoid(k(p - theta))| <= 1 / (2 N T).  Because the levels ascend,
a neuron that fails once fails for the rest of the window, so any residual of v
after a failed step (fixed-point dv = 4095 leaves v/4096) cannot change n.

The levels do not depend on the gate: one dither generator serves every head.
Per gate only three numbers live on the neuron -- the slope k as the *ratio* of
two 8-bit weights (input synapse a / dither synapse b, best rational
approximation, so the slope error is ~1e-4 instead of 8-bit's 4e-3), and
-k*theta as the bias.  Leak and row renormalisation need all keys of a query row
and stay on the host.

Fixed point (Lava's bit-accurate Dense + LIF):
    x = round(|p| 2^Bp)           graded input payload, Bp = input_bits (12)
    d = -round(l 2^Bl)            graded dither payload, Bl = dither_bits (12)
    a_in = (a x >> 7) + (b d >> 7)   weight exponent -7 on both connections
    u = a_in << 6                 (Lava: 24-bit u; must not wrap -> |a_in| < 2^17)
    v = u + bias,  bias = -2^6 * 2^(B-7) * a * theta + 2^6   (last term re-centres
                                   the two floor shifts), bias = mant 2^exp,
                                   13-bit signed mantissa, exp 0..7
    spike iff v > vth = 0
Budget: |a_in| <= 2^(B-7) (a + b l_max) < 2^17 holds for a, b <= 255 and
l_max <= 15 (N T <= 65536).  Anything that does not fit is clipped *and reported*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ember_neuro.mappers.description import GateUnit, MappedGates, NeuronParams

WEIGHT_MAX = 255  # 8-bit weight magnitude
WEIGHT_EXP = -7  # shared exponent of both connections
BIAS_MANT_MAX = 4095  # 13-bit signed mantissa: -4096 .. 4095
BIAS_EXP_MAX = 7
ACT_SHIFT = 6  # Lava/Loihi left-shift of synaptic input and of vth
UV_LIMIT = 2**23  # 24-bit signed u and v
MAX_LEVELS = 65536  # N*T; keeps l_max <= ln(2^17) < 15
FIXED_DU = 4095  # decay_const 4096: u forgets exactly
FIXED_DV = 4095


@dataclass(frozen=True)
class MappingOptions:
    timesteps: int = 32
    neurons_per_gate: int = 1
    input_bits: int = 12
    dither_bits: int = 12

    def validate(self) -> None:
        t, n = self.timesteps, self.neurons_per_gate
        if not isinstance(t, (int, np.integer)) or t < 1:
            raise ValueError(f"timesteps must be an integer >= 1, got {t!r}")
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"neurons_per_gate must be an integer >= 1, got {n!r}")
        if t * n > MAX_LEVELS:
            raise ValueError(
                f"timesteps * neurons_per_gate = {t * n} exceeds {MAX_LEVELS}: the dither "
                "levels would overflow Loihi's 24-bit current (and the bound is already < 1e-5)"
            )
        if self.input_bits != self.dither_bits or not 8 <= self.input_bits <= 12:
            raise ValueError("input_bits and dither_bits must be equal and within 8..12")


def logit_levels(timesteps: int, neurons_per_gate: int) -> np.ndarray:
    """The N*T ascending levels l_m = logit((m + 1/2) / (N T))."""
    nt = timesteps * neurons_per_gate
    q = (np.arange(nt, dtype=np.float64) + 0.5) / nt
    return np.log(q / (1.0 - q))


def dither_table(levels: np.ndarray, timesteps: int, neurons_per_gate: int) -> np.ndarray:
    """(T, N) table: channel c at step t carries -l[t N + c] (ascending in t)."""
    return -levels.reshape(timesteps, neurons_per_gate)


def best_weight_ratio(k: float, wmax: int = WEIGHT_MAX) -> list[tuple[int, int, float]]:
    """Candidate (a, b, relative error) with a/b ~ k, 0 <= a, 1 <= b <= wmax, sorted best first.

    Ties prefer larger b: a larger dither weight means a finer logit resolution.
    """
    b = np.arange(1, wmax + 1)
    a = np.clip(np.rint(k * b), 0, wmax).astype(np.int64)
    err = np.abs(a / b - k) / k
    order = np.lexsort((-b, err))
    return [(int(a[i]), int(b[i]), float(err[i])) for i in order]


def split_bias(value: float) -> tuple[int, int, bool]:
    """value ~ mant * 2^exp with a 13-bit signed mantissa; (mant, exp, clipped)."""
    for e in range(BIAS_EXP_MAX + 1):
        m = int(round(value / 2**e))
        if -BIAS_MANT_MAX - 1 <= m <= BIAS_MANT_MAX:
            return m, e, False
    m = BIAS_MANT_MAX if value > 0 else -BIAS_MANT_MAX - 1
    return m, BIAS_EXP_MAX, True


def _check_unit(u: GateUnit) -> None:
    for name in ("theta", "k", "leak"):
        val = getattr(u, name)
        if not math.isfinite(val):
            raise ValueError(f"{u.name}: {name} is {val}; cannot map a non-finite parameter")
    if u.k <= 0:
        raise ValueError(f"{u.name}: steepness k = {u.k} must be > 0 (k = softplus(raw))")


def map_gates(units: list[GateUnit] | tuple[GateUnit, ...], options: MappingOptions) -> MappedGates:
    """Pure function: trained gate units + options -> neuron parameters (float and fixed)."""
    options.validate()
    units = tuple(units)
    if not units:
        raise ValueError("no gate units to map")
    for u in units:
        _check_unit(u)
    t, n = int(options.timesteps), int(options.neurons_per_gate)
    levels = logit_levels(t, n)
    lmax = float(np.abs(levels).max())
    bits = options.input_bits
    scale = 2.0 ** (bits + WEIGHT_EXP)  # a_in units per (weight * value) unit

    theta = np.array([u.theta for u in units])
    k = np.array([u.k for u in units])
    float_params = NeuronParams(
        w_in=k.copy(),
        w_dither=np.ones_like(k),
        bias_mant=-k * theta,
        bias_exp=np.zeros_like(k),
        in_weight_exp=0,
        dither_weight_exp=0,
        dither=dither_table(levels, t, n),
        du=1.0,
        dv=1.0,
        vth=0.0,
    )

    w_in = np.zeros(len(units), dtype=np.int64)
    w_d = np.zeros(len(units), dtype=np.int64)
    b_mant = np.zeros(len(units), dtype=np.int64)
    b_exp = np.zeros(len(units), dtype=np.int64)
    warnings: list[str] = []
    saturated: list[str] = []
    for i, u in enumerate(units):
        chosen = None
        for a, b, err in best_weight_ratio(u.k):
            if scale * (a + b * lmax) >= 2**17:
                continue
            bias = -(2**ACT_SHIFT) * scale * a * u.theta + 2**ACT_SHIFT
            mant, exp, clipped = split_bias(bias)
            if not clipped:
                chosen = (a, b, err, mant, exp)
                break
        if chosen is None:  # no pair keeps the bias representable: saturate, report
            a, b, err = best_weight_ratio(u.k)[0]
            bias = -(2**ACT_SHIFT) * scale * a * u.theta + 2**ACT_SHIFT
            mant, exp, _ = split_bias(bias)
            saturated.append(u.name)
            warnings.append(
                f"{u.name}: bias -k*theta = {-u.k * u.theta:.3g} does not fit the 13-bit "
                f"mantissa * 2^7 at any weight scale; clipped to {mant}*2^{exp} "
                "(fire curve saturates over p in [0, 1])"
            )
        else:
            a, b, err, mant, exp = chosen
        if u.k > WEIGHT_MAX:
            saturated.append(u.name)
            warnings.append(f"{u.name}: k = {u.k:.3g} exceeds {WEIGHT_MAX}; slope clipped to {a}/{b}")
        elif err > 0.01:
            warnings.append(f"{u.name}: k = {u.k:.4g} realised as {a}/{b} (relative error {err:.2%})")
        w_in[i], w_d[i], b_mant[i], b_exp[i] = a, b, mant, exp

    fixed_params = NeuronParams(
        w_in=w_in,
        w_dither=w_d,
        bias_mant=b_mant,
        bias_exp=b_exp,
        in_weight_exp=WEIGHT_EXP,
        dither_weight_exp=WEIGHT_EXP,
        dither=-np.rint(levels * 2.0**bits).astype(np.int64).reshape(t, n),
        du=FIXED_DU,
        dv=FIXED_DV,
        vth=0,
    )
    return MappedGates(
        units=units,
        timesteps=t,
        neurons_per_gate=n,
        input_bits=bits,
        dither_bits=options.dither_bits,
        levels=levels,
        float_params=float_params,
        fixed_params=fixed_params,
        k_effective=np.where(w_d > 0, w_in / np.maximum(w_d, 1), 0.0),
        warnings=tuple(warnings),
        saturated=tuple(dict.fromkeys(saturated)),
    )
