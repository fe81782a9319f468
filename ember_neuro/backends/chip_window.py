"""The chip-side window: a memoryless neuron array's whole window in one chip step, one exchange each way.

Why.  On a Loihi 2 board every step that a host process takes part in crosses the host<->chip
boundary (milliseconds, against ~0.15 ms for the chip's own step; SPEC section 7).  The
per-step network (backends/lava.py, ``bridge="per-step"``) has the host feed the payload and
the dither row at every one of a window's T steps and take back T rasters of M spike bits.
This module lays the same neurons out so that a window is *one* step and crosses once each
way: the host sends each live gate value once, the chip answers each live value's spike count
once, and nothing else crosses.

The arithmetic it rests on (mappers/gate.py).  A rate gate's neurons are memoryless (du = dv =
4095, reset every window) and face *ascending* dither levels, so the spike of neuron c at
window step t is exactly ``memoryless_drive(a_in[t], bias) > vth`` of that step alone: after a
spike v restarts from 0, and after the first failure every later level is higher and v's
residual is <= 0, so no later step fires (:func:`check_prefix` verifies the ascent per neuron).
The window's N T (step, channel) pairs can therefore be N T neurons that all evaluate in the
same chip step -- "level neurons", each facing its own level -- and their spike count equals
the count of the T-step array bit for bit.

The network (Lava's own processes; the drawing is in docs/mapping.md section 10)::

    host bridge --x, flags once per window--> Sparse (the host connections' weights) --+
    Sigma D (the dither levels, set once at start-up) --> Sparse (dither weights) -+-> LIFReset
        (N T level neurons + R flag neurons per lane, reset every step) --> Sparse (1 per level
        neuron, f_r per flag neuron) --> GradedVec Z (one per lane, vth = F - 1) --count+F--> host

* **Input.** A live lane's payload crosses once, unchanged, so every level neuron's drive is the
  T-step neuron's bit for bit; an idle lane sends nothing (a zero graded payload is no event).
  The message ends with one flag per lane: the lane's R flag neurons read its first payload
  and its flag (weight 254 each), and the host sets the flag only where the payload alone is
  too small to raise them (:func:`flag_payload`), so a live lane always raises them.
* **Dither.** A Sigma neuron holds each level value (the T-step array's chip table, flattened);
  the host writes it once when the network starts, never again.
* **Count.** Each lane's R flag neurons fire iff the lane is live; through the
  readout synapse they add ``F = N T + 1`` to the lane's graded neuron Z, so Z (threshold
  F - 1) sends ``count + F`` for a live lane and nothing for an idle one, even though the idle
  lane's level neurons run.  One graded value per live gate value crosses back.

Everything here is numpy: :func:`chip_window` derives the layout from a NeuronArray (refusing,
with the reason, an array this scheme cannot reproduce), :func:`encode` and :func:`decode` are
the host's side, and :func:`simulate` is the readable statement of what the Lava network
computes (backends/lava.py builds it; tests hold the two equal, and both equal to the T-step
counts of the numpy reference).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ember_neuro.backends import numpy_ref
from ember_neuro.mappers import loihi
from ember_neuro.mappers.network import NeuronArray

BRIDGES = ("chip-side", "per-step")  # Lava's two networks (backends/lava.py open), the default first
ANSWER_STEPS = 2  # bridge -> Sparse -> LIF (one step later) -> Sparse -> graded readout (two later)
ONE_STEP = ("T = 1: the per-step network also takes one message each way per window, with N neurons "
            "per value instead of N*T + R + 1")


def one_step(array: NeuronArray) -> str | None:
    """Why the default network of `array` is the per-step one although a chip-side window could be
    built (None: no such reason): the one rule lava.open and GatePaths.fit_bridge both follow."""
    return ONE_STEP if array.timesteps == 1 else None
FLAG_WEIGHT = 254  # a flag neuron's weight on its lane's payload and flag (even: every sign mode keeps it)
READOUT_WEIGHT_MAX = loihi.WEIGHT_MAX  # flag -> Z weights (excitatory: full 8 bits)


class ChipWindowError(ValueError):
    """A neuron array the chip-side window cannot reproduce exactly; the message says why."""


@dataclass(frozen=True)
class Conn:
    """One Lava Sparse of the window: ``weights[k]`` from source column ``cols[k]`` to neuron
    ``rows[k]``, shared weight exponent ``exp``, over a source of ``n_cols`` values."""

    rows: np.ndarray
    cols: np.ndarray
    weights: np.ndarray
    exp: int
    n_cols: int

    def term(self, source: np.ndarray, size: int) -> np.ndarray:
        """(W, size) ``wshift(sum_k w_k s[col_k], e)`` per neuron for source values (W, n_cols)."""
        source = np.atleast_2d(np.asarray(source, np.int64))
        acc = np.zeros((source.shape[0], size), np.int64)
        np.add.at(acc.T, self.rows, (self.weights[:, None] * source[:, self.cols].T))
        return loihi.weight_shift(acc, self.exp)


@dataclass(frozen=True)
class ChipWindow:
    """The one-step layout of a memoryless neuron array (see the module docstring).

    Neurons: lane i's level neuron (t, c) is ``i N T + t N + c`` (it stands for the T-step
    array's neuron ``i N + c`` at window step t); lane i's flag neuron r is ``I N T + i R + r``.
    The host's message is ``[payload (payload_width) | flags (I)]``.
    """

    source: NeuronArray  # the T-step array whose counts this reproduces
    lanes: int  # I: input slots (gate values per window)
    per_lane: int  # N T level neurons per lane
    flags_per_lane: int  # R
    flag_value: int  # F = N T + 1: what a live lane's flags add to its count
    flag_payload: int  # the flag a live lane sends when its first payload alone cannot raise its flags
    host: tuple[Conn, ...]  # per host connection (the first also feeds the flag neurons)
    dither_values: np.ndarray  # (K,) the Sigma holder's values: every chip table, flattened
    dither: tuple[Conn, ...]  # per chip table: Sigma holder -> level neurons
    readout: Conn  # LIF neurons -> the lanes' graded neurons Z
    bias_mant: np.ndarray  # (M',)
    bias_exp: np.ndarray  # (M',)
    vth: int

    @property
    def size(self) -> int:
        """M': the LIF neurons of the window (level and flag neurons)."""
        return int(self.bias_mant.shape[0])

    @property
    def level_neurons(self) -> int:
        return self.lanes * self.per_lane

    @property
    def payload_width(self) -> int:
        return self.source.payload_width

    @property
    def message_width(self) -> int:
        """The host's message per window: the payload, then one flag per lane."""
        return self.payload_width + self.lanes

    @property
    def z_threshold(self) -> int:
        """Z sends v iff |v| > this: only a lane its flags raised to count + F >= F."""
        return self.flag_value - 1


def check_memoryless(array: NeuronArray) -> None:
    """The array's neurons must forget everything between window steps (du = dv = 4095, reset
    every window): a carried membrane needs the per-step network."""
    if not array.fixed:
        raise ChipWindowError("the chip-side window runs Loihi 2 fixed point only (lava-sim-float "
                              "uses the per-step network)")
    if array.reset_windows != 1:
        raise ChipWindowError("neurons whose state carries across windows (the hard membrane) need the "
                              "per-step network")
    if int(array.du) != loihi.DECAY_MAX or int(array.dv) != loihi.DECAY_MAX:
        raise ChipWindowError(f"neurons with du={array.du}, dv={array.dv} are not memoryless; the chip-side "
                              "window needs du = dv = 4095")
    if not array.host:
        raise ChipWindowError("the array has no host connection")


def check_prefix(array: NeuronArray) -> None:
    """Every neuron's chip-table input must not rise over the window (ascending levels), so that a
    neuron that fails once fails for the rest of the window and its T steps are independent."""
    total = sum(numpy_ref.table_terms(array), np.zeros((array.timesteps, array.size), np.int64))
    if array.timesteps > 1 and np.any(np.diff(total, axis=0) > 0):
        raise ChipWindowError("a neuron's dither input rises within the window (levels not ascending); "
                              "its steps are not independent")


def flag_payload(weight: int, exp: int) -> int:
    """The smallest flag f whose ``wshift(w f, e)`` reaches 1: what raises an otherwise silent flag."""
    return max(1, -(-(2 ** max(0, -exp)) // int(weight)))


def flag_weights(flag_value: int) -> np.ndarray:
    """Readout weights of one lane's flag neurons: as few as sum to F with each <= 255."""
    r = -(-int(flag_value) // READOUT_WEIGHT_MAX)
    w = np.full(r, READOUT_WEIGHT_MAX, np.int64)
    w[-1] = flag_value - READOUT_WEIGHT_MAX * (r - 1)
    return w


def payload_max(array: NeuronArray) -> list[int]:
    """Per host connection the largest fixed-point payload, 2^bits."""
    out = []
    for s in array.host:
        if s.bits <= 0:
            raise ChipWindowError(f"host connection {s.source!r} does not say its payload width")
        out.append(2 ** int(s.bits))
    return out


def term_range(w: np.ndarray, x_max: int, exp: int) -> tuple[np.ndarray, np.ndarray]:
    """(lowest, highest) of ``wshift(w x, e)`` over x in [0, x_max]: its ends (it is monotone in x)."""
    w = np.asarray(w, np.int64)
    ends = loihi.weight_shift(w * 0, exp), loihi.weight_shift(w * x_max, exp)
    return np.minimum(*ends), np.maximum(*ends)


def chip_window(array: NeuronArray) -> ChipWindow:
    """The one-step layout of `array`, or ChipWindowError saying why it cannot reproduce it exactly."""
    check_memoryless(array)
    check_prefix(array)
    t, n, lanes = array.timesteps, array.neurons_per_gate, array.n_inputs
    per_lane, n_level = n * t, lanes * n * t
    flag_value = per_lane + 1
    if 2 * per_lane + 1 >= loihi.ACT_LIMIT:
        raise ChipWindowError(f"N*T = {per_lane} spikes per value overflow the 16-bit readout synapse")
    fw = flag_weights(flag_value)
    r = len(fw)
    level = np.arange(n_level)
    lane, step = level // per_lane, (level % per_lane) // n
    parent = lane * n + level % n  # level neuron (i, t, c) stands for T-step neuron i N + c at step t
    flags = n_level + np.arange(lanes * r)
    flag_lane = np.repeat(np.arange(lanes), r)
    size = n_level + lanes * r

    # level neurons: each T-step neuron's host weights (as Lava applies them), once per step
    host_w, cols = numpy_ref.synapse_weights(array, array.host), array.host_columns()
    x_max = payload_max(array)
    low = high = sum(numpy_ref.table_terms(array), np.zeros((t, array.size), np.int64))[step, parent]
    for w, s, xm in zip(host_w, array.host, x_max, strict=True):
        lo, hi = term_range(w[parent], xm, int(s.weight_exp))
        low, high = low + lo, high + hi
    if np.any(~loihi.fits_act(np.maximum(-low, high))):
        raise ChipWindowError("a level neuron's synaptic input would exceed 16 bits")
    e0, width = int(array.host[0].weight_exp), array.payload_width
    f = flag_payload(FLAG_WEIGHT, e0)
    if np.any(~loihi.fits_act(term_range(np.full(1, FLAG_WEIGHT), x_max[0] + f, e0)[1])):
        raise ChipWindowError("a flag neuron's synaptic input would exceed 16 bits")
    host = []
    for j, (w, c, s) in enumerate(zip(host_w, cols, array.host, strict=True)):
        rows, cc, ww = level, c[parent], w[parent]
        if j == 0:  # a flag neuron reads its lane's first payload and its lane's flag
            first = c[flag_lane * n]
            rows = np.concatenate([rows, flags, flags])
            cc = np.concatenate([cc, first, width + flag_lane])
            ww = np.concatenate([ww, np.full(2 * lanes * r, FLAG_WEIGHT)])
        host.append(Conn(rows, cc, ww.astype(np.int64), int(s.weight_exp), width + lanes))
    values, dither, start = [], [], 0
    for syn, w in zip(array.tables, numpy_ref.synapse_weights(array, array.tables), strict=True):
        table = np.asarray(syn.table, np.int64)
        values.append(table.ravel())
        column = start + step * table.shape[1] + syn.column[parent]
        dither.append(Conn(level, column, w[parent].astype(np.int64), int(syn.weight_exp), -1))
        start += table.size
    dither = [Conn(d.rows, d.cols, d.weights, d.exp, start) for d in dither]
    readout = Conn(np.concatenate([lane, flag_lane]), np.arange(size),
                   np.concatenate([np.ones(n_level, np.int64), np.tile(fw, lanes)]), 0, size)
    bias = numpy_ref.bias(array)[parent]
    mant, bexp, clipped = loihi.split_bias(bias)
    if np.any(clipped) or np.any(loihi.bias_value(mant, bexp) != bias):
        raise ChipWindowError("a neuron's bias is not a Loihi bias")  # cannot happen: it is the array's
    zeros = np.zeros(lanes * r, np.int64)
    return ChipWindow(
        source=array, lanes=lanes, per_lane=per_lane, flags_per_lane=r, flag_value=int(flag_value),
        flag_payload=int(f), host=tuple(host),
        dither_values=np.concatenate(values) if values else np.zeros(0, np.int64), dither=tuple(dither),
        readout=readout, bias_mant=np.concatenate([mant, zeros]), bias_exp=np.concatenate([bexp, zeros]),
        vth=int(array.vth))


def live_lanes(window: ChipWindow, windows: int, live: np.ndarray | None = None) -> np.ndarray:
    """(W, I) which lanes carry a gate value; default: every lane."""
    if live is None:
        return np.ones((windows, window.lanes), bool)
    live = np.atleast_2d(np.asarray(live, bool))
    if live.shape != (windows, window.lanes):
        raise ValueError(f"live must be ({windows}, {window.lanes}), got {live.shape}")
    return live


def encode(window: ChipWindow, payload: np.ndarray, live: np.ndarray | None = None) -> np.ndarray:
    """The host's message of each window (W, message_width): a live lane's payload, plus the flag
    where its first payload alone would not raise its flag neurons; an idle lane sends nothing
    (a zero graded payload is no event)."""
    x = window.source.check_payload(payload)
    mask = live_lanes(window, x.shape[0], live)
    i, host = window.lanes, len(window.source.host)
    x = x * np.tile(mask, (1, host))
    first = loihi.weight_shift(FLAG_WEIGHT * x[:, :i], window.host[0].exp)
    flags = np.where(mask & (first < 1), window.flag_payload, 0)
    out = np.concatenate([x, flags], axis=1)
    if np.any(np.abs(out) >= 2 ** (loihi.PAYLOAD_BITS - 1)):
        raise ValueError(f"payload exceeds the {loihi.PAYLOAD_BITS}-bit graded spike")
    return out


def level_spikes(window: ChipWindow, message: np.ndarray) -> np.ndarray:
    """(W, M') spikes of the LIF neurons for host messages (W, message_width): one step each."""
    message = np.atleast_2d(np.asarray(message, np.int64))
    a_in = sum((c.term(message, window.size) for c in window.host),
               np.zeros((message.shape[0], window.size), np.int64))
    for c in window.dither:
        a_in = a_in + c.term(window.dither_values[None], window.size)
    if np.any(~loihi.fits_act(np.abs(a_in))):
        raise ChipWindowError("synaptic input beyond 16 bits (the layout's bound failed)")
    v = loihi.memoryless_drive(a_in, loihi.bias_value(window.bias_mant, window.bias_exp))
    return v > loihi.threshold(window.vth)


def readout(window: ChipWindow, spikes: np.ndarray) -> np.ndarray:
    """(W, I) what the lanes' graded neurons Z send: count + F for a live lane, 0 for an idle one."""
    v = window.readout.term(np.asarray(spikes, np.int64), window.lanes)  # the readout synapse's sums
    return np.where(np.abs(v) > window.z_threshold, v, 0)


def simulate(window: ChipWindow, message: np.ndarray) -> np.ndarray:
    """What the chip answers each host message (W, message_width) -> (W, I): the Lava network in numpy."""
    return readout(window, level_spikes(window, message))


def decode(window: ChipWindow, answer: np.ndarray, live: np.ndarray | None = None) -> np.ndarray:
    """(W, I) spike counts from the chip's answers; an idle lane (nothing sent back) counts 0.

    A live lane that sent nothing, or an idle lane that sent something, means the network is
    not the one this layout describes: that is an error, never a silent zero.
    """
    answer = np.atleast_2d(np.asarray(answer, np.int64))
    mask = live_lanes(window, answer.shape[0], live)
    got = answer != 0
    if np.any(got != mask):
        w, i = np.argwhere(got != mask)[0]
        raise ChipWindowError(f"window {w} lane {i}: {'an idle' if got[w, i] else 'a live'} lane "
                              f"{'answered' if got[w, i] else 'did not answer'}")
    return np.where(mask, answer - window.flag_value, 0)
