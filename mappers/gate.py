"""The dithered sigmoid gate: trained (theta, k) -> a memoryless LIF neuron facing logit levels.

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
    a_in = (a x + b d) 2^e        shared weight exponent e < 0 (a right shift) on
                                   both connections, the largest e that fits
    u = a_in << 6                 (Lava: 24-bit u must not wrap, and Lava declares the
                                   synaptic output / LIF input 16-bit -> |a_in| < 2^15)
    v = u + bias,  bias = -2^6 * 2^(B+e) * a * theta + 2^6   (last term re-centres
                                   the two floor shifts), bias = mant 2^exp,
                                   13-bit signed mantissa, exp 0..7
    spike iff v > vth = 0
Budget: |a_in| <= 2^(B+e) (a + b l_max) < 2^15 for all a, b <= 255 fixes e
(-7 at T = 8, -8 at T = 16..64, B = 12); the mapper also tries e + 1 and e + 2
(finer drive, but only smaller weight pairs fit) and keeps whichever exponent
gives the smallest measured worst-case error.  Among weight pairs it measures
the exact fixed-point transfer curve of the best candidates (every input
payload, worst case over p in [0, 1]) and keeps the most faithful.  Anything
that does not fit is clipped *and reported*, and so is a head whose exact worst
case exceeds 1/(2NT) + 0.002.

More inputs, and inputs that are not probabilities (:class:`GateInputs`).  The
same neuron computes fire = sigmoid(sum_j coef_j v_j + offset) for any number of
host payloads v_j in [0, 1], each its own connection: the attention gate has one
(v = p, coef = k, offset = -k theta); lif-refractory adds the column load and the
previous layer's load (coef = -k softplus(ref), -k sigmoid(cross)); Liquid Ember
and the temporal membrane divide an unbounded input by a calibrated scale (v =
|h| / scale, coef = k scale).  Each extra connection gets its own weights
(w_j = coef_j b 2^(B_d + e_d - B_j - e_j), the finest exponent e_j that keeps
|w_j| <= 255) and its own floor (the bias re-centres (S + 1)/2 floors).  A steep
input (coef_0 > 12) may use a 16-bit payload (graded spikes carry 24 bits) with
its own weight exponent, which the 16-bit accumulator absorbs.  The exact worst
case over the whole input box [0, 1]^S combines the realised terms of every
connection (:func:`exact_worst_case`): the spike count depends only on their sum,
the target is monotone in each input, so for every realised sum the extreme
targets are a min-plus / max-plus convolution of per-connection bin edges.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ember_neuro.gates import sigmoid
from ember_neuro.mappers import loihi
from ember_neuro.mappers.network import (
    Addressing,
    Arithmetic,
    Connection,
    GateUnit,
    MappingError,
    MappingOptions,
    NeuronGroup,
)

SELECTION_CANDIDATES = 6  # weight pairs measured exactly per unit and configuration
FIDELITY_MARGIN = 0.002  # the quality bar: worst-case error <= 1/(2NT) + this
MAX_LEVELS = 65536  # N*T; keeps l_max <= ln(2^17) < 12
MAX_TIMESTEPS = 4096  # T; the bound 1/(2T) is 1.2e-4 there
STEEP_INPUT = 12.0  # coef_0 above this also tries wider input payloads
STEEP_WITH_LOADS = 3.0  # ... and with further inputs (their weights follow the dither weight b, which a
#                         wider first payload lets grow: finer load weights)
WIDE_INPUT_BITS = (14, 16)


def check_window(timesteps: object, neurons_per_gate: object) -> None:
    """The window limits, in one place: T in 1..MAX_TIMESTEPS, N >= 1, N*T <= MAX_LEVELS (a one-line
    MappingError otherwise): the dither levels must fit Loihi's 24-bit current, and the bound
    1/(2NT) is tiny long before."""
    t, n = timesteps, neurons_per_gate
    ints = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (t, n))
    if not ints or t < 1 or n < 1 or t > MAX_TIMESTEPS or t * n > MAX_LEVELS:
        raise MappingError(f"--timesteps {t} / --neurons-per-gate {n} out of range (T in 1..{MAX_TIMESTEPS}, "
                           f"N >= 1, N*T <= {MAX_LEVELS}: the dither levels must fit Loihi's 24-bit "
                           "current, and the bound 1/(2NT) is tiny long before)")


def check_options(options: MappingOptions) -> None:
    """Refuse options the gate cannot be built with, one line each."""
    check_window(options.timesteps, options.neurons_per_gate)
    if options.input_bits != options.dither_bits or not 8 <= options.input_bits <= 12:
        raise ValueError("input_bits and dither_bits must be equal and within 8..12")
    if options.levels not in LEVEL_SETS:
        raise ValueError(f"unknown level set {options.levels!r}; use {' or '.join(LEVEL_SETS)}")
    if not (isinstance(options.level_floor, (float, int)) and 1e-6 <= options.level_floor <= 1.0):
        raise ValueError(f"level floor must be within 1e-6..1, got {options.level_floor!r}")


LEVEL_SETS = ("uniform", "log", "auto")
CLOSING_LEAK = 0.1  # "auto": attention groups with a unit whose leak is below this get log levels


def resolve_levels(levels: str, units: tuple[GateUnit, ...], relative: bool) -> str:
    """The level set of one group.  "auto": log where the relative error of small fires decides the
    model -- a ``relative`` group (an attention gate: with leak < CLOSING_LEAK its output is its
    fire, and rows are renormalised) in which some gate can close -- uniform elsewhere: Liquid
    Ember's gates keep leak + (1 - leak) fire >= leak, and temporal-lif's membrane fire scales a
    whole MLP output, so their absolute error is what counts (measured: docs/mapping.md)."""
    if levels != "auto":
        return levels
    closing = relative and min(u.leak for u in units) < CLOSING_LEAK
    return "log" if closing else "uniform"


def level_points(nt: int, levels: str = "uniform", floor: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """The N*T fire thresholds q_m and the N*T + 1 decode values d_n of a level set.

    A gate whose N neurons spike n times over the window read fire = d_n; it spikes
    n times iff q_{n-1} < fire <= q_n.  "uniform": q_m = (m + 1/2)/(NT), d_n = n/(NT),
    the best absolute error any NT binary spikes give (1/(2NT)).  "log": uniform in
    w = log(fire + floor), i.e. fine steps where a gate is nearly closed and coarse
    ones near 1.  Why: with leak ~ 0 a gate's output *is* its fire, and a query row
    is renormalised afterwards, so what counts is the relative error of small fires
    -- uniform levels round every fire below 1/(2NT) to 0 and wipe out rows whose
    keys all lie below threshold.  The per-gate worst case grows (``NeuronGroup.bound``).
    """
    if levels == "uniform":
        return (np.arange(nt, dtype=np.float64) + 0.5) / nt, np.arange(nt + 1, dtype=np.float64) / nt
    if levels != "log":
        raise ValueError(f"unknown level set {levels!r}; use uniform or log")
    lo, hi = math.log(floor), math.log(1.0 + floor)

    def fire(w: np.ndarray) -> np.ndarray:
        return np.exp(lo + w * (hi - lo)) - floor

    d = fire(np.arange(nt + 1, dtype=np.float64) / nt)
    d[0], d[-1] = 0.0, 1.0
    return fire((np.arange(nt, dtype=np.float64) + 0.5) / nt), d


def logit_levels(timesteps: int, neurons_per_gate: int, levels: str = "uniform",
                 floor: float = 0.01) -> np.ndarray:
    """The N*T ascending levels l_m = logit(q_m) (uniform: logit((m + 1/2) / (N T)))."""
    q = level_points(timesteps * neurons_per_gate, levels, floor)[0]
    return np.log(q / (1.0 - q))


def dither_table(levels: np.ndarray, timesteps: int, neurons_per_gate: int) -> np.ndarray:
    """(T, N) table: channel c at step t carries -l[t N + c] (ascending in t)."""
    return -levels.reshape(timesteps, neurons_per_gate)


def fixed_dither_table(levels: np.ndarray, timesteps: int, neurons_per_gate: int,
                       bits: int) -> np.ndarray:
    """The dither table as integer graded payloads: -round(l 2^bits)."""
    return -np.rint(levels * 2.0**bits).astype(np.int64).reshape(timesteps, neurons_per_gate)


def weight_ratios(k: float, wmax: int = loihi.WEIGHT_MAX) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate (a, b, relative error) arrays with a/b ~ k, 0 <= a, 1 <= b <= wmax, best first.

    a = round(k b) for every dither weight b; ties prefer larger b: a larger dither weight means
    a finer logit resolution.
    """
    b = np.arange(1, wmax + 1)
    a = np.clip(np.rint(k * b), 0, wmax).astype(np.int64)
    err = np.abs(a / b - k) / k
    order = np.lexsort((-b, err))
    return a[order], b[order], err[order]


def best_weight_ratio(k: float, wmax: int = loihi.WEIGHT_MAX) -> list[tuple[int, int, float]]:
    """:func:`weight_ratios` as (a, b, relative error) tuples, best first."""
    return [(int(a), int(b), float(e)) for a, b, e in zip(*weight_ratios(k, wmax), strict=True)]


def shared_weight_exponent(bits: int, lmax: float) -> int:
    """Largest exponent e (finest resolution) with 255 (1 + l_max) 2^(bits+e) < 2^15.

    The synaptic input a_in = (a x + b d) 2^e must fit the 16-bit signed
    dendritic accumulator Lava declares for Sparse/Dense outputs (which also
    keeps u = a_in << 6 far from wrapping in 24 bits); within that budget a
    larger e resolves the drive more finely.  Lava's CPU models do not enforce
    the 16 bits, Loihi does -- so the mapper does.
    """
    e = 0
    while e > loihi.WEIGHT_EXP_MIN and not loihi.fits_act(loihi.WEIGHT_MAX * (1.0 + lmax)
                                                           * 2.0 ** (bits + e)):
        e -= 1
    return e


SEARCH_OFFSET = np.int64(1) << 40  # > any |drive| + |bias| of a neuron in the 24-bit budget


def count_above(terms: np.ndarray, sequence: np.ndarray, base: np.ndarray) -> np.ndarray:
    """For each item, how many terms t of its sequence give base + t > 0: one binary search.

    ``terms`` (G, K): the K terms of each of G sequences (any order); ``sequence``: each item's
    sequence; ``base``: each item's constant part (the shapes of ``sequence`` and ``base`` broadcast).
    This is how a memoryless neuron facing ascending levels counts its spikes without stepping
    (mappers/gate.py, the emulator's counts by search): one home for the search.  The sequences sit
    SEARCH_OFFSET apart in one sorted array, so their ranges never interleave.
    """
    terms = np.asarray(terms, np.int64).reshape(len(terms), -1)
    flat = np.sort(-terms, axis=1)
    asc = (flat + (np.arange(len(terms), dtype=np.int64) * SEARCH_OFFSET)[:, None]).ravel()
    sequence = np.asarray(sequence, np.int64)
    return np.searchsorted(asc, sequence * SEARCH_OFFSET + np.asarray(base, np.int64), side="left") \
        - sequence * flat.shape[1]


def counts_for_drive(drive: np.ndarray, dither_terms: np.ndarray, bias: int) -> np.ndarray:
    """Spike counts for realised host drives (a_in units), by binary search over the dither terms.

    A neuron spikes at level m iff ((drive + D_m) << 6) + bias > 0: the count is how many
    dither terms D_m pass that (:func:`count_above`).
    """
    shifted = loihi.act_shift(np.asarray(dither_terms, np.int64).ravel())[None]
    base = loihi.act_shift(np.asarray(drive, np.int64)) + int(bias)
    return count_above(shifted, np.zeros(base.shape, np.int64), base)


@dataclass(frozen=True)
class GateInputs:
    """What a group of sigmoid gates computes:

        fire_u = sigma(coef[u, 0] (v_0 - center[u]) + sum_{j>0} coef[u, j] v_j)

    v_j = |x_j| / scale[u, j] in [0, 1] is host payload j of the unit (source
    ``sources[j]``; the first is always "input", whose threshold is ``center`` in
    the same normalised units).  Values beyond the scale are clipped to 1 in
    fixed point and counted as saturated by the caller.
    """

    sources: tuple[str, ...]
    coef: np.ndarray  # (U, S) logits per unit of normalised input
    scale: np.ndarray  # (U, S) the value each normalised input 1 stands for
    center: np.ndarray  # (U,) normalised input-0 value where the drive crosses 0

    @property
    def offset(self) -> np.ndarray:
        """(U,) the constant logit term, -coef_0 center."""
        return -self.coef[:, 0] * self.center

    @staticmethod
    def probability(units: tuple[GateUnit, ...]) -> GateInputs:
        """One input in [0, 1] (an attention probability): sigma(k (p - theta))."""
        k = np.array([[u.k] for u in units], dtype=np.float64)
        theta = np.array([u.theta for u in units], dtype=np.float64)
        return GateInputs(("input",), k, np.ones_like(k), theta)


@dataclass(frozen=True)
class _Config:
    """Group-level fixed-point choices: payload bits and weight exponent per connection."""

    bits: tuple[int, ...]  # per host input
    exps: tuple[int, ...]  # per host input
    dither_exp: int

    def shift(self, j: int, dither_bits: int) -> int:
        """Delta_j = (B_j + e_j) - (B_d + e_d): input j's terms are 2^Delta_j coarser than the dither's."""
        return self.bits[j] + self.exps[j] - dither_bits - self.dither_exp


@functools.lru_cache(maxsize=64)
def _bins(bits: int, coef: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Payloads 0..2^bits and the ideal logit range coef * v over each payload's bin of v in [0, 1].

    Cached (read-only arrays): every candidate weight pair of a unit measures the same bins."""
    x = np.arange(2**bits + 1, dtype=np.int64)
    lo = np.clip((x - 0.5) / 2**bits, 0.0, 1.0) * coef
    hi = np.clip((x + 0.5) / 2**bits, 0.0, 1.0) * coef
    out = (x, np.minimum(lo, hi), np.maximum(lo, hi))
    for a in out:
        a.setflags(write=False)
    return out


def _by_term(terms: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, ...]:
    """Distinct realised terms (ascending) with the min / max ideal logit over the payloads giving each.

    A connection's term, one weight times an ascending payload floored by its exponent, is
    monotone in the payload, so equal terms form runs; the bin edges (:func:`_bins`) are monotone
    in the payload too, so a run's extremes are at its two ends -- no sort and no reduction over
    each run (the mapper's hot path).  Terms that are not monotone take the general way.
    """
    terms = np.asarray(terms)
    if terms.size > 1 and terms[0] > terms[-1]:
        terms, lo, hi = terms[::-1], lo[::-1], hi[::-1]
    if np.any(terms[1:] < terms[:-1]):
        values, inverse = np.unique(terms, return_inverse=True)
        lo_t, hi_t = np.full(values.size, np.inf), np.full(values.size, -np.inf)
        np.minimum.at(lo_t, inverse, lo)
        np.maximum.at(hi_t, inverse, hi)
        return values, lo_t, hi_t
    starts = np.flatnonzero(np.r_[True, terms[1:] != terms[:-1]])
    ends = np.r_[starts[1:] - 1, terms.size - 1]
    return terms[starts], np.minimum(lo[starts], lo[ends]), np.maximum(hi[starts], hi[ends])


def _combine(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Distinct sums of two connections' terms, with min-plus / max-plus combined ideal ranges.

    The larger connection is laid out densely over its term range (unreachable terms +-inf, which
    no min or max keeps), so each term of the smaller one shifts it by a slice: one vectorised
    min and max per term, no index arrays (the mapper's hot path with several inputs).
    """
    (va, loa, hia), (vb, lob, hib) = (a, b) if a[0].size >= b[0].size else (b, a)
    base = int(va[0] + vb[0])
    span = int(va[-1] - va[0]) + 1
    lo_a, hi_a = np.full(span, np.inf), np.full(span, -np.inf)
    lo_a[va - va[0]], hi_a[va - va[0]] = loa, hia
    size = span + int(vb[-1] - vb[0])
    lo, hi = np.full(size, np.inf), np.full(size, -np.inf)
    for v, lv, hv in zip((vb - vb[0]).tolist(), lob.tolist(), hib.tolist(), strict=True):
        at = slice(v, v + span)
        np.minimum(lo[at], lo_a + lv, out=lo[at])
        np.maximum(hi[at], hi_a + hv, out=hi[at])
    keep = np.isfinite(lo)
    return np.flatnonzero(keep) + base, lo[keep], hi[keep]


def exact_worst_case(weights: np.ndarray, coef: np.ndarray, cfg: _Config, bias: int, offset: float,
                     dither_terms: np.ndarray, decode_values: np.ndarray | None = None) -> float:
    """Exact sup over the input box [0, 1]^S of |rate - sigma(sum_j coef_j v_j + offset)|.

    Every host input j contributes the floored term (w_j x_j) >> -e_j for its
    payload x_j; the spike count depends only on the sum D of those terms
    (:func:`counts_for_drive`), and the target is monotone in each v_j.  So for
    each reachable D the extreme targets are min / max over all payload
    combinations summing to D of the ideal bin edges -- combined connection by
    connection (:func:`_combine`).  With one input this is every payload bin at
    both edges.
    """
    combined = None
    for j, (w, c) in enumerate(zip(weights, coef, strict=True)):
        x, lo, hi = _bins(cfg.bits[j], float(c))
        term = _by_term(loihi.weight_shift(int(w) * x, cfg.exps[j]), lo, hi)
        combined = term if combined is None else _combine(combined, term)
    drive, lo, hi = combined
    counts = counts_for_drive(drive, dither_terms, bias)
    rate = counts / dither_terms.size if decode_values is None else decode_values[counts]
    return float(max(np.abs(rate - sigmoid(lo + offset)).max(), np.abs(rate - sigmoid(hi + offset)).max()))


def gate_bias(a: int, center: float, cfg: _Config, n_inputs: int) -> float:
    """The bias that puts the drive's zero at input-0 value `center`, plus the floors' re-centring.

    With the *realised* first weight a, the input term is a 2^(B_0 + e_0) per unit of
    normalised input, so -a 2^(B_0 + e_0) center (shifted by 6 into v) crosses zero
    exactly at `center` whatever the slope's rounding.  Each of the n_inputs + 1
    connections floors its term (on average -1/2 unit), so (n_inputs + 1)/2 units
    are added back.
    """
    per_input = a * 2.0 ** (cfg.bits[0] + cfg.exps[0])
    return 2**loihi.ACT_SHIFT * (-per_input * center + (n_inputs + 1) / 2)


def _choose_unit(coef: np.ndarray, center: float, cfg: _Config, dither_bits: int, lmax: float,
                 dither: np.ndarray, whole_box: bool = True, decode_values: np.ndarray | None = None):
    """Pick the weights of one unit: the candidate with the smallest *measured* error.

    The first input's weight a and the dither weight b form the best rational
    approximations of coef_0 2^-Delta_0; each further input's weight follows from b.
    Candidates are ranked by a predicted error (slope error * max|x sigma'(x)| =
    0.224, plus the drive resolution 1/(4 S b)); the best few are evaluated
    exactly on the first input alone (the other inputs at 0), and the chosen one
    over the whole input box (unless ``whole_box`` is False).  Returns (weights, b,
    mant, exp, clipped, worst) or None if nothing fits the 16-bit accumulator.
    """
    units_per_b = 2.0 ** (dither_bits + cfg.dither_exp)
    ratio = coef[0] * 2.0 ** -cfg.shift(0, dither_bits)
    dither_terms = None
    if ratio > 0:
        a, b, err = weight_ratios(ratio)
    else:
        a, b, err = np.zeros(1, np.int64), np.full(1, loihi.WEIGHT_MAX), np.zeros(1)
    # every candidate pair scored at once: its further weights, whether the accumulator holds it,
    # its bias, its predicted error
    further = [np.clip(np.rint(c * b * 2.0 ** -cfg.shift(j, dither_bits)), -loihi.WEIGHT_MAX,
                       loihi.WEIGHT_MAX).astype(np.int64) for j, c in enumerate(coef) if j > 0]
    s_u = b * units_per_b
    pos = a * 2.0 ** (cfg.bits[0] + cfg.exps[0])
    neg = np.zeros(b.size)
    for j, w in enumerate(further, start=1):
        neg = neg + np.abs(w) * 2.0 ** (cfg.bits[j] + cfg.exps[j])
    fits = loihi.fits_act(np.maximum(pos, neg) + s_u * lmax)
    mant, exp, clipped = loihi.split_bias(gate_bias(a, center, cfg, len(coef)))
    predicted = 0.224 * err + 0.25 * (1.0 + 2.0 ** (exp - 1) / 64) / s_u
    kept = np.flatnonzero(fits)
    ranked = kept[np.lexsort((predicted[kept], clipped[kept]))]  # stable: ties keep the ratio order
    scored = [(bool(clipped[i]), int(a[i]), int(b[i]), [int(w[i]) for w in further], int(mant[i]),
               int(exp[i])) for i in ranked[:SELECTION_CANDIDATES]]
    best = None
    offset = -float(coef[0]) * center
    first_only = _Config(cfg.bits[:1], cfg.exps[:1], cfg.dither_exp)
    for clipped, a, b, others, mant, exp in scored:
        dither_terms = loihi.weight_shift(b * dither, cfg.dither_exp)
        worst = exact_worst_case(np.array([a]), coef[:1], first_only, mant * 2**exp, offset, dither_terms,
                                 decode_values) + load_rounding(coef, others, b, cfg, dither_bits)
        if best is None or (clipped, worst) < (best[4], best[5]):
            best = (np.array([a, *others], dtype=np.int64), b, mant, exp, clipped, worst)
    if best is not None and len(coef) > 1 and whole_box:  # the chosen weights, over the whole box
        weights, b, mant, exp, clipped, _ = best
        dither_terms = loihi.weight_shift(b * dither, cfg.dither_exp)
        best = (weights, b, mant, exp, clipped,
                exact_worst_case(weights, coef, cfg, mant * 2**exp, offset, dither_terms, decode_values))
    return best


def load_rounding(coef: np.ndarray, others: list[int], b: int, cfg: _Config, dither_bits: int) -> float:
    """What rounding the further inputs' weights costs at most: 0.25 (sigmoid's largest slope) x the
    summed logit error |coef_j - realised_j| at v_j = 1.  The further weights follow the dither
    weight b (w_j = coef_j b 2^-Delta_j), so a small b -- a steep first input -- makes them coarse;
    ranking candidates by the first input alone would miss that (measured on lif-refractory)."""
    realised = [w * 2.0 ** cfg.shift(j, dither_bits) / b for j, w in enumerate(others, start=1)]
    return 0.25 * sum(abs(float(c) - r) for c, r in zip(coef[1:], realised, strict=True))


def _configs(coef: np.ndarray, n_inputs: int, dither_bits: int, lmax: float) -> list[_Config]:
    """Group-level choices to measure: dither exponents e_all .. e_all + 2 (e_all: every pair fits),
    12-bit payloads sharing the dither's exponent, and for steep first inputs 14- and 16-bit payloads
    whose exponent absorbs the extra bits; further inputs get the finest exponent that fits later."""
    e_all = shared_weight_exponent(dither_bits, lmax)
    out = []
    for e_d in (e_all, e_all + 1, e_all + 2):
        widths = [dither_bits]
        if n_inputs == 1 and float(np.max(coef[:, 0])) > STEEP_INPUT:
            widths += list(WIDE_INPUT_BITS)
        elif n_inputs > 1 and float(np.max(coef[:, 0])) > STEEP_WITH_LOADS:
            widths += list(WIDE_INPUT_BITS[:1])  # 14 bits: the exact box check of 16 costs ~0.5 s a unit
        for bits in widths:
            e_in = max(loihi.WEIGHT_EXP_MIN, e_d - (bits - dither_bits))
            out.append(_Config((bits,) + (dither_bits,) * (n_inputs - 1), (e_in,) + (e_d,) * (n_inputs - 1),
                               e_d))
    return out


def _finest_exponents(cfg: _Config, coef: np.ndarray, bs: np.ndarray, dither_bits: int) -> _Config:
    """Each further input's exponent: the smallest (finest weights) with every |w_j| <= 255."""
    exps = list(cfg.exps)
    for j in range(1, coef.shape[1]):
        need = np.abs(coef[:, j] * bs) * 2.0 ** (dither_bits + cfg.dither_exp - cfg.bits[j])
        e = loihi.WEIGHT_EXP_MIN
        while e < loihi.WEIGHT_EXP_MAX and np.max(need * 2.0**-e, initial=0.0) > loihi.WEIGHT_MAX:
            e += 1
        exps[j] = e
    return _Config(cfg.bits, tuple(exps), cfg.dither_exp)


def layer_scales(calibration: Mapping | None, key: str, n_layer: int, what: str) -> list[float]:
    """The calibrated payload scale of each layer, or a one-line ValueError saying why not."""
    scales = (calibration or {}).get(key)
    if scales is None or len(scales) != n_layer:
        raise ValueError(f"{what}: no calibrated payload scale per layer ({key}); map through "
                         "ember_neuro.deploy.mapping, which measures it on validation text")
    for layer, s in enumerate(scales):
        if not (isinstance(s, (int, float)) and math.isfinite(s) and s > 0):
            raise ValueError(f"{what}: the payload scale of layer {layer} cannot be calibrated (observed "
                             f"maximum {s!r} on the calibration text; outputs constantly zero?)")
    return [float(s) for s in scales]


def scaled_inputs(units: list[GateUnit], scale: np.ndarray) -> GateInputs:
    """sigmoid(k (|x| - theta)) with |x| / scale as the payload: coef = k scale, center = theta / scale.

    For unbounded inputs (a CfC output, the membrane V): each unit's payload is normalised by
    its layer's calibrated scale, so the gate is the same neuron as one on a probability."""
    k = np.array([u.k for u in units])
    theta = np.array([u.theta for u in units])
    coef = (k * scale)[:, None]
    return GateInputs(("input",), coef, scale[:, None].astype(np.float64), theta / scale)


def _check_unit(u: GateUnit) -> None:
    for name in ("theta", "k", "leak"):
        val = getattr(u, name)
        if not math.isfinite(val):
            raise ValueError(f"{u.name}: {name} is {val}; cannot map a non-finite parameter")
    if u.k <= 0:
        raise ValueError(f"{u.name}: steepness k = {u.k} must be > 0 (k = softplus(raw))")


def map_gates(units: list[GateUnit] | tuple[GateUnit, ...], options: MappingOptions,
              name: str = "gate", inputs: GateInputs | None = None, addressing: Addressing | None = None,
              relative: bool = False) -> NeuronGroup:
    """Pure function: trained gate units + options -> a neuron group (float and fixed).

    ``inputs`` describes the host payloads (default: one input in [0, 1]); ``addressing`` how the
    host's values reach the units (stored with the group); ``relative``: small fires need relative
    precision (``--levels auto`` may then choose log levels, :func:`resolve_levels`).
    """
    check_options(options)
    units = tuple(units)
    if not units:
        raise ValueError("no gate units to map")
    for u in units:
        _check_unit(u)
    spec = GateInputs.probability(units) if inputs is None else inputs
    finite = np.all(np.isfinite(spec.coef)) and np.all(np.isfinite(spec.scale))
    if not finite or not np.all(spec.scale > 0):
        raise ValueError(f"{name}: input coefficients must be finite and scales positive")
    t, n = int(options.timesteps), int(options.neurons_per_gate)
    level_set = resolve_levels(options.levels, units, relative)
    levels = logit_levels(t, n, level_set, options.level_floor)
    decode_values = None if level_set == "uniform" else level_points(t * n, level_set, options.level_floor)[1]
    lmax = float(np.abs(levels).max())
    bits = options.dither_bits
    dither_fixed = fixed_dither_table(levels, t, n, bits)
    s_count = len(spec.sources)

    def choose_all(cfg: _Config, whole_box: bool = False) -> list:
        return [_choose_unit(spec.coef[i], float(spec.center[i]), cfg, bits, lmax, dither_fixed,
                             whole_box=whole_box, decode_values=decode_values) for i in range(len(units))]

    best = None
    # Measure every configuration on the first input (plus, with several inputs, what rounding their
    # weights costs); keep the one whose worst unit is best.
    for cfg in _configs(spec.coef, s_count, bits, lmax):
        choice = choose_all(cfg)
        if any(c is None for c in choice):
            continue
        if s_count > 1:  # finest exponents for the further inputs, then choose again with them
            cfg = _finest_exponents(cfg, spec.coef, np.array([c[1] for c in choice]), bits)
            choice = choose_all(cfg)
            if any(c is None for c in choice):
                continue
        worst = max(c[-1] for c in choice)
        if best is None or worst < best[1] - 1e-12:
            best = (cfg, worst, choice)
    if best is None:  # cannot happen for a, b = 1 unless N*T is absurd; say so, never guess
        raise ValueError(f"no weight pair fits Loihi's 16-bit synaptic input at N*T = {n * t}")
    cfg, _, choice = best
    if s_count > 1:  # the chosen configuration's exact worst case over the whole input box
        choice = choose_all(cfg, whole_box=True)
    weights = np.stack([c[0] for c in choice])  # (U, S)
    w_d = np.array([c[1] for c in choice], dtype=np.int64)
    group = NeuronGroup(name=name, units=units, timesteps=t, neurons_per_gate=n, levels=levels,
                        level_set=level_set,
                        float_params=None, fixed_params=None, k_effective=None,  # type: ignore[arg-type]
                        fixed_worst_error=None, decode_values=decode_values,  # type: ignore[arg-type]
                        addressing=addressing)
    warnings, saturated = _report(units, spec, choice, cfg, bits, group.bound + FIDELITY_MARGIN)
    fixed = Arithmetic(
        fixed=True,
        connections=(*(Connection(src, weights[:, j], cfg.exps[j], bits=cfg.bits[j], scale=spec.scale[:, j])
                       for j, src in enumerate(spec.sources)),
                     Connection("dither", w_d, cfg.dither_exp, table=dither_fixed, bits=bits)),
        bias_mant=np.array([c[2] for c in choice], dtype=np.int64),
        bias_exp=np.array([c[3] for c in choice], dtype=np.int64),
        du=loihi.DECAY_MAX, dv=loihi.DECAY_MAX, vth=0)
    float_params = Arithmetic(
        fixed=False,
        connections=(*(Connection(src, spec.coef[:, j] / spec.scale[:, j])
                       for j, src in enumerate(spec.sources)),
                     Connection("dither", np.ones(len(units)), table=dither_table(levels, t, n))),
        bias_mant=spec.offset.copy(), bias_exp=np.zeros(len(units)), du=1.0, dv=1.0, vth=0.0)
    ratio = weights[:, 0] / np.maximum(w_d, 1) * 2.0 ** cfg.shift(0, bits)
    group = dataclasses.replace(
        group, float_params=float_params, fixed_params=fixed, k_effective=ratio / spec.scale[:, 0],
        fixed_worst_error=np.array([c[5] for c in choice]),
        warnings=tuple(warnings), saturated=tuple(dict.fromkeys(saturated)))
    return dataclasses.replace(group, host_constant=host_constants(group))


def input_corners(group: NeuronGroup) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every unit at every corner of its input box (each host input at 0 or its payload scale):
    (unit_index (2^S U,), {source: values})."""
    sources = group.fixed_params.host_sources
    u = len(group.units)
    corners = np.array(np.meshgrid(*[[0.0, 1.0]] * len(sources), indexing="ij")).reshape(len(sources), -1)
    idx = np.tile(np.arange(u), corners.shape[1])
    values = {}
    for j, src in enumerate(sources):
        scale = group.fixed_params.connection(src).scale
        full = np.ones(u) if scale is None else np.asarray(scale, np.float64)
        values[src] = np.repeat(corners[j], u) * full[idx]
    return idx, values


def host_constants(group: NeuronGroup) -> np.ndarray | None:
    """(U,) the constant fire of each unit whose trained fire stays within the group's bound of a
    constant over its whole input box (NaN for the others), or None when there is none.

    Such a unit needs no neurons: the midpoint of its fire range is at least as close to the trained
    fire, everywhere, as the spikes of N neurons over T steps can be (their limit is the bound).
    The fire is monotone in every input, so its range over the box is reached at the corners.
    """
    if group.carries_state:
        return None
    idx, values = input_corners(group)
    fire = group.target(values, idx).reshape(-1, len(group.units))
    lo, hi = fire.min(axis=0), fire.max(axis=0)
    flat = (hi - lo) / 2 <= group.bound
    if not flat.any():
        return None
    return np.where(flat, (hi + lo) / 2, np.nan)


def _report(units: tuple[GateUnit, ...], spec: GateInputs, choice: list, cfg: _Config, bits: int,
            bar: float) -> tuple[list[str], list[str]]:
    """Warnings (never silent) for steep, clipped or imprecise units; names of saturated ones."""
    warnings: list[str] = []
    saturated: list[str] = []
    for i, (u, (weights, b, _, _, clipped, worst)) in enumerate(zip(units, choice, strict=True)):
        coef0 = float(spec.coef[i, 0])
        if worst > bar and not clipped:
            warnings.append(
                f"{u.name}: k = {u.k:.3g} is too steep for the {cfg.bits[0]}-bit input payload: worst-case "
                f"fixed-point error {worst:.4f} exceeds the level bound + {FIDELITY_MARGIN} = {bar:.4f}")
        if clipped:
            saturated.append(u.name)
            warnings.append(
                f"{u.name}: bias -k*theta = {float(spec.offset[i]):.3g} does not fit the 13-bit mantissa "
                "* 2^7 at any weight scale; clipped (fire curve saturates over the input range)")
        ratio = coef0 * 2.0 ** -cfg.shift(0, bits)
        realised = int(weights[0]) / b
        if ratio > loihi.WEIGHT_MAX:
            saturated.append(u.name)
            warnings.append(f"{u.name}: k = {u.k:.3g} exceeds what 8-bit weights hold; slope clipped to "
                            f"{int(weights[0])}/{b}")
        elif ratio > 0 and abs(realised - ratio) / ratio > 0.01:
            warnings.append(f"{u.name}: k = {u.k:.4g} realised as {int(weights[0])}/{b} "
                            f"(relative error {abs(realised - ratio) / ratio:.2%})")
        for j in range(1, len(spec.sources)):
            if abs(int(weights[j])) == loihi.WEIGHT_MAX:
                warnings.append(f"{u.name}: the {spec.sources[j]} weight is clipped at 8 bits")
    return warnings, saturated
