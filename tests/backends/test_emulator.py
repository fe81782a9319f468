"""The torch emulator equals the numpy reference (and so Lava: tests/core), fast path and exact path.

Breadth lives here and in tests/core/test_loihi.py: hundreds of random
configurations -- wraps, clipping, general decays and several connections that
the mapping never produces -- cost milliseconds.
"""

from __future__ import annotations

import numpy as np
import pytest

from ember_neuro.backends import emulator as emu
from ember_neuro.backends import numpy_ref
from ember_neuro.backends.emulator import emulate
from ember_neuro.mappers import MappingOptions, gate_counts, map_gates

from ..helpers import nasty_array, nasty_payload, random_units


@pytest.mark.parametrize("fixed", [True, False])
@pytest.mark.parametrize(("t", "n"), [(8, 2), (5, 3), (1, 1), (32, 1)])
def test_mapped_units_equal_numpy_reference(fixed: bool, t: int, n: int) -> None:
    rng = np.random.default_rng(t * 10 + n)
    group = map_gates(random_units(rng, 6), MappingOptions(timesteps=t, neurons_per_gate=n))
    array = group.layout(rng.integers(0, 6, 20), fixed)
    x = group.encode(rng.uniform(0, 1, (3, 20)), fixed)
    counts, raster = emulate(array, x, record=True)
    np.testing.assert_array_equal(raster, numpy_ref.rasters(array, x))
    np.testing.assert_array_equal(counts, raster.sum(axis=1))


@pytest.mark.parametrize("fixed", [True, False])
def test_out_of_budget_arrays_equal_numpy_reference(fixed: bool) -> None:
    """Wrapping u, 8-bit weight clipping, MIXED truncation, int16 bias, leaky u/v, many connections."""
    rng = np.random.default_rng(7 + fixed)
    for trial in range(40):
        t, n, i = int(rng.integers(1, 9)), int(rng.integers(1, 4)), int(rng.integers(1, 12))
        array = nasty_array(rng, fixed, t, n, i, n_host=int(rng.integers(1, 4)),
                            n_tables=int(rng.integers(0, 3)), phases=int(rng.integers(1, 3)))
        x = np.stack([nasty_payload(rng, array) for _ in range(2)])
        raster = emulate(array, x, record=True)[1]
        np.testing.assert_array_equal(raster, numpy_ref.rasters(array, x), err_msg=f"trial {trial}")


def test_fast_path_equals_exact_path(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    group = map_gates(random_units(rng, 8), MappingOptions(timesteps=16, neurons_per_gate=2))
    array = group.layout(rng.integers(0, 8, 300), True)
    x = group.encode(rng.uniform(0, 1, (7, 300)), True)
    fast = emulate(array, x, record=True)
    monkeypatch.setattr(emu, "_steps_fixed_fast", emu._steps_fixed_exact)
    exact = emulate(array, x, record=True)
    np.testing.assert_array_equal(fast[0], exact[0])
    np.testing.assert_array_equal(fast[1], exact[1])


def test_fast_path_is_taken_for_the_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mapping's neurons must run on the fast path (else the speed claims are void)."""
    rng = np.random.default_rng(4)
    group = map_gates(random_units(rng, 3), MappingOptions(timesteps=8))
    array = group.layout(rng.integers(0, 3, 10), True)

    def refuse(*args, **kwargs):
        raise AssertionError("exact path used for a mapped array")

    monkeypatch.setattr(emu, "_steps_fixed_exact", refuse)
    emulate(array, group.encode(rng.uniform(0, 1, 10), True))


@pytest.mark.parametrize("fixed", [True, False])
def test_batching_and_blocks_do_not_change_results(fixed: bool) -> None:
    rng = np.random.default_rng(11)
    group = map_gates(random_units(rng, 5), MappingOptions(timesteps=12, neurons_per_gate=3))
    array = group.layout(rng.integers(0, 5, 50), fixed)
    x = group.encode(rng.uniform(0, 1, (9, 50)), fixed)
    batched = emulate(array, x)
    rows = np.stack([emulate(array, row) for row in x])
    tiny_blocks = emulate(array, x, block=7, threads=None)
    np.testing.assert_array_equal(batched, rows)
    np.testing.assert_array_equal(batched, tiny_blocks)


@pytest.mark.parametrize("fixed", [True, False])
@pytest.mark.parametrize(("t", "n"), [(32, 1), (8, 4), (16, 2), (5, 3)])
def test_rates_follow_the_sigmoid(fixed: bool, t: int, n: int) -> None:
    """counts / (N T) within 1/(2 N T) + 0.002 of sigmoid(k (p - theta)) on 1001 p."""
    rng = np.random.default_rng(100 + t + n)
    units = random_units(rng, 24)
    group = map_gates(units, MappingOptions(timesteps=t, neurons_per_gate=n))
    p = np.linspace(0.0, 1.0, 1001)
    unit_index = np.repeat(np.arange(len(units)), p.size)
    pp = np.tile(p, len(units))
    theta = np.array([u.theta for u in units])[unit_index]
    k = np.array([u.k for u in units])[unit_index]
    counts = emulate(group.layout(unit_index, fixed), group.encode(pp, fixed))
    rate = group.decode(gate_counts(counts, group.neurons_per_gate))
    err = np.abs(rate - 1.0 / (1.0 + np.exp(-k * (pp - theta))))
    assert err.max() <= group.bound + 0.002, (err.max(), group.bound)
    if not fixed:  # float realises the rounding bound itself
        assert err.max() <= group.bound + 1e-9


def test_gate_counts_sums_channels() -> None:
    counts = np.arange(12).reshape(2, 6)
    np.testing.assert_array_equal(gate_counts(counts, 3), [[3, 12], [21, 30]])


def test_payload_validation() -> None:
    rng = np.random.default_rng(0)
    group = map_gates(random_units(rng, 2), MappingOptions(timesteps=4))
    array = group.layout([0, 1], True)
    with pytest.raises(ValueError, match="integer"):
        emulate(array, np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match=r"\(2,\) or \(B, 2\)"):
        emulate(array, np.array([1, 2, 3]))


@pytest.mark.parametrize("levels", ["uniform", "log"])
def test_counts_by_search_equal_the_full_dynamics(levels: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The count shortcut (no stepping) against the numpy reference's full dynamics, several
    blocks, N > 1, refractory-style extra inputs; and it is the path the mapping takes."""
    from ember_neuro.mappers.gate import GateInputs

    rng = np.random.default_rng(12)
    units = random_units(rng, 6, k_max=9.0)
    spec = GateInputs(("input", "col_load"), np.array([[u.k, -u.k * 0.4] for u in units]),
                      np.ones((6, 2)), np.array([u.theta for u in units]))
    group = map_gates(units, MappingOptions(timesteps=12, neurons_per_gate=3, levels=levels), inputs=spec)
    idx = rng.integers(0, 6, 500)
    x = group.encode({"input": rng.uniform(0, 1, (3, 500)) ** 2, "col_load": rng.uniform(0, 1, (3, 500))},
                     True, idx)
    array = group.layout(idx, True)

    def no_stepping(*a, **k):
        raise AssertionError("the mapping's arrays must take the count shortcut")

    monkeypatch.setattr(emu, "_steps_fixed_fast", no_stepping)
    counts = emulate(array, x, block=700)  # blocks split neurons mid-group
    np.testing.assert_array_equal(counts, numpy_ref.rasters(array, x).sum(axis=1))


def test_counts_without_a_raster_equal_the_reference_on_arbitrary_arrays() -> None:
    """Arrays outside the shortcut's conditions (rising tables, thresholds, wraps) fall back."""
    rng = np.random.default_rng(21)
    for trial in range(20):
        t, n, i = int(rng.integers(1, 9)), int(rng.integers(1, 3)), int(rng.integers(1, 12))
        array = nasty_array(rng, True, t, n, i, n_host=int(rng.integers(1, 3)),
                            n_tables=int(rng.integers(1, 3)))
        x = np.stack([nasty_payload(rng, array) for _ in range(2)])
        np.testing.assert_array_equal(emulate(array, x), numpy_ref.rasters(array, x).sum(axis=1),
                                      err_msg=f"trial {trial}")


@pytest.mark.parametrize(("n", "levels", "extra"),
                         [(1, "uniform", False), (5, "log", False), (3, "uniform", True)])
def test_gate_counts_without_a_layout_equal_the_neurons(n: int, levels: str, extra: bool) -> None:
    """group_gate_counts (per gate, no neuron layout) against the numpy reference's neurons."""
    from ember_neuro.backends import registry
    from ember_neuro.mappers.gate import GateInputs

    rng = np.random.default_rng(31 + n)
    units = random_units(rng, 7, k_max=9.0)
    spec = None
    if extra:
        spec = GateInputs(("input", "col_load", "prev_load"),
                          np.array([[u.k, -u.k * 0.4, -u.k * 0.1] for u in units]), np.ones((7, 3)),
                          np.array([u.theta for u in units]))
    group = map_gates(units, MappingOptions(timesteps=9, neurons_per_gate=n, levels=levels), inputs=spec)
    idx = rng.integers(0, 7, 400)
    values = {s: rng.uniform(0, 1, (2, 400)) ** 2 for s in group.fixed_params.host_sources}
    x = group.encode(values if extra else values["input"], True, idx)
    fast = emu.group_gate_counts(group, idx, x)
    assert fast is not None
    expected = gate_counts(numpy_ref.rasters(group.layout(idx, True), x).sum(axis=1), n)
    np.testing.assert_array_equal(fast, expected)
    np.testing.assert_array_equal(registry.get("emulator").gate_counts(group, idx, x), expected)
    sub = idx[idx < 3]  # a subset of units present changes no weight Lava applies here
    sources = group.fixed_params.host_sources
    xs = group.encode(rng.uniform(0, 1, (1, sub.size)) if not extra else
                      {s: rng.uniform(0, 1, (1, sub.size)) for s in sources}, True, sub)
    np.testing.assert_array_equal(emu.group_gate_counts(group, sub, xs),
                                  gate_counts(numpy_ref.rasters(group.layout(sub, True), xs).sum(axis=1), n))
