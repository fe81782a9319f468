"""Fidelity of the spike-rate gate against the trained sigmoid, for shipped and generated heads.

The bar: |n/(NT) - sigmoid(k(p - theta))| <= 1/(2NT) + 0.002 (fixed point; float meets
1/(2NT) itself), and the bound shrinks as T grows.  Measured with the emulators
(fixed: bit-exact with Lava, checked in test_emulator.py and, across T, by the slow
Lava test here).  A steep fixed-point head (k >~ 30) can exceed the flat +0.002 bar --
between the mapper's 1,001 selection-grid points, and at large N*T even on them -- so
generated heads steeper than k = 20 are held to the per-head error budget of
docs/mapping.md section 5 instead, and the mapper must name every head whose exact
worst case exceeds the bar.  Every head, steep or not, is checked against the budget.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ember_neuro.backends.emulator import emulate
from ember_neuro.deploy.mapping import prepare
from ember_neuro.gates import fire_curve_np
from ember_neuro.kinds.registry import mappable
from ember_neuro.mappers import GateUnit, MappingError, MappingOptions, NeuronGroup, gate_counts, map_gates
from ember_neuro.models.checkpoint import load_checkpoint

BAR = 0.002
STEEP = 20.0  # slopes up to this meet the flat bar everywhere (measured worst: +0.0013)
GRID = np.linspace(0.0, 1.0, 1001)  # the mapper's own selection grid
DENSE = np.linspace(0.0, 1.0, 4001)  # includes p between the selection grid's points


def rate_errors(mapped: NeuronGroup, p: np.ndarray, fixed: bool, others: dict | None = None) -> np.ndarray:
    """Per unit: max |spike rate - trained sigmoid| over normalised inputs p (every unit sees every p).

    The first input is p times the unit's payload scale; further inputs (refractory loads)
    are 0 unless ``others`` gives their values (broadcast like p).
    """
    u = len(mapped.units)
    idx = np.tile(np.arange(u), p.size)
    scale = mapped.fixed_params.connection("input").scale
    x = np.repeat(p, u) * (1.0 if scale is None else np.asarray(scale)[idx])
    values = {src: np.repeat(np.broadcast_to((others or {}).get(src, 0.0), p.shape), u)
              for src in mapped.fixed_params.host_sources}
    values["input"] = x
    array = mapped.layout(idx, fixed)
    counts = gate_counts(emulate(array, mapped.encode(values, fixed, idx)), mapped.neurons_per_gate)
    err = np.abs(mapped.decode(counts) - mapped.target(values, idx))
    return err.reshape(p.size, u).max(axis=0)


def error_budget(mapped: NeuronGroup) -> np.ndarray:
    """Per unit: the docs/mapping.md section 5 budget plus the dither-level rounding it omits.

    window 1/(2NT) + slope ratio + payload k/4 2^-(B+1) + drive 1/(4 S b) + bias rounding,
    and + 1/4 2^-(B+1): each logit level is rounded to 2^-B like the payload (found by
    hypothesis: k = 0.0625, T = 32, N = 4 exceeds the five documented terms by 7e-6).
    """
    fp = mapped.fixed_params
    w_in, dither = fp.connection("input"), fp.connection("dither")
    b = np.maximum(dither.weight, 1).astype(float)
    k = np.array([u.k for u in mapped.units])
    scale = 2.0 ** (dither.bits + dither.weight_exp)  # a_in units per logit, per unit of b
    half_lsb = 2.0 ** -(w_in.bits + 1)  # the input payload's rounding
    half_level = 2.0 ** -(dither.bits + 1)  # the levels' rounding
    return (mapped.bound + 0.224 * np.abs(mapped.k_effective - k) / k + k / 4 * half_lsb
            + 0.25 / (scale * b) + 0.25 * 2.0 ** (fp.bias_exp - 1.0) / (64 * scale * b) + half_level / 4)


def check(mapped: NeuronGroup, p: np.ndarray, bar: bool = True) -> None:
    """Float within 1/(2NT); fixed within the budget and (bar=True) within 1/(2NT) + 0.002."""
    names = [u.name for u in mapped.units]
    flt = rate_errors(mapped, p, fixed=False)
    assert flt.max() <= mapped.bound + 1e-9, (names[int(flt.argmax())], flt.max(), mapped.bound)
    fix = rate_errors(mapped, p, fixed=True)
    over = fix - error_budget(mapped)
    assert over.max() <= 1e-9, (mapped.units[int(over.argmax())], fix.max(), mapped.bound)
    if bar:
        assert fix.max() <= mapped.bound + BAR, (mapped.units[int(fix.argmax())], fix.max(), mapped.bound)


def rate_groups(net) -> dict[str, NeuronGroup]:
    return {name: g for name, g in net.groups.items() if not g.carries_state}


def shipped_units(shipped, variant: str) -> list[GateUnit]:
    """Every unit of a shipped checkpoint's first group (its attention heads, or CfC neurons)."""
    return list(next(iter(shipped.net(variant).groups.values())).units)


PER_NEURON = ("cfc-lif", "audio-cfc-lif")  # hundreds of units: checked per group below


@pytest.fixture(scope="module", params=[v for v in mappable() if v not in PER_NEURON])
def heads(request: pytest.FixtureRequest, shipped) -> list[GateUnit]:
    return shipped_units(shipped, request.param)


# -- shipped checkpoints --------------------------------------------------------------------


@pytest.mark.parametrize(("t", "n"), [(8, 1), (32, 1), (16, 2)])
def test_every_shipped_head_within_the_bound(heads: list[GateUnit], t: int, n: int) -> None:
    check(map_gates(heads, MappingOptions(timesteps=t, neurons_per_gate=n)), DENSE)


# the keyword spotter's groups are cfc-lif's kind, calibrated on clips: its bars are
# tests/hybrid/test_keyword.py's (and validate's, in the export tests)
@pytest.mark.parametrize("variant", [v for v in mappable() if v != "audio-cfc-lif"])
@pytest.mark.parametrize("t", [8, 32])
def test_every_shipped_group_within_its_exact_worst_case_and_the_bar(shipped, variant: str, t: int) -> None:
    """Every group (scaled CfC and membrane inputs, refractory loads too): the measured error
    never exceeds the mapper's exact worst case, which is within 1/(2NT) + 0.002."""
    rng = np.random.default_rng(t)
    for name, group in rate_groups(shipped.net(variant, t)).items():
        exact = group.fixed_worst_error
        assert exact.max() <= group.bound + BAR, (variant, name, exact.max(), group.bound)
        loads = [None]
        if len(group.fixed_params.host_sources) > 1:  # refractory: loads across their box too
            loads += [{src: rng.uniform(0, 1, DENSE.size) for src in ("col_load", "prev_load")}
                      for _ in range(2)]
        for others in loads:
            fix = rate_errors(group, DENSE, True, others)
            assert np.all(fix <= exact + 1e-12), (variant, name, float((fix - exact).max()))
            flt = rate_errors(group, DENSE, False, others)
            assert flt.max() <= group.bound + 1e-9, (variant, name, flt.max())


def test_variants_without_an_lif_gate_are_refused_with_a_reason(tiny_ckpts) -> None:
    for variant in ("standard", "qwen-gate", "cfc"):
        ck = load_checkpoint(tiny_ckpts[variant])
        with pytest.raises(MappingError, match="no LIF gate to map"):
            prepare(ck)


def test_bound_shrinks_as_t_grows(shipped) -> None:
    units = shipped_units(shipped, "lif-learnable")
    ts = (8, 16, 32, 64, 128)
    maps = [map_gates(units, MappingOptions(timesteps=t)) for t in ts]
    bounds = [m.bound for m in maps]
    assert bounds == [1 / (2 * t) for t in ts] and all(np.diff(bounds) < 0)
    errors = [rate_errors(m, GRID, fixed=True).max() for m in maps]
    assert all(np.diff(errors) < 0), errors  # the measured error follows the bound down
    assert all(e <= b + BAR for e, b in zip(errors, bounds, strict=True))
    n2 = map_gates(units, MappingOptions(timesteps=32, neurons_per_gate=2))
    assert n2.bound == 1 / 128 and rate_errors(n2, GRID, fixed=True).max() < errors[2]


# -- generated heads ------------------------------------------------------------------------

# bypass (theta < 0), live, saturating (theta > 1)
theta_st = st.one_of(st.floats(-2.0, -0.01), st.floats(0.0, 1.0), st.floats(1.01, 3.0))
unit_st = st.builds(lambda th, leak, k: (th, leak, k), theta_st, st.floats(0.0, 1.0), st.floats(0.05, 50.0))


def make_units(params: list[tuple[float, float, float]]) -> list[GateUnit]:
    return [GateUnit(0, i, th, leak, k) for i, (th, leak, k) in enumerate(params)]


def property_check(params: list[tuple[float, float, float]], t: int, n: int, extra: list[float]) -> None:
    mapped = map_gates(make_units(params), MappingOptions(timesteps=t, neurons_per_gate=n))
    p = np.concatenate([GRID, np.asarray(extra, float)])
    check(mapped, p, bar=max(k for _, _, k in params) <= STEEP)  # steeper: the budget only


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=st.lists(unit_st, min_size=1, max_size=4), t=st.sampled_from([8, 16, 32, 64]),
       n=st.sampled_from([1, 2]), extra=st.lists(st.floats(0.0, 1.0), max_size=200))
def test_generated_heads_within_the_bound(params, t, n, extra) -> None:
    property_check(params, t, n, extra)


@pytest.mark.parametrize("theta,k", [(-0.5, 3.0), (-2.0, 50.0), (1.5, 8.0), (3.0, 50.0), (0.36, 50.0),
                                     (0.999, 50.0), (0.001, 50.0), (0.5, 0.05)])
@pytest.mark.parametrize("t", [8, 16, 32, 64])
def test_bypass_saturating_and_steep_heads(theta: float, k: float, t: int) -> None:
    mapped = map_gates([GateUnit(1, 2, theta, 0.7, k)], MappingOptions(timesteps=t))
    check(mapped, GRID)  # the flat bar on the selection grid
    check(mapped, DENSE, bar=k <= STEEP)  # off the grid: the budget
    if theta < 0 or theta > 1:  # bypass fires (almost) always, saturating (almost) never
        idx = np.zeros(GRID.size, int)
        r = mapped.decode(gate_counts(emulate(mapped.layout(idx, True), mapped.encode(GRID, True)), 1))
        assert np.all(r >= 0.5) if theta < 0 else np.all(r <= 0.5)


@pytest.mark.parametrize(("theta", "k", "t", "n"), [
    (0.5063613250310521, 40.12770002843142, 64, 1),  # found by hypothesis: +0.0026 off-grid
    (1.0, 35.0, 64, 4),
    (0.36, 50.0, 8, 1),
    (0.3, 2.0, 32, 1),
])
def test_steep_heads_are_reported_never_silent(theta: float, k: float, t: int, n: int) -> None:
    """The mapper's exact worst case bounds every measured error, and a head over the bar is named."""
    mapped = map_gates([GateUnit(0, 0, theta, 0.5, k)], MappingOptions(timesteps=t, neurons_per_gate=n))
    worst = float(mapped.fixed_worst_error[0])
    assert rate_errors(mapped, DENSE, fixed=True).max() <= worst + 1e-12
    over = worst > mapped.bound + BAR
    assert over == any(w.startswith("L0H0") and "too steep" in w for w in mapped.warnings)
    if k <= STEEP:
        assert not over


# -- slow: long windows, many units, real Lava --------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("t", "n"), [(128, 1), (256, 1), (256, 2), (64, 4)])
def test_shipped_heads_long_windows(heads: list[GateUnit], t: int, n: int) -> None:
    check(map_gates(heads, MappingOptions(timesteps=t, neurons_per_gate=n)), DENSE)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=st.lists(unit_st, min_size=1, max_size=12), t=st.sampled_from([8, 16, 32, 64, 128, 256]),
       n=st.sampled_from([1, 2, 4]), extra=st.lists(st.floats(0.0, 1.0), max_size=500))
def test_generated_heads_many(params, t, n, extra) -> None:
    property_check(params, t, n, extra)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_many_random_units_dense_grid(seed: int) -> None:
    rng = np.random.default_rng(seed)
    params = [(float(rng.uniform(-2, 3)), float(rng.uniform(0, 1)), float(rng.uniform(0.05, 20)))
              for _ in range(120)]
    for t, n in ((8, 1), (32, 1), (64, 2), (256, 1)):
        check(map_gates(make_units(params), MappingOptions(timesteps=t, neurons_per_gate=n)), DENSE)


@pytest.mark.slow
@pytest.mark.lava
@pytest.mark.parametrize("t", [8, 16, 32, 64])
def test_real_lava_across_t(shipped, t: int) -> None:
    """Lava (one run per arithmetic) is bit-exact with the emulators and meets the bound, per T."""
    pytest.importorskip("lava")
    from ember_neuro.backends import lava

    extra = make_units([(-0.5, 0.5, 3.0), (1.5, 0.5, 8.0), (0.4, 0.5, 20.0)])
    units = shipped_units(shipped, "lif-learnable") + extra
    mapped = map_gates(units, MappingOptions(timesteps=t))
    idx, x = np.tile(np.arange(len(units)), GRID.size), np.repeat(GRID, len(units))
    target = fire_curve_np(x, np.array([u.theta for u in units])[idx], np.array([u.k for u in units])[idx])
    for fixed in (True, False):
        array, payload = mapped.layout(idx, fixed), mapped.encode(x, fixed)
        raster = lava.rasters(array, payload[None], timeout_s=120)[0]
        _, emulated = emulate(array, payload, record=True)
        assert raster.any()
        assert np.array_equal(raster, emulated)
        err = np.abs(mapped.decode(raster.sum(axis=0)) - target).max()
        assert err <= mapped.bound + (BAR if fixed else 1e-9), (fixed, err)
