"""Vectorised PyTorch emulator of the gate network, equal to Lava's models.

Why: Lava's CPU simulator runs a few thousand steps per second; validating whole
data sets needs ~1e7 neurons x T steps.  This module runs the *same* dynamics
(mappers/description.py) over all neurons at once, one window per payload row.

Fixed point -- bit-exact with Lava's PySparseModelBitAcc + PyLifResetModelBitAcc:
    w     = Lava's 8-bit weights (clip; MIXED sign mode also drops the LSB)
    term  = wrap32(w * payload) >> -weight_exp   (numpy floor shift; << if exp > 0)
    a_in  = wrap32(term_in + term_dither)        (the LIF sums both Sparse outputs)
    u     = wrap24(decay(u, du + 1) + wrap32(a_in << 6))   Lava's single 24-bit fold
    v     = clip(wrap32(decay(v, dv) + u + bias), -(2^23 - 1), 2^23 - 1)
    decay(x, d) = sign(x) * ((|x| * (4096 - d)) >> 12)
    bias  = int16(bias_mant) << bias_exp  (>> -bias_exp if negative), int32
    spike = v > (vth << 6);  v <- 0 on spike;  u = v = 0 at every window start
Float -- the float64 operations of PyLifResetModelFloat in the same order:
    u = u * (1 - du) + a_in ;  v = v * (1 - dv) + u + bias ;  spike = v > vth

Window step t sees the window's payload and dither row t.  (In Lava the
synapses' one-step delay is absorbed by starting the neurons' window one step
after the source's; see ember_neuro/lava_backend.py.)

Speed: the mapping's configuration (du = dv = 4095 fixed, du = dv = 1 float,
drive within the 24-bit budget) takes a fast path -- int32 (fixed) with the
no-op wraps proven away by bounds checked up front, ~10 tensor ops per step --
and anything else the general exact path.  One torch thread by default: the
ops are memory-bound, and with a second busy process on a 2-core machine
OpenMP's intra-op threads made the same call ~100x slower (measured).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ember_neuro.mappers.description import MappedGates, NeuronArray, gate_counts

UV_MAX = 2**23  # Lava's max_uv_val: u and v are 24-bit
DEFAULT_BLOCK = 1 << 18  # (batch x neuron) elements per block: cache-sized tensors


def _wrap32(x: torch.Tensor) -> torch.Tensor:
    """int64 -> the value an int32 holding the same bits has (two's complement)."""
    return ((x + 2**31) & 0xFFFFFFFF) - 2**31


def lava_fixed_weights(w: np.ndarray, n_cols: int) -> np.ndarray:
    """Weights as Lava's bit-accurate Sparse applies them (int64 values).

    ``clip_weights`` to 8 bits and ``truncate_weights`` (MIXED sign mode keeps 7
    magnitude bits + sign, so the LSB is dropped).  The sign mode is decided over
    the whole (M, n_cols) matrix, implicit zeros included, as
    ``determine_sign_mode`` does; each row holds exactly one weight.
    """
    w = np.asarray(w).astype(np.int64).astype(np.int32).astype(np.int64)
    lo, hi = int(w.min()), int(w.max())
    if n_cols > 1 or np.any(w == 0):
        lo, hi = min(lo, 0), max(hi, 0)
    if lo >= 0:  # EXCITATORY
        return np.clip(w, 0, 255)
    if hi <= 0:  # INHIBITORY
        return -np.clip(-w, 0, 255)
    return (np.clip(w, -256, 255) >> 1) << 1  # MIXED


def lava_fixed_bias(bias_mant: np.ndarray, bias_exp: np.ndarray) -> np.ndarray:
    """Lava's effective bias: int16 Vars, mantissa shifted by the exponent in int32."""
    mant = np.asarray(bias_mant).astype(np.int64).astype(np.int16).astype(np.int32)
    exp = np.asarray(bias_exp).astype(np.int64).astype(np.int16)
    out = np.where(exp >= 0, np.left_shift(mant, np.maximum(exp, 0)),
                   np.right_shift(mant, np.maximum(-exp, 0)))
    return out.astype(np.int32).astype(np.int64)


def _shift_np(x: np.ndarray, exp: int) -> np.ndarray:
    """Weight exponent on an int32 accumulator (values as int64)."""
    x = x.astype(np.int32).astype(np.int64)  # wrap32 of the Sparse's int32 dot
    if exp > 0:
        return (x << exp).astype(np.int32).astype(np.int64)
    return x >> (-exp)


@dataclass(frozen=True)
class _Prepared:
    """Per-neuron constants of an array, in the arithmetic Lava applies."""

    fixed: bool
    inp: np.ndarray  # (M,) input index of each neuron
    w_in: np.ndarray  # (M,)
    drive_d: np.ndarray  # (T, M) dither term (fixed: after the shift)
    bias: np.ndarray  # (M,)

    @classmethod
    def of(cls, a: NeuronArray) -> _Prepared:
        inp = np.arange(a.size) // a.neurons_per_gate
        ch = np.asarray(a.channel)
        if not a.fixed:
            w_d = np.asarray(a.w_dither, dtype=np.float64)
            return cls(False, inp, np.asarray(a.w_in, dtype=np.float64),
                       w_d * np.asarray(a.dither, dtype=np.float64)[:, ch],
                       np.asarray(a.bias_mant, dtype=np.float64))
        w_d = lava_fixed_weights(a.w_dither, a.neurons_per_gate)
        d = np.asarray(a.dither).astype(np.int64).astype(np.int32).astype(np.int64)[:, ch]
        return cls(True, inp, lava_fixed_weights(a.w_in, a.n_inputs),
                   _shift_np(w_d * d, int(a.dither_weight_exp)),
                   lava_fixed_bias(a.bias_mant, a.bias_exp))


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    if n is None or n == torch.get_num_threads():
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def emulate(
    array: NeuronArray,
    x_payload: np.ndarray,
    record: bool = False,
    device: str | torch.device = "cpu",
    block: int = DEFAULT_BLOCK,
    threads: int | None = 1,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Spike counts (M,) -- or (B, M) for a (B, I) payload -- one window per row.

    With ``record=True`` also returns the raster, (T, M) or (B, T, M) bool.
    Fixed mode takes the integer payload of ``MappedGates.encode``.  ``threads``:
    torch intra-op threads for this call (restored after); None keeps torch's.
    """
    x = np.asarray(x_payload)
    if x.ndim not in (1, 2) or x.shape[-1] != array.n_inputs:
        raise ValueError(f"payload must be (I,) or (B, I) with I = {array.n_inputs}, got {x.shape}")
    if array.fixed:
        if not np.issubdtype(x.dtype, np.integer) and not np.all(np.mod(x, 1) == 0):
            raise ValueError("fixed-point payload must be integer (use MappedGates.encode)")
        x = x.astype(np.int64).astype(np.int32).astype(np.int64)  # Lava's int32 graded spike
    else:
        x = x.astype(np.float64)
    xb = x if x.ndim == 2 else x[None]
    b, m, steps = xb.shape[0], array.size, array.timesteps
    prep = _Prepared.of(array)
    counts = np.zeros((b, m), dtype=np.int64)
    raster = np.zeros((b, steps, m), dtype=bool) if record else None
    cols = max(1, min(m, block))
    rows = max(1, min(b, block // cols))
    dev = torch.device(device)
    with _torch_threads(threads), torch.inference_mode():
        for c0 in range(0, m, cols):
            sl = slice(c0, min(m, c0 + cols))
            for r0 in range(0, b, rows):
                rs = slice(r0, min(b, r0 + rows))
                run = _run_fixed if array.fixed else _run_float
                cnt, ras = run(array, prep, xb[rs][:, prep.inp[sl]], sl, record, dev)
                counts[rs, sl] = cnt
                if raster is not None:
                    raster[rs, :, sl] = ras
    if x.ndim == 1:
        counts = counts[0]
        raster = raster[0] if raster is not None else None
    return (counts, raster) if record else counts


def _run_fixed(a: NeuronArray, p: _Prepared, xs: np.ndarray, sl: slice, record: bool,
               dev: torch.device) -> tuple[np.ndarray, np.ndarray | None]:
    term_in = _shift_np(p.w_in[sl] * xs, int(a.in_weight_exp))  # (B, C), whole window
    term_d = p.drive_d[:, sl]  # (T, C)
    bias = p.bias[sl]
    fu, fv = 4096 - (int(a.du) + 1), 4096 - int(a.dv)
    vth = int(a.vth) << 6
    drive = int(np.abs(term_in).max(initial=0)) + int(np.abs(term_d).max(initial=0))
    fast = fu == 0 and fv in (0, 1) and drive < 2**17 and int(np.abs(bias).max(initial=0)) < 2**24
    run = _steps_fixed_fast if fast else _steps_fixed_exact
    return run(term_in, term_d, bias, fu, fv, vth, record, dev)


def _steps_fixed_fast(term_in, term_d, bias, fu, fv, vth, record, dev):
    """u memoryless, |a_in| < 2^17: no wrap can occur, so int32 without wraps is exact."""
    i32 = dict(dtype=torch.int32, device=dev)
    base = torch.as_tensor((term_in << 6) + bias, **i32)  # u + bias without the dither part
    act_d = torch.as_tensor(term_d << 6, **i32)
    v = torch.zeros_like(base)
    counts = torch.zeros_like(base)
    ras = np.zeros((base.shape[0], act_d.shape[0], base.shape[1]), bool) if record else None
    for t in range(act_d.shape[0]):
        if fv == 1:  # sign(v) * (|v| >> 12) == v / 4096 truncated toward zero
            v = (v + ((v >> 31) & 4095)) >> 12
        else:
            v.zero_()
        v += base
        v += act_d[t]
        v.clamp_(-(UV_MAX - 1), UV_MAX - 1)
        spike = v > vth
        v.masked_fill_(spike, 0)
        counts += spike
        if ras is not None:
            ras[:, t] = spike.cpu().numpy()
    return counts.cpu().numpy(), ras


def _decay(x: torch.Tensor, factor: int) -> torch.Tensor:
    if factor == 0:
        return torch.zeros_like(x)
    q = (x.abs() * factor) >> 12
    return torch.where(x < 0, -q, q)


def _steps_fixed_exact(term_in, term_d, bias, fu, fv, vth, record, dev):
    """Every int32 wrap, the 24-bit fold and general decays, in int64."""
    i64 = dict(dtype=torch.int64, device=dev)
    tin = torch.as_tensor(term_in, **i64)
    td = torch.as_tensor(term_d, **i64)
    bias_t = torch.as_tensor(bias, **i64)
    u = torch.zeros_like(tin)
    v = torch.zeros_like(tin)
    counts = torch.zeros_like(tin)
    ras = np.zeros((tin.shape[0], td.shape[0], tin.shape[1]), bool) if record else None
    for t in range(td.shape[0]):
        act = _wrap32(_wrap32(tin + td[t]) << 6)
        cur = _wrap32(_decay(u, fu) + act)
        folded = torch.where(cur > UV_MAX, cur - 2 * UV_MAX, cur)
        u = _wrap32(torch.where(folded <= -UV_MAX, cur + 2 * UV_MAX, folded))
        v = torch.clamp(_wrap32(_decay(v, fv) + u + bias_t), -(UV_MAX - 1), UV_MAX - 1)
        spike = v > vth
        v = v.masked_fill(spike, 0)
        counts += spike
        if ras is not None:
            ras[:, t] = spike.cpu().numpy()
    return counts.cpu().numpy(), ras


def _run_float(a: NeuronArray, p: _Prepared, xs: np.ndarray, sl: slice, record: bool,
               dev: torch.device) -> tuple[np.ndarray, np.ndarray | None]:
    f64 = dict(dtype=torch.float64, device=dev)
    term_in = torch.as_tensor(p.w_in[sl] * xs, **f64)  # the Sparse's w * x
    term_d = torch.as_tensor(p.drive_d[:, sl], **f64)
    bias = torch.as_tensor(p.bias[sl], **f64)
    keep_u, keep_v, vth = 1.0 - float(a.du), 1.0 - float(a.dv), float(a.vth)
    # u * 0 == 0 for finite u, so memoryless neurons need no state at all.
    finite = all(bool(torch.isfinite(z).all()) for z in (term_in, term_d, bias))
    memoryless = keep_u == 0.0 and keep_v == 0.0 and finite
    u = torch.zeros_like(term_in)
    v = torch.zeros_like(term_in)
    counts = torch.zeros(term_in.shape, dtype=torch.int32, device=dev)
    ras = np.zeros((term_in.shape[0], term_d.shape[0], term_in.shape[1]), bool) if record else None
    for t in range(term_d.shape[0]):
        a_in = term_in + term_d[t]
        if memoryless:
            v = a_in + bias
        else:
            u = u * keep_u + a_in
            v = v * keep_v + u + bias
        spike = v > vth
        if not memoryless:
            v = v.masked_fill(spike, 0.0)
        counts += spike
        if ras is not None:
            ras[:, t] = spike.cpu().numpy()
    return counts.cpu().numpy(), ras


def gate_rates(
    mapped: MappedGates,
    unit_index: np.ndarray,
    p: np.ndarray,
    fixed: bool,
    **kwargs: object,
) -> np.ndarray:
    """Fire rate in [0, 1] of unit ``unit_index[i]`` at value ``p[..., i]`` (emulated)."""
    array = mapped.layout(unit_index, fixed)
    counts = emulate(array, mapped.encode(p, fixed), **kwargs)  # type: ignore[arg-type]
    return mapped.decode(gate_counts(counts, mapped.neurons_per_gate))
