"""Every fixed-point decision of mappers/loihi.py, directly, edge values included; and the
numpy reference built from them against Lava's own model code (in process, no runtime).

Torch-free: part of the Python 3.10 suite.
"""

from __future__ import annotations

import numpy as np
import pytest

from ember_neuro.backends import numpy_ref
from ember_neuro.mappers import MappingOptions, loihi, map_gates

from ..helpers import lava_oracle, make_array, nasty_array, nasty_payload, random_units

pytestmark = pytest.mark.torchfree


def test_wrap_int32_edges() -> None:
    x = np.array([0, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**32 + 5])
    assert loihi.wrap_int32(x).tolist() == [0, 2**31 - 1, -(2**31), -(2**31), 2**31 - 1, 5]


def test_act_shift_is_six_bits_and_wraps_in_int32() -> None:
    assert loihi.act_shift(np.array([1, -1, 0])).tolist() == [64, -64, 0]
    assert loihi.act_shift(np.array([2**25]))[0] == -(2**31)  # 2^31 does not fit int32
    assert loihi.act_shift(np.array([2**25 - 1]))[0] == 2**31 - 64


def test_threshold_is_mantissa_shifted_by_six() -> None:
    assert loihi.threshold(0) == 0
    assert loihi.threshold(5) == 320
    assert loihi.threshold(2**loihi.VTH_BITS - 1) == (2**17 - 1) * 64


def test_decay_rounds_toward_zero() -> None:
    x = np.array([4097, -4097, -1, 1, 0])
    assert loihi.decay(x, 0).tolist() == [4097, -4097, -1, 1, 0]  # factor 4096: unchanged
    assert loihi.decay(x, 4095).tolist() == [1, -1, 0, 0, 0]  # x / 4096 toward zero, not floor
    assert loihi.decay(x, 4096).tolist() == [0, 0, 0, 0, 0]
    assert loihi.decay(np.array([8191]), 2048).tolist() == [4095]


def test_decay_constant_rounds_to_twelve_bits_and_clips() -> None:
    assert loihi.decay_constant(0.75) == 1024 and loihi.kept_fraction(1024) == 0.75
    assert loihi.decay_constant(1.0) == 0 and loihi.decay_constant(0.0) == loihi.DECAY_MAX  # 4096 clips
    assert loihi.decay_constant(1 - 1.5 / 4096) == 2  # round half to even, as the mapping always did
    lam = 0.6043
    assert abs(loihi.kept_fraction(loihi.decay_constant(lam)) - lam) <= 0.5 / 4096


def test_current_decays_with_the_offset_so_du_4095_forgets() -> None:
    assert loihi.current_decay_constant(4095) == 4096
    u = np.array([2**23 - 1, -(2**23) + 1])
    assert loihi.decay(u, loihi.current_decay_constant(4095)).tolist() == [0, 0]


def test_fold_current_follows_lava_not_twos_complement() -> None:
    u = np.array([2**23, 2**23 + 1, -(2**23), -(2**23) - 5, 17])
    # Lava folds values *above* +2^23 and values at or below -2^23 by 2^24
    assert loihi.fold_current(u).tolist() == [2**23, -(2**23) + 1, 2**23, 2**23 - 5, 17]


def test_clip_voltage_saturates() -> None:
    v = np.array([2**23, -(2**23), 5, 2**30])
    assert loihi.clip_voltage(v).tolist() == [2**23 - 1, -(2**23) + 1, 5, 2**23 - 1]
    assert loihi.clip_voltage(2**24) == 2**23 - 1  # plain ints too


def test_weight_shift_floors_and_wraps() -> None:
    assert loihi.weight_shift(np.array([-5, 5, -1]), -1).tolist() == [-3, 2, -1]  # arithmetic shift
    assert loihi.weight_shift(np.array([3]), 2).tolist() == [12]
    assert loihi.weight_shift(np.array([2**30]), 1).tolist() == [-(2**31)]
    assert loihi.weight_shift(np.array([2**31]), 0).tolist() == [-(2**31)]  # int32 accumulator


def test_lava_weights_sign_modes() -> None:
    assert loihi.lava_weights(np.array([3, 300]), 2).tolist() == [3, 255]  # excitatory: clip
    assert loihi.lava_weights(np.array([-3, -300]), 2).tolist() == [-3, -255]  # inhibitory
    assert loihi.lava_weights(np.array([-3, 5, 300]), 2).tolist() == [-4, 4, 254]  # mixed: LSB dropped
    assert loihi.lava_weights(np.array([-3, -5]), 1).tolist() == [-3, -5]  # no implicit zeros
    assert loihi.lava_weights(np.array([-3, 0, -5]), 1).tolist() == [-3, 0, -5]
    assert loihi.lava_weights(np.array([], dtype=int), 3).tolist() == []


@pytest.mark.parametrize(("value", "expected"), [
    (0.0, (0, 0, False)), (4095.0, (4095, 0, False)), (-4096.0, (-4096, 0, False)),
    (4096.0, (2048, 1, False)), (-4097.0, (-2048, 1, False)), (4095.0 * 128, (4095, 7, False)),
    (4095.0 * 128 + 100, (4095, 7, True)), (-1e9, (-4096, 7, True)),
])
def test_split_bias(value: float, expected: tuple[int, int, bool]) -> None:
    assert loihi.split_bias(value) == expected


def test_bias_value_is_int16_mantissa_shifted() -> None:
    assert loihi.bias_value(np.array([4095, -4096, 3]), np.array([7, 0, 2])).tolist() == \
        [4095 * 128, -4096, 12]
    assert loihi.bias_value(np.array([40000]), np.array([0]))[0] == 40000 - 65536  # int16 Var wraps
    assert loihi.bias_value(np.array([-7]), np.array([-1]))[0] == -4  # negative exponent: floor shift


def test_fits_act_is_the_16_bit_accumulator() -> None:
    assert loihi.fits_act(2**15 - 1) and not loihi.fits_act(2**15)


def test_memoryless_drive_and_strict_threshold() -> None:
    v = loihi.memoryless_drive(np.array([1, 2]), np.array([-64, -64]))
    assert v.tolist() == [0, 64]
    v_after, spikes = loihi.fire_and_reset(v, loihi.threshold(0))
    assert spikes.tolist() == [False, True] and v_after.tolist() == [0, 0]
    _, spikes = loihi.fire_and_reset(np.array([320, 321]), loihi.threshold(5))
    assert spikes.tolist() == [False, True]  # a tie is no spike


def test_fixed_step_integrates_bias_to_threshold() -> None:
    """bias 100, dv = 0, vth 5 (320): v = 100, 200, 300, 400 -> spike every 4th step."""
    u = v = np.zeros(1, np.int64)
    spikes = []
    for _ in range(12):
        u, v, s = loihi.lif_fixed_step(u, v, np.zeros(1, np.int64), np.array([100]), 4095, 0, 5)
        spikes.append(bool(s[0]))
    assert np.flatnonzero(spikes).tolist() == [3, 7, 11]


def test_float_step_is_lavas_operation_order() -> None:
    u, v, s = loihi.lif_float_step(np.array([0.5]), np.array([0.25]), np.array([0.1]), np.array([0.2]),
                                   0.5, 0.5, 1.0)
    assert u[0] == 0.5 * 0.5 + 0.1 and v[0] == 0.25 * 0.5 + (0.5 * 0.5 + 0.1) + 0.2 and not s[0]


# -- the numpy reference, built from these functions, against Lava's own model code ---------------


@pytest.mark.parametrize("fixed", [True, False])
@pytest.mark.parametrize(("t", "n"), [(8, 2), (5, 3), (1, 1), (32, 1)])
def test_mapped_gates_equal_lava_oracle(fixed: bool, t: int, n: int) -> None:
    rng = np.random.default_rng(t * 10 + n)
    group = map_gates(random_units(rng, 6), MappingOptions(timesteps=t, neurons_per_gate=n))
    array = group.layout(rng.integers(0, 6, 20), fixed)
    for _ in range(3):
        x = group.encode(rng.uniform(0, 1, 20), fixed)
        np.testing.assert_array_equal(numpy_ref.rasters(array, x)[0], lava_oracle(array, x))


@pytest.mark.parametrize("fixed", [True, False])
def test_out_of_budget_arrays_with_many_connections_equal_lava_oracle(fixed: bool) -> None:
    """Wrapping u, 8-bit weight clipping, MIXED truncation, int16 bias, leaky u/v; 1-3 host
    payloads and 1-2 chip tables (with phase blocks), summed in connection order."""
    rng = np.random.default_rng(7 + fixed)
    for trial in range(30):
        t, n, i = int(rng.integers(1, 9)), int(rng.integers(1, 4)), int(rng.integers(1, 12))
        array = nasty_array(rng, fixed, t, n, i, n_host=int(rng.integers(1, 4)),
                            n_tables=int(rng.integers(1, 3)), phases=int(rng.integers(1, 3)))
        x = nasty_payload(rng, array)
        np.testing.assert_array_equal(numpy_ref.rasters(array, x)[0], lava_oracle(array, x),
                                      err_msg=f"trial {trial}")


@pytest.mark.parametrize("fixed", [True, False])
def test_exact_threshold_ties_do_not_spike(fixed: bool) -> None:
    """Lava fires on a strict v > vth: a membrane exactly at threshold stays silent."""
    t, m = 3, 2
    vth = 5 if fixed else 0.5
    at, above = (vth << 6, (vth << 6) + 1) if fixed else (0.5, 0.5 + 1e-9)
    dtype = np.int64 if fixed else np.float64
    array = make_array(fixed, t, 1, np.zeros(m, int), [("input", np.ones(m, dtype), 0)],
                       [("dither", np.zeros(m, dtype), 0, np.zeros((t, 1), dtype))],
                       np.array([at, above], dtype), np.zeros(m, dtype),
                       4095 if fixed else 1.0, 4095 if fixed else 1.0, vth)
    x = np.zeros(m, dtype)
    raster = numpy_ref.rasters(array, x)[0]
    assert raster[:, 0].sum() == 0 and raster[:, 1].all()
    np.testing.assert_array_equal(raster, lava_oracle(array, x))


def test_numpy_reference_counts_are_the_mappers_exact_counts() -> None:
    """The mapper's shortcut (counts_for_drive: a memoryless neuron facing ascending levels counts the
    levels its drive passes) equals the full dynamics, per unit and payload."""
    from ember_neuro.mappers.gate import counts_for_drive

    rng = np.random.default_rng(2)
    group = map_gates(random_units(rng, 4, k_max=30.0), MappingOptions(timesteps=16, neurons_per_gate=2))
    payload = np.arange(0, 4097, 7)
    fp = group.fixed_params
    w_in, dither = fp.connection("input"), fp.connection("dither")
    for u in range(4):
        array = group.layout(np.full(payload.size, u), True)
        full = numpy_ref.rasters(array, payload)[0].sum(axis=0).reshape(-1, 2).sum(axis=1)
        drive = loihi.weight_shift(int(w_in.weight[u]) * payload, w_in.weight_exp)
        terms = loihi.weight_shift(int(dither.weight[u]) * dither.table, dither.weight_exp)
        short = counts_for_drive(drive, terms, int(fp.bias_mant[u]) << int(fp.bias_exp[u]))
        np.testing.assert_array_equal(full, short)
