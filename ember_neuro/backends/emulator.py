"""Vectorised PyTorch emulator of a mapped neuron array, equal to Lava's models bit for bit.

Why: Lava's CPU simulator runs a few thousand steps per second; validating whole
data sets needs ~1e7 neurons x T steps.  This module runs the *same* steps as the
numpy reference (ember_neuro/backends/numpy_ref.py, built from mappers/loihi.py)
over all neurons at once, one window per payload row:

    a_in[t] = sum_j term_j[t]      host terms once per window, chip-table terms per step
    u, v, spikes = loihi.lif_{fixed,float}_step(u, v, a_in[t], bias, du, dv, vth)

The synapse terms are prepared in numpy by numpy_ref (the one implementation of
weights, shifts and biases); the step loop runs in torch.  The exact path calls
the loihi step functions on int64 tensors (every wrap, fold, clip and decay).
The mapping's own configuration -- memoryless neurons (du = dv = 4095 fixed,
du = dv = 1 float) with the drive inside the 24-bit budget -- takes a fast path
of ~6 int32 tensor ops per step with the no-op wraps proven away by bounds
checked up front; when only counts are asked and the dither's levels ascend, the
counts come from a binary search instead (counts_by_search).  Tests prove every
path equal to the others and to Lava.

One torch thread by default: the ops are memory-bound, and with a second busy
process on a 2-core machine OpenMP's intra-op threads made the same call ~100x
slower (measured).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from ember_neuro.backends import numpy_ref
from ember_neuro.mappers import loihi
from ember_neuro.mappers.gate import count_above
from ember_neuro.mappers.network import NeuronArray, NeuronGroup

DEFAULT_BLOCK = 1 << 18  # (batch x neuron) elements per block: cache-sized tensors
FAST_DRIVE_LIMIT = 2**17  # |a_in| below this: a_in << 6 plus the bias cannot wrap or fold


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


def _sum_in_order(terms: list[np.ndarray], fixed: bool) -> np.ndarray:
    """Sum synapse terms in connection order (float addition is not associative)."""
    acc = terms[0]
    for term in terms[1:]:
        acc = acc + term
    return loihi.wrap_int32(acc) if fixed else acc


def emulate(
    array: NeuronArray,
    x_payload: np.ndarray,
    record: bool = False,
    device: str | torch.device = "cpu",
    block: int = DEFAULT_BLOCK,
    threads: int | None = 1,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Spike counts (M,) -- or (B, M) for a (B, W) payload -- one window per row.

    With ``record=True`` also returns the raster, (T, M) or (B, T, M) bool.
    Fixed mode takes the integer payload of ``NeuronGroup.encode``.  ``threads``:
    torch intra-op threads for this call (restored after); None keeps torch's.
    """
    if array.reset_windows > 1:
        raise ValueError("the emulator runs independent windows; neurons that carry state across "
                         "windows (reset_windows > 1) run on the numpy reference (numpy_ref.rasters)")
    single = np.asarray(x_payload).ndim == 1
    xb = array.check_payload(x_payload)
    if not record:
        counts = counts_by_search(array, xb)
        if counts is not None:
            return counts[0] if single else counts
    b, m, steps = xb.shape[0], array.size, array.timesteps
    tables = numpy_ref.table_terms(array)
    weights = numpy_ref.synapse_weights(array)[: len(array.host)]
    cols = array.host_columns()
    bias = numpy_ref.bias(array)
    counts = np.zeros((b, m), dtype=np.int64)
    raster = np.zeros((b, steps, m), dtype=bool) if record else None
    width = max(1, min(m, block))
    rows = max(1, min(b, block // width))
    dev = torch.device(device)
    run = _run_fixed if array.fixed else _run_float
    with _torch_threads(threads), torch.inference_mode():
        for c0 in range(0, m, width):
            sl = slice(c0, min(m, c0 + width))
            table = [t[:, sl] for t in tables]
            for r0 in range(0, b, rows):
                rs = slice(r0, min(b, r0 + rows))
                host = [numpy_ref._term(array.fixed, w[sl], xb[rs][:, c[sl]], s.weight_exp)
                        for w, c, s in zip(weights, cols, array.host, strict=True)]
                cnt, ras = run(array, host, table, bias[sl], record, dev)
                counts[rs, sl] = cnt
                if raster is not None:
                    raster[rs, :, sl] = ras
    if single:
        counts = counts[0]
        raster = raster[0] if raster is not None else None
    return (counts, raster) if record else counts


def _run_fixed(a: NeuronArray, host: list[np.ndarray], table: list[np.ndarray], bias: np.ndarray,
               record: bool, dev: torch.device) -> tuple[np.ndarray, np.ndarray | None]:
    term_h = _sum_in_order(host, True)  # (B, C), the whole window
    term_t = _sum_in_order(table, True) if table else np.zeros((a.timesteps, term_h.shape[1]), np.int64)
    drive = int(np.abs(term_h).max(initial=0)) + int(np.abs(term_t).max(initial=0))
    fast = (a.du == loihi.DECAY_MAX and a.dv in (loihi.DECAY_MAX, loihi.DECAY_UNITY)
            and drive < FAST_DRIVE_LIMIT and int(np.abs(bias).max(initial=0)) < 2**24)
    run = _steps_fixed_fast if fast else _steps_fixed_exact
    return run(a, term_h, term_t, bias, record, dev)


def _searchable(du: float, dv: float, vth: float, n_tables: int) -> bool:
    """Whether neurons may be counted without stepping (see :func:`_search_counts`)."""
    return (n_tables == 1 and int(vth) == 0 and du == loihi.DECAY_MAX
            and dv in (loihi.DECAY_MAX, loihi.DECAY_UNITY))


def _search_counts(seqs: np.ndarray, group_of: np.ndarray, term_h: np.ndarray, bias: np.ndarray,
                   keeps_v: bool) -> np.ndarray | None:
    """Spike counts without stepping, where that is exact; else None.

    For the mapping's gate neurons -- fixed point, u memoryless (du = 4095), vth = 0, one chip
    table (the dither) whose drive never rises over a window (its levels ascend), within the
    fast path's bounds -- a neuron that fails once then fails for the rest of the window, and
    a failed step leaves v <= 0 (a spike leaves 0), so v's residual can only lower steps that
    fail anyway.  The count is #{terms : base + term > 0}, a binary search over the few
    distinct table sequences instead of T steps over every neuron.  ``seqs`` (G, T, C): the
    act-shifted table drive of each sequence's C neurons (summed: the count of a gate's N
    neurons); ``group_of``: each item's sequence; ``term_h`` (B, I) its host drive; ``bias``
    (I,).  ``keeps_v`` (dv = 4095): a rising table could let a residual matter, so say None.
    Tests check it against the full dynamics.
    """
    if keeps_v and np.any(np.diff(seqs, axis=1) > 0):
        return None
    drive = int(np.abs(term_h).max(initial=0)) + int(np.abs(seqs).max(initial=0)) // 2**loihi.ACT_SHIFT
    if drive >= FAST_DRIVE_LIMIT or int(np.abs(bias).max(initial=0)) >= 2**24:
        return None
    return count_above(seqs, group_of, loihi.act_shift(term_h) + bias)


def counts_by_search(a: NeuronArray, x: np.ndarray) -> np.ndarray | None:
    """(B, M) spike counts of an array without stepping (:func:`_search_counts`), or None.

    One sequence per distinct (dither weight, table column) among the neurons."""
    if not (a.fixed and a.host and _searchable(a.du, a.dv, a.vth, len(a.tables))):
        return None
    syn = a.tables[0]
    table = np.asarray(syn.table, np.int64)
    w = loihi.lava_weights(syn.weight, a.source_width)
    keys = (w + loihi.WEIGHT_MAX + 1) * table.shape[1] + np.asarray(syn.column, np.int64)
    present = np.zeros(2 * (loihi.WEIGHT_MAX + 1) * table.shape[1], np.int64)
    present[keys] = 1
    distinct = np.flatnonzero(present)
    group = (np.cumsum(present) - 1)[keys]  # neuron -> its table sequence
    w_g = distinct // table.shape[1] - loihi.WEIGHT_MAX - 1
    seqs = loihi.act_shift(loihi.wrap_int32(loihi.weight_shift(w_g * table[:, distinct % table.shape[1]],
                                                                syn.weight_exp)))  # (T, G)
    term_h = _sum_in_order(numpy_ref.host_terms(a, x), True)
    return _search_counts(seqs.T[:, :, None], group, term_h, numpy_ref.bias(a), a.dv == loihi.DECAY_MAX)


def group_gate_counts(group: NeuronGroup, unit_index: np.ndarray, x: np.ndarray) -> np.ndarray | None:
    """(B, I) spike counts per input, summed over its N neurons, without building the neuron layout.

    The shortcut of :func:`_search_counts` one level up: the N neurons of a gate share its
    host drive and bias and differ only in their dither column, so one sequence per (unit,
    phase) holds all N*T of its table terms -- one search per input.  N times less work than
    counting neuron by neuron, and no (I*N)-long arrays: what makes many neurons per gate
    cheap to evaluate.  None where the shortcut is not exact.
    """
    ar = group.fixed_params
    tables = [c for c in ar.connections if not c.from_host]
    if group.reset_windows != 1 or not _searchable(ar.du, ar.dv, ar.vth, len(tables)):
        return None
    unit_index = np.asarray(unit_index, np.int64).ravel()
    x = np.atleast_2d(np.asarray(x, np.int64))
    n, i_count = group.neurons_per_gate, unit_index.size
    present = np.flatnonzero(np.bincount(unit_index, minlength=len(group.units)))  # sorted, no sort
    table = np.asarray(tables[0].table, np.int64)
    phases = table.shape[1] // n

    def applied(weight: np.ndarray) -> np.ndarray:
        """Per unit, the weight as Lava applies it (its sign mode is decided by the units present)."""
        w = np.zeros(len(group.units), np.int64)
        w[present] = loihi.lava_weights(np.asarray(weight)[present], i_count * (1 + phases))
        return w

    w_d = applied(tables[0].weight)
    keys = (np.arange(i_count) % phases) * len(group.units) + unit_index  # (phase, unit) per input
    lookup = np.bincount(keys, minlength=phases * len(group.units))
    used = np.flatnonzero(lookup)
    lookup[used] = np.arange(used.size)  # key -> its sequence
    u_of, p_of = used % len(group.units), used // len(group.units)
    cols = p_of[:, None] * n + np.arange(n)[None]  # (G, N)
    seqs = loihi.act_shift(loihi.wrap_int32(loihi.weight_shift(
        w_d[u_of][:, None, None] * table[:, cols].transpose(1, 0, 2), tables[0].weight_exp)))  # (G, T, N)
    host = [c for c in ar.connections if c.from_host]
    terms = [loihi.weight_shift(applied(c.weight)[unit_index] * x[:, j * i_count:(j + 1) * i_count],
                                c.weight_exp) for j, c in enumerate(host)]
    bias = loihi.bias_value(np.asarray(ar.bias_mant)[unit_index], np.asarray(ar.bias_exp)[unit_index])
    return _search_counts(seqs, lookup[keys], _sum_in_order(terms, True), bias, ar.dv == loihi.DECAY_MAX)


def _steps_fixed_fast(a, term_h, term_t, bias, record, dev):
    """u memoryless, |a_in| < 2^17: no wrap can occur, so int32 without wraps is exact."""
    i32 = dict(dtype=torch.int32, device=dev)
    base = torch.as_tensor(loihi.act_shift(term_h) + bias, **i32)  # u + bias without the table part
    act_t = torch.as_tensor(loihi.act_shift(term_t), **i32)
    keeps_v = a.dv == loihi.DECAY_MAX  # v keeps v/4096, truncated toward zero (4096: nothing)
    vth = loihi.threshold(int(a.vth))
    v = torch.zeros_like(base)
    counts = torch.zeros_like(base)
    ras = np.zeros((base.shape[0], act_t.shape[0], base.shape[1]), bool) if record else None
    for t in range(act_t.shape[0]):
        if keeps_v:  # sign(v) * (|v| >> 12) == v / 4096 truncated toward zero
            v = (v + ((v >> 31) & 4095)) >> 12
        else:
            v.zero_()
        v += base
        v += act_t[t]
        v.clamp_(-(loihi.UV_MAX - 1), loihi.UV_MAX - 1)
        spike = v > vth
        v.masked_fill_(spike, 0)
        counts += spike
        if ras is not None:
            ras[:, t] = spike.cpu().numpy()
    return counts.cpu().numpy(), ras


def _steps_fixed_exact(a, term_h, term_t, bias, record, dev):
    """The loihi step function on int64 tensors: every wrap, fold, clip and decay."""
    i64 = dict(dtype=torch.int64, device=dev)
    th, tt = torch.as_tensor(term_h, **i64), torch.as_tensor(term_t, **i64)
    bias_t = torch.as_tensor(bias, **i64)
    u = torch.zeros_like(th)
    v = torch.zeros_like(th)
    counts = torch.zeros_like(th)
    ras = np.zeros((th.shape[0], tt.shape[0], th.shape[1]), bool) if record else None
    du, dv, vth = int(a.du), int(a.dv), int(a.vth)
    for t in range(tt.shape[0]):
        u, v, spike = loihi.lif_fixed_step(u, v, loihi.wrap_int32(th + tt[t]), bias_t, du, dv, vth)
        counts += spike
        if ras is not None:
            ras[:, t] = spike.cpu().numpy()
    return counts.cpu().numpy(), ras


def _run_float(a: NeuronArray, host: list[np.ndarray], table: list[np.ndarray], bias: np.ndarray,
               record: bool, dev: torch.device) -> tuple[np.ndarray, np.ndarray | None]:
    f64 = dict(dtype=torch.float64, device=dev)
    term_h = torch.as_tensor(_sum_in_order(host, False), **f64)
    tables = [torch.as_tensor(t, **f64) for t in table]
    bias_t = torch.as_tensor(bias, **f64)
    du, dv, vth = float(a.du), float(a.dv), float(a.vth)
    # u * 0 == 0 for finite u, so memoryless neurons need no state at all.
    finite = all(bool(torch.isfinite(z).all()) for z in (term_h, bias_t, *tables))
    memoryless = du == 1.0 and dv == 1.0 and finite
    u = torch.zeros_like(term_h)
    v = torch.zeros_like(term_h)
    counts = torch.zeros(term_h.shape, dtype=torch.int32, device=dev)
    ras = np.zeros((term_h.shape[0], a.timesteps, term_h.shape[1]), bool) if record else None
    for t in range(a.timesteps):
        a_in = term_h
        for tab in tables:
            a_in = a_in + tab[t]
        if memoryless:
            spike = a_in + bias_t > vth
        else:
            u, v, spike = loihi.lif_float_step(u, v, a_in, bias_t, du, dv, vth)
        counts += spike
        if ras is not None:
            ras[:, t] = spike.cpu().numpy()
    return counts.cpu().numpy(), ras


# -- the backend adapter (ember_neuro/backends/registry.py) ----------------------------------------

def rasters(array: NeuronArray, payload: np.ndarray, timeout_s: float | None = None) -> np.ndarray:
    """(B, T, M) rasters; neurons whose state carries across windows run on the numpy reference."""
    if array.reset_windows > 1:
        return numpy_ref.rasters(array, payload)
    return np.asarray(emulate(array, np.atleast_2d(payload), record=True)[1], dtype=bool)


def counts(array: NeuronArray, payload: np.ndarray) -> np.ndarray:
    """(B, M) spike counts (by search where that is exact, :func:`counts_by_search`)."""
    if array.reset_windows > 1:
        return numpy_ref.rasters(array, payload).sum(axis=1)
    return np.asarray(emulate(array, np.atleast_2d(payload)))


gate_counts = group_gate_counts  # the per-gate shortcut (None where it is not exact)
