"""Independent reference simulators for the float gate neurons, and how to compare them.

Why: a Lava result is only trustworthy if two simulators written by other people
(snnTorch, Norse) produce the *same spikes* from the same :class:`NeuronArray`.
Rates can agree while individual spikes differ, so the comparison here reports
every differing (step, neuron) slot with its distance to threshold instead of
averaging the differences into a rate.

Conventions (checked against the library sources, see docs/validation.md):

* Window step t is the neuron's t-th update inside a window.  Lava's Dense/Sparse
  deliver at Lava step s what the source sent at s-1, so a Lava network feeds
  window step t one Lava step early; every raster here is indexed by neuron step.
  Drive at step t:  a_in[t] = w_in * x[m // N] + w_dither * d[t, channel[m]].
* Lava float LIF (PyLifModelFloat): u = u(1-du) + a_in; v = v(1-dv) + u + bias;
  spike iff v > vth (strict); v <- 0 after a spike; u = v = 0 at window start.
* snnTorch ``Leaky``: mem = beta*mem + input, spike iff mem - threshold > 0 (strict),
  reset_mechanism="zero".  beta = 1 - dv, input = a_in + bias.  No separate current,
  so du must be 1.
* Norse ``LIFCell`` (lif_feed_forward_step): i += input; v += dt*tau_mem_inv*((v_leak - v) + i);
  spike iff v - v_th > 0 (strict heaviside); v <- v_reset; i -= dt*tau_syn_inv*i.
  dt = 1, tau_syn_inv = du, tau_mem_inv = dv, input = a_in/dv, v_leak = bias/dv.
  Norse's default state starts v at v_leak, so an explicit zero state is passed.

With du = dv = 1 all three compute v = fl(fl(w_in x + w_dither d) + bias) with the
same IEEE operations, so in float64 they agree bit for bit.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ember_neuro.mappers.description import NeuronArray

INSTALL_HINT = (
    "install the reference extra: pip install 'ember-neuro[ref]' "
    "and pip install --no-deps norse==1.1.0"
)


def require(module: str) -> Any:
    """Import an optional reference simulator, or fail with the install command.

    Norse 1.1.0 calls ``torch.jit.script`` at import, deprecated in recent torch;
    that DeprecationWarning is silenced here (harmless, not ours to fix).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"{module} is not installed; {INSTALL_HINT}") from exc


def _check(array: NeuronArray, x: np.ndarray) -> np.ndarray:
    if array.fixed:
        raise ValueError("reference simulators run float parameters: use layout(..., fixed=False)")
    x = np.asarray(x, dtype=np.float64)
    if x.shape != (array.n_inputs,):
        raise ValueError(f"x must have shape ({array.n_inputs},), got {x.shape}")
    return x


def input_drive(array: NeuronArray, x: np.ndarray) -> np.ndarray:
    """(T, M) synaptic drive a_in = w_in*x + w_dither*d, float64, in Lava's operation order."""
    x = _check(array, x)
    xm = x[np.arange(array.size) // array.neurons_per_gate]
    dm = np.asarray(array.dither, dtype=np.float64)[:, array.channel]
    return array.w_in * xm + array.w_dither * dm


def lava_float_reference(array: NeuronArray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lava's PyLifModelFloat in numpy: (spikes (T, M) bool, v before reset (T, M)).

    Same statements, same order as lava.proc.lif.models.AbstractPyLifModelFloat, so
    it is bit-identical to Lava float (verified in tests/test_reference.py).
    """
    a_in = input_drive(array, x)
    u = np.zeros(array.size)
    v = np.zeros(array.size)
    spikes = np.zeros(a_in.shape, dtype=bool)
    v_pre = np.zeros(a_in.shape)
    for t in range(array.timesteps):
        u[:] = u * (1 - array.du)
        u[:] += a_in[t]
        v[:] = v * (1 - array.dv) + u + array.bias_mant
        v_pre[t] = v
        spikes[t] = v > array.vth
        v[spikes[t]] = 0
    return spikes, v_pre


def _torch_inputs(array: NeuronArray, x: np.ndarray, dtype: Any) -> tuple[Any, ...]:
    torch = require("torch")
    x = _check(array, x)

    def as_t(a: Any) -> Any:
        return torch.as_tensor(np.asarray(a, dtype=np.float64)).to(dtype)

    xm = as_t(x)[torch.as_tensor(np.arange(array.size) // array.neurons_per_gate)]
    dm = as_t(array.dither)[:, torch.as_tensor(array.channel)]
    a_in = as_t(array.w_in) * xm + as_t(array.w_dither) * dm  # (T, M), computed in torch
    return torch, a_in, as_t(array.bias_mant)


def run_snntorch(array: NeuronArray, x: np.ndarray, dtype: Any = None) -> np.ndarray:
    """Spikes (T, M) of snnTorch's ``Leaky`` driven by the Lava drive (float64 unless dtype)."""
    if array.du != 1:
        raise ValueError("snnTorch Leaky has no synaptic current state: du must be 1")
    snn = require("snntorch")
    torch, a_in, bias = _torch_inputs(array, x, dtype or require("torch").float64)
    # tensors, not floats: a float threshold would be stored as float32
    lif = snn.Leaky(beta=torch.as_tensor(1.0 - float(array.dv), dtype=a_in.dtype),
                    threshold=torch.as_tensor(float(array.vth), dtype=a_in.dtype),
                    reset_mechanism="zero", reset_delay=False, surrogate_disable=True)
    mem = torch.zeros(array.size, dtype=a_in.dtype)
    out = []
    with torch.no_grad():
        for t in range(array.timesteps):
            spk, mem = lif(a_in[t] + bias, mem)
            out.append(spk.bool())
    return torch.stack(out).numpy()


def run_norse(array: NeuronArray, x: np.ndarray, dtype: Any = None) -> np.ndarray:
    """Spikes (T, M) of Norse's ``LIFCell`` (current + voltage), dt = 1, tau_inv = du, dv."""
    norse = require("norse.torch")
    torch, a_in, bias = _torch_inputs(array, x, dtype or require("torch").float64)
    dv = torch.as_tensor(float(array.dv), dtype=a_in.dtype)
    p = norse.LIFParameters(
        tau_syn_inv=torch.as_tensor(float(array.du), dtype=a_in.dtype),
        tau_mem_inv=dv,
        v_leak=bias / dv,
        v_th=torch.as_tensor(float(array.vth), dtype=a_in.dtype),
        v_reset=torch.zeros((), dtype=a_in.dtype),
        method="heaviside",
    )
    cell = norse.LIFCell(p, dt=1.0)
    zero = torch.zeros(array.size, dtype=a_in.dtype)
    state = norse.LIFFeedForwardState(v=zero, i=zero)
    out = []
    with torch.no_grad():
        for t in range(array.timesteps):
            z, state = cell(a_in[t] / dv, state)
            out.append(z.bool())
    return torch.stack(out).numpy()


def spike_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of (step, neuron) slots with the same spike/no-spike."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"raster shapes differ: {a.shape} vs {b.shape}")
    return float((a == b).mean())


def rate_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of per-neuron spike rates (the NIR paper's measure); 1 if both silent."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ra, rb = a.reshape(a.shape[0], -1).mean(0), b.reshape(b.shape[0], -1).mean(0)
    na, nb = np.linalg.norm(ra), np.linalg.norm(rb)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(ra @ rb / (na * nb))


@dataclass(frozen=True)
class Mismatch:
    """One slot where two rasters differ, with why it may have flipped."""

    t: int
    neuron: int
    a: bool
    b: bool
    v: float  # reference membrane (before reset) at this slot
    margin: float  # v - vth: how far the reference was from a tie
    scale: float  # |w_in x| + |w_dither d| + |bias|: size of the summed terms
    cause: str  # "tie", "float64 rounding", "float32 rounding" or "unexplained"


def classify(margin: float, scale: float) -> str:
    """Name the finest arithmetic whose rounding can already move v across vth by `margin`.

    "float64 rounding": |margin| <= 4 ulp64 of the summed terms, so even a float64
    simulator with another operation order may disagree (float32 certainly may);
    "float32 rounding": only float32 arithmetic or float32-rounded parameters can;
    "unexplained": no rounding can, the simulators compute different things.
    """
    if margin == 0:
        return "tie"
    for name, eps in (("float64 rounding", 2.0**-52), ("float32 rounding", 2.0**-23)):
        if abs(margin) <= 4 * eps * max(scale, 1e-300):
            return name
    return "unexplained"


def find_mismatches(array: NeuronArray, x: np.ndarray, a: np.ndarray, b: np.ndarray) -> list[Mismatch]:
    """Every slot where rasters a and b differ, closest-to-threshold first.

    The margin comes from :func:`lava_float_reference`; a mismatch far from
    threshold ("unexplained") is a semantic difference, not rounding.
    """
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape or a.shape != (array.timesteps, array.size):
        raise ValueError(f"rasters must be {(array.timesteps, array.size)}: {a.shape}, {b.shape}")
    _, v = lava_float_reference(array, x)
    x = _check(array, x)
    ts, ms = np.nonzero(a != b)
    out = []
    for t, m in zip(ts.tolist(), ms.tolist(), strict=True):
        d = float(array.dither[t, array.channel[m]])
        scale = abs(array.w_in[m] * x[m // array.neurons_per_gate]) + abs(array.w_dither[m] * d)
        scale += abs(float(array.bias_mant[m]))
        margin = float(v[t, m] - array.vth)
        out.append(Mismatch(t, m, bool(a[t, m]), bool(b[t, m]), float(v[t, m]), margin,
                            float(scale), classify(margin, float(scale))))
    return sorted(out, key=lambda mm: abs(mm.margin))


def closest_margin(array: NeuronArray, x: np.ndarray) -> float:
    """Smallest |v - vth| over all slots: how hard the comparison was (0 = an exact tie)."""
    _, v = lava_float_reference(array, x)
    return float(np.abs(v - array.vth).min())
