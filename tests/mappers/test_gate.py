"""Property tests of the pure mapping function (no simulator needed).

`counts_for_drive` evaluates the exact fixed-point transfer of a memoryless neuron;
the emulator/Lava tests check that the full dynamics agree with it.
"""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ember_neuro.backends import numpy_ref
from ember_neuro.gates import fire_curve_np, sigmoid
from ember_neuro.mappers import GateUnit, MappingOptions, loihi, map_gates
from ember_neuro.mappers.gate import (
    _by_term,
    _combine,
    _Config,
    counts_for_drive,
    exact_worst_case,
    fixed_dither_table,
    logit_levels,
)
from ember_neuro.mappers.loihi import BIAS_EXP_MAX, BIAS_MANT_MAX, WEIGHT_MAX

pytestmark = pytest.mark.torchfree

GRID = np.linspace(0.0, 1.0, 1001)


def float_rates(mapped, i, x):
    fp = mapped.float_params
    w_in, dither = fp.connection("input"), fp.connection("dither")
    drive = w_in.weight[i] * x[:, None, None] + dither.weight[i] * dither.table[None] + fp.bias_mant[i]
    return (drive > fp.vth).sum(axis=(1, 2)) / (mapped.timesteps * mapped.neurons_per_gate)


def fixed_rates(mapped, i, x):
    """Rates of unit i over x from the numpy reference's full dynamics (not the mapper's shortcut)."""
    array = mapped.layout(np.full(x.size, i), True)
    counts = numpy_ref.rasters(array, mapped.encode(x, True))[0].sum(axis=0)
    return mapped.decode(counts.reshape(-1, mapped.neurons_per_gate).sum(axis=1))


unit_strategy = st.builds(
    lambda th, k: GateUnit(0, 0, th, 0.7, k),
    st.floats(-1.0, 2.0),
    st.floats(0.05, 50.0),
)


@settings(max_examples=60, deadline=None)
@given(unit=unit_strategy, t=st.sampled_from([1, 2, 8, 16, 32, 64]), n=st.sampled_from([1, 2, 4]))
def test_mapping_properties(unit, t, n):
    m = map_gates([unit], MappingOptions(timesteps=t, neurons_per_gate=n))
    target = fire_curve_np(GRID, unit.theta, unit.k)
    # float: exactly the quantised sigmoid -> within the physical bound
    assert np.abs(float_rates(m, 0, GRID) - target).max() <= m.bound + 1e-9
    fp = m.fixed_params
    w_in, dither = fp.connection("input"), fp.connection("dither")
    a, b = int(w_in.weight[0]), int(dither.weight[0])
    assert 0 <= a <= WEIGHT_MAX and 1 <= b <= WEIGHT_MAX
    assert -BIAS_MANT_MAX - 1 <= int(fp.bias_mant[0]) <= BIAS_MANT_MAX
    assert 0 <= int(fp.bias_exp[0]) <= BIAS_EXP_MAX
    assert -8 <= w_in.weight_exp <= 7 and -8 <= dither.weight_exp <= 7
    # fits Lava's declared 16-bit synaptic output for every payload and dither level
    # (and so the 24-bit current never wraps)
    max_ain = (a * 2**w_in.bits * 2.0**w_in.weight_exp
               + b * int(np.abs(dither.table).max()) * 2.0**dither.weight_exp)
    assert max_ain < 2**15
    err = np.abs(fixed_rates(m, 0, GRID) - target).max()
    assert err <= m.fixed_worst_error[0] + 1e-12  # the mapper's exact worst case really bounds it
    if unit.name not in m.saturated and unit.k <= 20:
        # fixed point: within the bar (1/(2NT) + 0.002) for every trained-range slope
        assert err <= m.bound + 0.002


@pytest.mark.parametrize("theta,k", [(-0.34, 1.0), (-0.72, 2.0), (1.14, 2.82), (1.6, 8.0),
                                     (0.36, 50.0), (0.0, 0.05)])
def test_bypass_saturating_and_steep_heads(theta, k):
    u = GateUnit(4, 1, theta, 0.7, k)
    for t in (8, 16, 32, 64):
        m = map_gates([u], MappingOptions(timesteps=t))
        err = np.abs(fixed_rates(m, 0, GRID) - fire_curve_np(GRID, theta, k)).max()
        assert err <= m.bound + 0.002, (t, err)


def test_bound_shrinks_and_levels_ascend():
    bounds = [map_gates([GateUnit(0, 0, 0.2, 0.7, 2.0)], MappingOptions(timesteps=t)).bound
              for t in (8, 16, 32, 64)]
    assert bounds == [1 / 16, 1 / 32, 1 / 64, 1 / 128]
    lv = logit_levels(8, 2)
    assert np.all(np.diff(lv) > 0) and lv[0] == pytest.approx(-math.log(31))
    m = map_gates([GateUnit(0, 0, 0.2, 0.7, 2.0)], MappingOptions(timesteps=8, neurons_per_gate=2))
    # each channel's dither levels ascend over the window (so residuals cannot matter)
    assert np.all(np.diff(-m.fixed_params.connection("dither").table, axis=0) > 0)


def test_slope_is_a_precise_weight_ratio():
    m = map_gates([GateUnit(0, 0, 0.3, 0.7, 0.8123)], MappingOptions(timesteps=32))
    assert abs(m.k_effective[0] - 0.8123) / 0.8123 < 2e-3


def test_huge_slopes_are_reported_and_clipped_beyond_the_weights():
    m = map_gates([GateUnit(2, 3, 0.5, 0.7, 400.0)], MappingOptions(timesteps=16))
    assert m.fixed_params.connection("input").bits > 12  # a wide payload holds the slope ...
    assert any(w.startswith("L2H3") and "too steep" in w for w in m.warnings)  # ... but not its error
    m = map_gates([GateUnit(2, 3, 0.5, 0.7, 9000.0)], MappingOptions(timesteps=16))
    assert "L2H3" in m.saturated and any("exceeds what 8-bit weights hold" in w for w in m.warnings)


def test_encode_decode():
    m = map_gates([GateUnit(0, 0, 0.2, 0.7, 2.0)], MappingOptions(timesteps=16))
    assert m.encode(np.array([0.0, 0.5, 1.0, 1.5, -0.5]), True).tolist() == [0, 2048, 4096, 4096, 2048]
    assert m.decode(np.array([0, 8, 16])).tolist() == [0.0, 0.5, 1.0]


@pytest.mark.parametrize("unit,match", [
    (GateUnit(0, 0, float("nan"), 0.7, 1.0), "non-finite"),
    (GateUnit(0, 0, 0.1, 0.7, float("inf")), "non-finite"),
    (GateUnit(0, 0, 0.1, 0.7, 0.0), "must be > 0"),
])
def test_bad_units_rejected(unit, match):
    with pytest.raises(ValueError, match=match):
        map_gates([unit], MappingOptions(timesteps=8))


@pytest.mark.parametrize("opts,match", [
    (MappingOptions(timesteps=0), "--timesteps 0 / --neurons-per-gate 1 out of range"),
    (MappingOptions(timesteps=8, neurons_per_gate=0), "--neurons-per-gate 0 out of range"),
    (MappingOptions(timesteps=70000), r"T in 1..4096"),
    (MappingOptions(timesteps=4096, neurons_per_gate=32), r"N\*T <= 65536"),
])
def test_bad_options_rejected(opts, match):
    with pytest.raises(ValueError, match=match):
        map_gates([GateUnit(0, 0, 0.1, 0.7, 1.0)], opts)


def test_mapping_is_pure():
    units = [GateUnit(0, h, 0.1 * h, 0.7, 1.0 + h) for h in range(4)]
    a = map_gates(units, MappingOptions(timesteps=16))
    b = map_gates(list(units), MappingOptions(timesteps=16))
    wa, wb = a.fixed_params.connection("input").weight, b.fixed_params.connection("input").weight
    assert np.array_equal(wa, wb)
    assert np.array_equal(a.fixed_params.bias_mant, b.fixed_params.bias_mant)
    assert units == [GateUnit(0, h, 0.1 * h, 0.7, 1.0 + h) for h in range(4)]


def _brute_force(weights, coef, cfg, bias, offset, dither_terms) -> float:
    """max over every payload combination and every corner of its bins of |rate - target|."""
    worst = 0.0
    payloads = [np.arange(2**b + 1) for b in cfg.bits]
    for combo in itertools.product(*payloads):
        drive = sum(int(loihi.weight_shift(np.array([int(w) * x]), e)[0])
                    for w, x, e in zip(weights, combo, cfg.exps, strict=True))
        rate = counts_for_drive(np.array([drive]), dither_terms, bias)[0] / dither_terms.size
        edges = [(max(0.0, (x - 0.5) / 2**b), min(1.0, (x + 0.5) / 2**b)) for x, b in zip(combo, cfg.bits,
                                                                                       strict=True)]
        for corner in itertools.product(*edges):
            worst = max(worst, abs(rate - float(sigmoid(np.dot(coef, corner) + offset))))
    return worst


@pytest.mark.parametrize("seed", range(6))
def test_exact_worst_case_equals_brute_force_over_three_inputs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cfg = _Config(bits=(5, 4, 3), exps=(int(rng.integers(-3, 1)), int(rng.integers(-3, 1)),
                                        int(rng.integers(-3, 1))), dither_exp=-2)
    coef = np.array([rng.uniform(1, 8), -rng.uniform(0, 3), -rng.uniform(0, 3)])
    weights = np.array([int(rng.integers(1, 200)), -int(rng.integers(0, 200)), -int(rng.integers(0, 200))])
    levels = logit_levels(4, 2)
    dither_terms = loihi.weight_shift(int(rng.integers(1, 100)) * fixed_dither_table(levels, 4, 2, 6), -2)
    bias, offset = int(rng.integers(-3000, 3000)), float(rng.uniform(-3, 1))
    exact = exact_worst_case(weights, coef, cfg, bias, offset, dither_terms)
    assert exact == pytest.approx(_brute_force(weights, coef, cfg, bias, offset, dither_terms), abs=1e-12)


def _ranges_by_definition(pairs) -> tuple[np.ndarray, ...]:
    """{value: (min lo, max hi)} over (value, lo, hi) triples, as sorted arrays."""
    out: dict[int, tuple[float, float]] = {}
    for v, lo, hi in pairs:
        old = out.get(int(v), (np.inf, -np.inf))
        out[int(v)] = (min(old[0], lo), max(old[1], hi))
    keys = sorted(out)
    return np.array(keys), np.array([out[k][0] for k in keys]), np.array([out[k][1] for k in keys])


@pytest.mark.parametrize("seed", range(20))
def test_terms_and_their_sums_keep_every_extreme(seed: int) -> None:
    """_by_term (runs of a monotone term, or any order) and _combine (min-plus / max-plus over every
    pair of terms) against their definitions, sparse and dense term sets alike."""
    rng = np.random.default_rng(seed)
    x = np.arange(int(rng.integers(1, 300)))
    w, e = int(rng.integers(-300, 300)), int(rng.integers(-8, 3))
    terms = loihi.weight_shift(w * x, e) if seed % 4 else rng.integers(-40, 40, x.size)  # the last: unordered
    lo = rng.normal(size=x.size)
    hi = lo + rng.uniform(0, 1, x.size)
    got = _by_term(terms, lo, hi)
    for g, want in zip(got, _ranges_by_definition(zip(terms, lo, hi, strict=True)), strict=True):
        np.testing.assert_array_equal(g, want)
    v2 = np.unique(rng.integers(-60, 60, int(rng.integers(1, 40))) * int(rng.integers(1, 4)))
    lo2 = rng.normal(size=v2.size)
    b = (v2, lo2, lo2 + rng.uniform(0, 1, v2.size))
    pairs = [(va + vb, la + lb, ha + hb) for va, la, ha in zip(*got, strict=True)
             for vb, lb, hb in zip(*b, strict=True)]
    for g, want in zip(_combine(got, b), _ranges_by_definition(pairs), strict=True):
        np.testing.assert_array_equal(g, want)


def test_counts_for_drive_equals_the_step_by_step_neuron() -> None:
    """The mapper's binary search = the numpy reference running the full dynamics."""


    g = map_gates([GateUnit(0, 0, 0.3, 0.5, 4.0)], MappingOptions(timesteps=8, neurons_per_gate=2))
    payload = np.arange(0, 4097, 3)
    full = numpy_ref.rasters(g.layout(np.zeros(payload.size, int), True), payload)[0].sum(axis=0)
    fp = g.fixed_params
    a, dither = fp.connection("input"), fp.connection("dither")
    drive = loihi.weight_shift(int(a.weight[0]) * payload, a.weight_exp)
    terms = loihi.weight_shift(int(dither.weight[0]) * dither.table, dither.weight_exp)
    short = counts_for_drive(drive, terms, int(fp.bias_mant[0]) << int(fp.bias_exp[0]))
    np.testing.assert_array_equal(full.reshape(-1, 2).sum(axis=1), short)
