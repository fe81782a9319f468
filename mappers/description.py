"""The one description every backend consumes.

`map_gates` (mappers/lif_gate.py) turns trained (theta, leak, k) into a
:class:`MappedGates`: per gate-unit neuron parameters, in float and in Loihi 2
fixed point, plus the shared dither schedule.  A backend never sees trained
parameters; it sees a :class:`NeuronArray` -- M neurons laid out for one
batch of inputs -- and runs the same LIF equations:

    u[t] = u[t-1]*(1-du) + a_in[t]            (du = 1 / 4095: memoryless current)
    v[t] = v[t-1]*(1-dv) + u[t] + bias        (fixed: Lava's bit-accurate rounding)
    spike iff v[t] > vth ; v <- 0 on spike ; u = v = 0 at every window start
    a_in[t] = w_in * x[t-1] + w_dither * d[t-1, channel]   (Dense/Sparse: 1-step delay)

where x is the graded input payload (|p| scaled) held for the whole window and
d is the dither payload, which depends only on the step inside the window.
Fixed point: each product is computed in integers and shifted by the
connection's shared weight exponent (in_weight_exp, dither_weight_exp),
exactly as Lava's PyDenseModelBitAcc does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def gate_counts(counts: np.ndarray, neurons_per_gate: int) -> np.ndarray:
    """Per-neuron counts (..., I*N) -> per-input counts (..., I), summed over the N channels.

    Neuron m = i * N + c serves input i (see :meth:`MappedGates.layout`).
    """
    counts = np.asarray(counts)
    return counts.reshape(*counts.shape[:-1], -1, neurons_per_gate).sum(axis=-1)


@dataclass(frozen=True)
class GateUnit:
    """One trained gate unit (a head of a layer, or one CfC neuron)."""

    layer: int
    head: int
    theta: float
    leak: float
    k: float

    @property
    def name(self) -> str:
        return f"L{self.layer}H{self.head}"


@dataclass(frozen=True)
class NeuronParams:
    """Per-unit neuron parameters of one arithmetic (float or fixed)."""

    w_in: np.ndarray  # (U,) weight of the input synapse
    w_dither: np.ndarray  # (U,) weight of the dither synapse
    bias_mant: np.ndarray  # (U,) bias mantissa (float: the bias itself)
    bias_exp: np.ndarray  # (U,) bias exponent (float: zeros, ignored)
    in_weight_exp: int  # shared exponent of the input connection (float: 0)
    dither_weight_exp: int  # shared exponent of the dither connection (float: 0)
    dither: np.ndarray  # (T, N) dither payload per window step and channel
    du: float
    dv: float
    vth: float


@dataclass(frozen=True)
class MappedGates:
    """Result of mapping: everything needed to run the gates anywhere."""

    units: tuple[GateUnit, ...]
    timesteps: int
    neurons_per_gate: int
    input_bits: int  # fixed point: payload = round(|p| * 2**input_bits)
    dither_bits: int  # fixed point: dither levels scaled by 2**dither_bits
    levels: np.ndarray  # (N*T,) ascending logit levels, level m = logit((m+1/2)/(N*T))
    float_params: NeuronParams
    fixed_params: NeuronParams
    k_effective: np.ndarray  # (U,) slope realised in fixed point (w_in/w_dither)
    fixed_worst_error: np.ndarray  # (U,) exact sup over p in [0,1] of |fixed rate - sigmoid|
    warnings: tuple[str, ...] = field(default_factory=tuple)
    saturated: tuple[str, ...] = field(default_factory=tuple)  # unit names clipped

    @property
    def bound(self) -> float:
        """Physical limit of the rate code: 1 / (2 N T)."""
        return 1.0 / (2 * self.neurons_per_gate * self.timesteps)

    def params(self, fixed: bool) -> NeuronParams:
        return self.fixed_params if fixed else self.float_params

    def encode(self, x: np.ndarray, fixed: bool) -> np.ndarray:
        """Input payload for values x (>= 0 expected; |x| is taken)."""
        x = np.abs(np.asarray(x, dtype=np.float64))
        if not fixed:
            return x
        scale = 2**self.input_bits
        return np.clip(np.rint(x * scale), 0, scale).astype(np.int64)

    def decode(self, counts: np.ndarray) -> np.ndarray:
        """Spike counts of the N neurons of a gate (summed) -> fire rate in [0, 1]."""
        return np.asarray(counts, dtype=np.float64) / (self.neurons_per_gate * self.timesteps)

    def layout(self, unit_index: np.ndarray, fixed: bool) -> NeuronArray:
        """Neuron array for a batch of inputs: input i belongs to unit unit_index[i].

        Each input drives N neurons (channels 0..N-1), so M = len(unit_index) * N
        and neuron m = i * N + c.
        """
        unit_index = np.asarray(unit_index, dtype=np.int64).ravel()
        n = self.neurons_per_gate
        pr = self.params(fixed)
        per = np.repeat(unit_index, n)
        return NeuronArray(
            fixed=fixed,
            timesteps=self.timesteps,
            neurons_per_gate=n,
            unit_index=unit_index,
            w_in=pr.w_in[per],
            w_dither=pr.w_dither[per],
            bias_mant=pr.bias_mant[per],
            bias_exp=pr.bias_exp[per],
            channel=np.tile(np.arange(n), len(unit_index)),
            in_weight_exp=pr.in_weight_exp,
            dither_weight_exp=pr.dither_weight_exp,
            dither=pr.dither,
            du=pr.du,
            dv=pr.dv,
            vth=pr.vth,
        )


@dataclass(frozen=True)
class NeuronArray:
    """M neurons ready to run: what the Lava processes and emulators consume.

    Neuron m reads input payload x[m // N] through weight w_in[m], and dither
    channel `channel[m]` through weight w_dither[m].
    """

    fixed: bool
    timesteps: int
    neurons_per_gate: int
    unit_index: np.ndarray  # (I,) gate unit of each input
    w_in: np.ndarray  # (M,)
    w_dither: np.ndarray  # (M,)
    bias_mant: np.ndarray  # (M,)
    bias_exp: np.ndarray  # (M,)
    channel: np.ndarray  # (M,)
    in_weight_exp: int
    dither_weight_exp: int
    dither: np.ndarray  # (T, N)
    du: float
    dv: float
    vth: float

    @property
    def size(self) -> int:
        return int(self.w_in.shape[0])

    @property
    def n_inputs(self) -> int:
        return int(self.unit_index.shape[0])
