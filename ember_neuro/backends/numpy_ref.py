"""The numpy reference: a mapped neuron array stepped with the pure functions of mappers/loihi.py.

Why: it is the readable statement of what every backend must compute -- Lava's
bit-accurate Loihi 2 arithmetic (fixed point) and Lava's floating-point LIF --
in plain numpy, with no torch and no Lava.  The torch emulator is the fast
version of the same steps (tests prove them equal); the INRC bundle and the
Python 3.10 check use this one.

    a_in[t] = sum_j term_j[t]        term_j = wshift(w_j * s_j[col_j], e_j)   (float: w_j * s_j)
    u, v, spikes = lif_step(u, v, a_in[t], bias, du, dv, vth)                 (loihi.lif_*_step)

Float addition is not associative, so terms are added in connection order
(host payloads, then chip tables), as Lava's LIF sums its synapses.
"""

from __future__ import annotations

import numpy as np

from ember_neuro.mappers import loihi
from ember_neuro.mappers.network import NeuronArray


def synapse_weights(array: NeuronArray, synapses: tuple | None = None) -> list[np.ndarray]:
    """Per synapse (default: all), the weights as the backend applies them (fixed: Lava's 8-bit
    clip/truncate)."""
    synapses = array.synapses if synapses is None else synapses
    if not array.fixed:
        return [np.asarray(s.weight, np.float64) for s in synapses]
    return [loihi.lava_weights(s.weight, array.source_width) for s in synapses]


def bias(array: NeuronArray) -> np.ndarray:
    """(M,) effective bias: fixed ``mant << exp`` as Lava's int16 Vars give it; float the bias."""
    if array.fixed:
        return loihi.bias_value(array.bias_mant, array.bias_exp)
    return np.asarray(array.bias_mant, np.float64)


def _term(fixed: bool, w: np.ndarray, s: np.ndarray, exp: int) -> np.ndarray:
    return loihi.weight_shift(w * s, exp) if fixed else w * s


def host_terms(array: NeuronArray, payload: np.ndarray) -> list[np.ndarray]:
    """(B, M) term of each host synapse for payloads (B, payload_width)."""
    ws = synapse_weights(array, array.host)
    return [_term(array.fixed, w, payload[:, col], s.weight_exp)
            for w, s, col in zip(ws, array.host, array.host_columns(), strict=True)]


def table_terms(array: NeuronArray) -> list[np.ndarray]:
    """(T, M) term of each chip-table synapse."""
    ws = synapse_weights(array, array.tables)
    dtype = np.int64 if array.fixed else np.float64
    return [_term(array.fixed, w, np.asarray(s.table, dtype)[:, s.column], s.weight_exp)
            for w, s in zip(ws, array.tables, strict=True)]


def synaptic_input(array: NeuronArray, payload: np.ndarray) -> np.ndarray:
    """(B, T, M) a_in: the summed synapse outputs at every window step, in connection order."""
    x = array.check_payload(payload)
    terms = host_terms(array, x)
    acc = terms[0] if terms else np.zeros((x.shape[0], array.size), x.dtype)
    for term in terms[1:]:
        acc = acc + term
    acc = np.broadcast_to(acc[:, None, :], (x.shape[0], array.timesteps, array.size))
    for term in table_terms(array):
        acc = acc + term[None]
    return loihi.wrap_int32(acc) if array.fixed else acc


def simulate(array: NeuronArray, payload: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One window per payload row: (spikes (B, T, M) bool, v before the reset (B, T, M))."""
    a_in = synaptic_input(array, payload)
    b = bias(array)
    if array.fixed:
        sub, vth = loihi.lif_fixed_subthreshold, loihi.threshold(int(array.vth))
    else:
        sub, vth = loihi.lif_float_subthreshold, array.vth
    u = v = np.zeros((a_in.shape[0], a_in.shape[2]), a_in.dtype)  # LIFReset: rest at window start
    spikes = np.zeros(a_in.shape, dtype=bool)
    v_pre = np.zeros(a_in.shape, a_in.dtype)
    for t in range(array.timesteps):
        u, v = sub(u, v, a_in[:, t], b, array.du, array.dv)
        v_pre[:, t] = v
        v, spikes[:, t] = loihi.fire_and_reset(v, vth)
    return spikes, v_pre


def step_window(array: NeuronArray, state: tuple[np.ndarray, np.ndarray] | None,
                payload: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """One window with state carried in and out (neurons whose u, v persist across windows).

    ``state`` None starts from rest (a reset); returns ((u, v), spikes (T, M)).
    """
    a_in = synaptic_input(array, np.asarray(payload)[None])[0]
    b = bias(array)
    if state is None:
        state = (np.zeros(array.size, a_in.dtype), np.zeros(array.size, a_in.dtype))
    u, v = state
    step = loihi.lif_fixed_step if array.fixed else loihi.lif_float_step
    spikes = np.zeros(a_in.shape, dtype=bool)
    for t in range(array.timesteps):
        u, v, spikes[t] = step(u, v, a_in[t], b, array.du, array.dv, array.vth)
    return (u, v), spikes


def rasters(array: NeuronArray, payload: np.ndarray, timeout_s: float | None = None) -> np.ndarray:
    """(B, T, M) spike rasters, one window per payload row (the registry's adapter; no timeout needed).

    Neurons whose state carries across windows (``reset_windows`` > 1) run the rows in
    order, from rest every ``reset_windows`` rows.
    """
    if array.reset_windows == 1:
        return simulate(array, payload)[0]
    x = array.check_payload(payload)
    out = np.zeros((x.shape[0], array.timesteps, array.size), dtype=bool)
    state = None
    for w, row in enumerate(x):
        state, out[w] = step_window(array, None if w % array.reset_windows == 0 else state, row)
    return out
