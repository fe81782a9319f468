"""The PyTorch emulator against Lava's own arithmetic, and the rate code's accuracy.

Breadth lives here: the oracle below runs Lava's actual LIFReset model classes and
weight utilities *in process* (no runtime, no forks), so hundreds of random
configurations -- including wraps, clipping and general decays that the mapping
never produces -- cost milliseconds.  tests/test_lava_backend.py closes the loop
against the real, multi-process Lava runtime.
"""

from __future__ import annotations

import numpy as np
import pytest
from ember_neuro.mappers import GateUnit, MappingOptions, NeuronArray, map_gates

from ember_neuro import emulator as emu
from ember_neuro.emulator import emulate, gate_counts, gate_rates, lava_fixed_weights


def random_units(rng: np.random.Generator, count: int) -> list[GateUnit]:
    """Typical trained values: theta in [-0.5, 1.2], k in [0.3, 5]."""
    return [
        GateUnit(0, h, float(rng.uniform(-0.5, 1.2)), float(rng.uniform(0, 1)),
                 float(rng.uniform(0.3, 5.0)))
        for h in range(count)
    ]


def nasty_array(rng: np.random.Generator, fixed: bool, t: int, n: int, i: int) -> NeuronArray:
    """Parameters outside the mapping's budget: wraps, clipping, leaky u and v."""
    m = i * n
    if fixed:
        big = 2**int(rng.integers(8, 22))
        return NeuronArray(
            fixed=True, timesteps=t, neurons_per_gate=n, unit_index=np.zeros(i, int),
            w_in=rng.integers(-300, 300, m), w_dither=rng.integers(-40, 300, m),
            bias_mant=rng.integers(-40000, 40000, m), bias_exp=rng.integers(0, 8, m),
            channel=np.tile(np.arange(n), i),
            in_weight_exp=int(rng.integers(-8, 3)), dither_weight_exp=int(rng.integers(-8, 3)),
            dither=rng.integers(-big, big, (t, n)), du=int(rng.integers(0, 4096)),
            dv=int(rng.integers(0, 4096)), vth=int(rng.integers(0, 2000)),
        )
    return NeuronArray(
        fixed=False, timesteps=t, neurons_per_gate=n, unit_index=np.zeros(i, int),
        w_in=rng.normal(0, 3, m), w_dither=rng.normal(0, 3, m), bias_mant=rng.normal(0, 1, m),
        bias_exp=np.zeros(m), channel=np.tile(np.arange(n), i), in_weight_exp=0,
        dither_weight_exp=0, dither=rng.normal(0, 2, (t, n)), du=float(rng.uniform(0, 1)),
        dv=float(rng.uniform(0, 1)), vth=float(rng.uniform(0, 1)),
    )


def lava_oracle(array: NeuronArray, x: np.ndarray) -> np.ndarray:
    """(T, M) raster from Lava's own code: weight utils, Sparse step, LIFReset methods."""
    pytest.importorskip("lava")
    from ember_neuro.lava_backend import import_lava

    import_lava()
    from lava.proc.lif.models import PyLifResetModelBitAcc, PyLifResetModelFloat
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights
    from scipy.sparse import csr_matrix

    m, n, t = array.size, array.neurons_per_gate, array.timesteps
    rows = np.arange(m)
    dt = np.int32 if array.fixed else np.float64
    w_in = csr_matrix((np.asarray(array.w_in).astype(dt), (rows, rows // n)), (m, array.n_inputs))
    w_d = csr_matrix((np.asarray(array.w_dither).astype(dt), (rows, array.channel)), (m, n))
    conns = [(w_in, array.in_weight_exp), (w_d, array.dither_weight_exp)]
    if array.fixed:  # PySparseModelBitAcc's first-step weight processing
        conns = [(truncate_weights(clip_weights(w, s, 8), s, 8), e)
                 for w, e in conns for s in [determine_sign_mode(w)]]
    model_cls = PyLifResetModelBitAcc if array.fixed else PyLifResetModelFloat
    lif = model_cls({"reset_interval": t, "reset_offset": 0})
    lif.u, lif.v = np.zeros(m, dt), np.zeros(m, dt)
    if array.fixed:  # the builder casts ndarray Vars to their LavaPyType (int16)
        lif.bias_mant = np.asarray(array.bias_mant).astype(np.int64).astype(np.int16)
        lif.bias_exp = np.asarray(array.bias_exp).astype(np.int64).astype(np.int16)
    else:
        lif.bias_mant = np.asarray(array.bias_mant, dtype=np.float64)
        lif.bias_exp = np.asarray(array.bias_exp, dtype=np.float64)
    lif.du, lif.dv, lif.vth = array.du, array.dv, array.vth
    xs = np.asarray(x).astype(dt)
    raster = np.zeros((t, m), bool)
    for step in range(t):
        a_in = np.zeros(m, np.int16 if array.fixed else float)  # PyInPort.recv accumulator
        for w, exp in conns:
            s_in = xs if w is conns[0][0] else np.asarray(array.dither)[step].astype(dt)
            acc = w.dot(s_in)
            if array.fixed:
                acc = np.left_shift(acc, exp) if exp > 0 else np.right_shift(acc, -exp)
            a_in = a_in + acc
        if array.fixed:
            lif.scale_bias()
            lif.scale_threshold()
        lif.subthr_dynamics(activation_in=a_in)
        spikes = lif.spiking_activation()
        lif.reset_voltage(spikes)
        raster[step] = spikes != 0
    return raster


@pytest.mark.parametrize("fixed", [True, False])
@pytest.mark.parametrize(("t", "n"), [(8, 2), (5, 3), (1, 1), (32, 1)])
def test_mapped_units_equal_lava_oracle(fixed: bool, t: int, n: int) -> None:
    rng = np.random.default_rng(t * 10 + n)
    mapped = map_gates(random_units(rng, 6), MappingOptions(timesteps=t, neurons_per_gate=n))
    array = mapped.layout(rng.integers(0, 6, 20), fixed)
    for _ in range(3):
        x = mapped.encode(rng.uniform(0, 1, 20), fixed)
        counts, raster = emulate(array, x, record=True)
        np.testing.assert_array_equal(raster, lava_oracle(array, x))
        np.testing.assert_array_equal(counts, raster.sum(axis=0))


@pytest.mark.parametrize("fixed", [True, False])
def test_out_of_budget_arrays_equal_lava_oracle(fixed: bool) -> None:
    """Wrapping u, 8-bit weight clipping, MIXED truncation, int16 bias, leaky u/v."""
    rng = np.random.default_rng(7 + fixed)
    for trial in range(25):
        t, n, i = int(rng.integers(1, 9)), int(rng.integers(1, 4)), int(rng.integers(1, 12))
        array = nasty_array(rng, fixed, t, n, i)
        scale = 2 ** int(rng.integers(4, 23)) if fixed else 3.0
        x = rng.integers(-scale, scale, i) if fixed else rng.normal(0, scale, i)
        raster = emulate(array, x, record=True)[1]
        np.testing.assert_array_equal(raster, lava_oracle(array, x), err_msg=f"trial {trial}")


def test_fast_path_equals_exact_path(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    mapped = map_gates(random_units(rng, 8), MappingOptions(timesteps=16, neurons_per_gate=2))
    array = mapped.layout(rng.integers(0, 8, 300), True)
    x = mapped.encode(rng.uniform(0, 1, (7, 300)), True)
    fast = emulate(array, x, record=True)
    monkeypatch.setattr(emu, "_steps_fixed_fast", emu._steps_fixed_exact)
    exact = emulate(array, x, record=True)
    np.testing.assert_array_equal(fast[0], exact[0])
    np.testing.assert_array_equal(fast[1], exact[1])


@pytest.mark.parametrize("fixed", [True, False])
def test_batching_and_blocks_do_not_change_results(fixed: bool) -> None:
    rng = np.random.default_rng(11)
    mapped = map_gates(random_units(rng, 5), MappingOptions(timesteps=12, neurons_per_gate=3))
    array = mapped.layout(rng.integers(0, 5, 50), fixed)
    x = mapped.encode(rng.uniform(0, 1, (9, 50)), fixed)
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
    mapped = map_gates(units, MappingOptions(timesteps=t, neurons_per_gate=n))
    p = np.linspace(0.0, 1.0, 1001)
    unit_index = np.repeat(np.arange(len(units)), p.size)
    pp = np.tile(p, len(units))
    theta = np.array([u.theta for u in units])[unit_index]
    k = np.array([u.k for u in units])[unit_index]
    rate = gate_rates(mapped, unit_index, pp, fixed)
    err = np.abs(rate - 1.0 / (1.0 + np.exp(-k * (pp - theta))))
    assert err.max() <= mapped.bound + 0.002, (err.max(), mapped.bound)
    if not fixed:  # float realises the rounding bound itself
        assert err.max() <= mapped.bound + 1e-9


def test_gate_counts_sums_channels() -> None:
    counts = np.arange(12).reshape(2, 6)
    np.testing.assert_array_equal(gate_counts(counts, 3), [[3, 12], [21, 30]])


def test_lava_fixed_weights_sign_modes() -> None:
    np.testing.assert_array_equal(lava_fixed_weights(np.array([3, 300]), 2), [3, 255])
    np.testing.assert_array_equal(lava_fixed_weights(np.array([-3, -300]), 2), [-3, -255])
    np.testing.assert_array_equal(lava_fixed_weights(np.array([-3, 5, 300]), 2), [-4, 4, 254])


def test_payload_validation() -> None:
    rng = np.random.default_rng(0)
    mapped = map_gates(random_units(rng, 2), MappingOptions(timesteps=4))
    array = mapped.layout([0, 1], True)
    with pytest.raises(ValueError, match="integer"):
        emulate(array, np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="I = 2"):
        emulate(array, np.array([1, 2, 3]))


@pytest.mark.parametrize("fixed", [True, False])
def test_exact_threshold_ties_do_not_spike(fixed: bool) -> None:
    """Lava fires on a strict v > vth: a membrane exactly at threshold stays silent."""
    t, m = 3, 2
    vth = 5 if fixed else 0.5
    at, above = (vth << 6, (vth << 6) + 1) if fixed else (0.5, 0.5 + 1e-9)
    dtype = np.int64 if fixed else np.float64
    array = NeuronArray(
        fixed=fixed, timesteps=t, neurons_per_gate=1, unit_index=np.zeros(m, int),
        w_in=np.ones(m, dtype), w_dither=np.zeros(m, dtype), bias_mant=np.array([at, above], dtype),
        bias_exp=np.zeros(m, dtype), channel=np.zeros(m, int), in_weight_exp=0, dither_weight_exp=0,
        dither=np.zeros((t, 1), dtype), du=4095 if fixed else 1.0, dv=4095 if fixed else 1.0, vth=vth,
    )
    x = np.zeros(m, dtype)
    _, raster = emulate(array, x, record=True)
    assert raster[:, 0].sum() == 0 and raster[:, 1].all()
    np.testing.assert_array_equal(raster, lava_oracle(array, x))
