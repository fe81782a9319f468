"""The variant mappers (numpy only): refractory loads, scaled CfC and membrane inputs, the hard
membrane neuron -- and the exact worst case over several inputs, checked by brute force.

Torch-free: part of the Python 3.10 suite.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ember_neuro.backends import numpy_ref
from ember_neuro.gates import sigmoid
from ember_neuro.mappers import MappingError, MappingOptions, loihi, map_variant
from ember_neuro.mappers.gate import (
    _Config,
    counts_for_drive,
    exact_worst_case,
    fixed_dither_table,
    logit_levels,
)

OPTS = MappingOptions(timesteps=8, neurons_per_gate=2)


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


def test_counts_for_drive_equals_the_step_by_step_neuron() -> None:
    """The mapper's binary search = the numpy reference running the full dynamics."""
    from ember_neuro.mappers import GateUnit, map_gates

    g = map_gates([GateUnit(0, 0, 0.3, 0.5, 4.0)], OPTS)
    payload = np.arange(0, 4097, 3)
    full = numpy_ref.rasters(g.layout(np.zeros(payload.size, int), True), payload)[0].sum(axis=0)
    fp = g.fixed_params
    a, dither = fp.connection("input"), fp.connection("dither")
    drive = loihi.weight_shift(int(a.weight[0]) * payload, a.weight_exp)
    terms = loihi.weight_shift(int(dither.weight[0]) * dither.table, dither.weight_exp)
    short = counts_for_drive(drive, terms, int(fp.bias_mant[0]) << int(fp.bias_exp[0]))
    np.testing.assert_array_equal(full.reshape(-1, 2).sum(axis=1), short)


def _attention_params(n_layer: int, heads: int, refractory: bool = False, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for layer in range(n_layer):
        p = f"transformer.h.{layer}.attn.gate."
        out[p + "threshold"] = rng.uniform(-0.3, 1.1, heads)
        out[p + "leak"] = rng.uniform(-1, 1, heads)
        out[p + "steepness"] = rng.uniform(-1, 3, heads)
        if refractory:
            out[p + "ref_strength"] = rng.uniform(-3, 1, heads)
            out[p + "cross_layer_weight"] = rng.uniform(-3, 1, heads)
    return out


def test_refractory_maps_loads_as_their_own_connections() -> None:
    groups = map_variant("lif-refractory", _attention_params(2, 3, refractory=True), 2, OPTS)
    g = groups["attention"]
    fx, fl = g.fixed_params, g.float_params
    assert fx.host_sources == ("input", "col_load", "prev_load")
    assert np.all(fx.connection("col_load").weight <= 0)
    assert np.all(fx.connection("prev_load").weight[:3] == 0)
    assert np.all(fx.connection("prev_load").weight[3:] < 0)  # only layers > 0 see the previous load
    assert g.fixed_worst_error.max() <= g.bound + 0.002
    # the float neuron is the trained refractory gate: sigma(k (p - theta - s col - c prev))
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 6, 200)
    values = {"input": rng.uniform(0, 1, 200), "col_load": rng.uniform(0, 1, 200),
              "prev_load": rng.uniform(0, 1, 200)}
    k = fl.connection("input").weight[idx]
    theta = -fl.bias_mant[idx] / k
    s = -fl.connection("col_load").weight[idx] / k
    c = -fl.connection("prev_load").weight[idx] / k
    want = sigmoid(k * (values["input"] - theta - s * values["col_load"] - c * values["prev_load"]))
    np.testing.assert_allclose(g.target(values, idx), want, rtol=0, atol=1e-12)


def _cfc_params(n_layer: int, dim: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {f"layers.{layer}.gate.{name}": rng.uniform(lo, hi, dim)
            for layer in range(n_layer)
            for name, lo, hi in (("threshold", -0.5, 1.5), ("leak", -1, 1), ("steepness", -1, 2))}


def test_cfc_gates_scale_their_input_per_layer() -> None:
    groups = map_variant("cfc-lif", _cfc_params(2, 5), 2, OPTS, {"hidden_scale": [2.0, 4.0]})
    g = groups["hidden"]
    assert [u.name for u in g.units[:2]] == ["L0N0", "L0N1"] and len(g.units) == 10
    scale = g.fixed_params.connection("input").scale
    np.testing.assert_array_equal(scale, [2.0] * 5 + [4.0] * 5)
    idx = np.array([0, 7, 7])
    x = np.array([1.0, 2.0, 9.0])  # the last one is beyond layer 1's scale: clipped and counted
    assert g.encode(x, True, idx).tolist() == [2048, 2048, 4096]
    assert g.saturated_count(x, idx) == 1
    assert g.fixed_worst_error.max() <= g.bound + 0.002


@pytest.mark.parametrize("scales", [None, [1.0], [1.0, 0.0], [1.0, float("nan")]])
def test_cfc_without_a_calibrated_scale_is_refused(scales) -> None:
    cal = None if scales is None else {"hidden_scale": scales}
    with pytest.raises(MappingError, match="scale"):
        map_variant("cfc-lif", _cfc_params(2, 3), 2, OPTS, cal)


def test_temporal_maps_attention_membrane_and_the_hard_neuron() -> None:
    params = _attention_params(3, 2)
    for layer, (d, t, s) in enumerate(((1.0, 0.0, 1.5), (0.8, 0.2, 1.4), (1.2, -0.1, 1.6))):
        params.update({f"transformer.h.{layer}.temporal_decay": np.array(d),
                       f"transformer.h.{layer}.temporal_threshold": np.array(t),
                       f"transformer.h.{layer}.temporal_steepness": np.array(s)})
    cal = {"membrane_scale": [2.0, 3.0, 4.0], "importance_scale": 5.0}
    groups = map_variant("temporal-lif", params, 3, OPTS, cal)
    assert set(groups) == {"attention", "membrane", "membrane_hard"}
    m, h = groups["membrane"], groups["membrane_hard"]
    assert [u.name for u in m.units] == ["L0M0", "L1M0", "L2M0"]
    assert h.reset_windows == 3 and h.timesteps == 1 and h.units[0].name == "membrane"
    lam = np.mean([u.leak for u in m.units])
    assert h.float_params.dv == pytest.approx(1 - lam) and h.fixed_params.dv == round(4096 * (1 - lam))
    assert any("one leak" in w for w in h.warnings)
    # the hard neuron integrates, leaks, spikes above threshold and resets -- over the layers
    imp = np.array([[0.5, 2.0], [0.5, 0.0], [0.5, 0.0]])  # (layers, tokens)
    array = h.layout(np.zeros(2, np.int64), False)
    spikes = numpy_ref.rasters(array, np.stack([h.encode(row, False, array.unit_index) for row in imp]))
    v, want = np.zeros(2), []
    for row in imp:
        v = lam * v + row
        want.append(v > h.units[0].theta)
        v = np.where(want[-1], 0.0, v)
    np.testing.assert_array_equal(spikes[:, 0], np.array(want))


def test_variants_without_a_gate_are_refused_with_the_reason() -> None:
    for variant, why in (("standard", "plain softmax"), ("qwen-gate", "dense"), ("cfc", "without gates")):
        with pytest.raises(MappingError, match=why):
            map_variant(variant, {}, 2, OPTS)
