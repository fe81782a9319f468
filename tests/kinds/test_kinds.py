"""The gate kinds' mappers and the variant registry (numpy only): refractory loads, scaled CfC and
membrane inputs, the hard membrane neuron, each group's addressing, and the refusals.

Torch-free: part of the Python 3.10 suite.
"""

from __future__ import annotations

import numpy as np
import pytest

from ember_neuro.backends import numpy_ref
from ember_neuro.gates import sigmoid
from ember_neuro.kinds import registry
from ember_neuro.kinds.registry import map_variant
from ember_neuro.mappers import Addressing, MappingError, MappingOptions

from ..helpers import attention_params, cfc_params

pytestmark = pytest.mark.torchfree
OPTS = MappingOptions(timesteps=8, neurons_per_gate=2)


def test_refractory_maps_loads_as_their_own_connections() -> None:
    groups = map_variant("lif-refractory", attention_params(2, 3, refractory=True), 2, OPTS)
    g = groups["attention"]
    assert g.address == Addressing(hook="attention", unit_axis=1, idle_zero=True,
                                   label="attention probability p")
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


def test_cfc_gates_scale_their_input_per_layer() -> None:
    groups = map_variant("cfc-lif", cfc_params(2, 5), 2, OPTS, {"hidden_scale": [2.0, 4.0]})
    g = groups["hidden"]
    assert [u.name for u in g.units[:2]] == ["L0N0", "L0N1"] and len(g.units) == 10
    assert (g.address.hook, g.address.unit_axis, g.address.idle_zero) == ("hidden", -1, False)
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
        map_variant("cfc-lif", cfc_params(2, 3), 2, OPTS, cal)


def test_temporal_maps_attention_membrane_and_the_hard_neuron() -> None:
    params = attention_params(3, 2)
    for layer, (d, t, s) in enumerate(((1.0, 0.0, 1.5), (0.8, 0.2, 1.4), (1.2, -0.1, 1.6))):
        params.update({f"transformer.h.{layer}.temporal_decay": np.array(d),
                       f"transformer.h.{layer}.temporal_threshold": np.array(t),
                       f"transformer.h.{layer}.temporal_steepness": np.array(s)})
    cal = {"membrane_scale": [2.0, 3.0, 4.0], "importance_scale": 5.0}
    groups = map_variant("temporal-lif", params, 3, OPTS, cal)
    assert set(groups) == {"attention", "membrane", "membrane_hard"}
    m, h = groups["membrane"], groups["membrane_hard"]
    assert [u.name for u in m.units] == ["L0M0", "L1M0", "L2M0"]
    assert (m.address.hook, m.address.mode, m.address.unit_axis) == ("membrane", "rate", None)
    hard = ("membrane", "hard", "importance")
    assert (h.address.hook, h.address.mode, h.address.hook_input("input")) == hard
    assert h.carries_state and not m.carries_state
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


def test_the_registry_names_every_variant_once_and_each_kind_answers_its_hook() -> None:
    """Every gate kind's groups answer the hook its module calls; kinds of one variant sit at
    different sites; mappable() lists exactly the variants with a kind."""
    for name, variant in registry.VARIANTS.items():
        sites = [p.site for p in variant.parts]
        assert len(sites) == len(set(sites)), name
        assert variant.mappable == (name in registry.mappable()) == bool(variant.kinds)
        assert bool(variant.refused) != variant.mappable, name  # refused exactly when nothing maps
    params = {**attention_params(2, 3, refractory=True), **cfc_params(2, 3)}
    for layer in range(2):
        params.update({f"transformer.h.{layer}.temporal_{n}": np.array(0.5)
                       for n in ("decay", "threshold", "steepness")})
    cal = {"hidden_scale": [1.0, 1.0], "membrane_scale": [1.0, 1.0], "importance_scale": 1.0}
    for name in registry.mappable():
        groups = map_variant(name, params, 2, OPTS, cal)
        assert {g.address.hook for g in groups.values()} == {k.hook for k in registry.get(name).kinds}, name


def test_a_registered_variant_maps_and_an_unknown_one_is_refused() -> None:
    from ember_neuro.kinds import attention
    from ember_neuro.kinds.spec import Variant

    try:
        registry.register(Variant("lif-learnable-copy", "transformer", (attention.KIND,)))
        groups = map_variant("lif-learnable-copy", attention_params(2, 3), 2, OPTS)
        assert set(groups) == {"attention"}
    finally:
        registry.VARIANTS.pop("lif-learnable-copy", None)
    with pytest.raises(MappingError, match="not an Ember variant"):
        map_variant("lif-unknown", {}, 2, OPTS)
