"""A unit whose trained fire cannot move more than the level bound is a host constant: no neurons.

The rule must be exact (the constant is within the bound of the trained fire over the whole input
box), the saved mapping must keep it, and every backend must answer the same constant, with the
unit's lanes gone from the deployed layout.
"""

from __future__ import annotations

import numpy as np
import pytest

from ember_neuro.hybrid.paths import RateGate
from ember_neuro.kinds import registry as kinds
from ember_neuro.mappers import MappingOptions, load_mapped, save_mapped
from ember_neuro.mappers.gate import host_constants, input_corners

from ..helpers import attention_params

pytestmark = pytest.mark.torchfree


def flat_params(refractory: bool = False) -> dict:
    """Two layers of three heads; head 1 of layer 0 has k = softplus(-9) ~ 1e-4 (flat), the rest steep."""
    params = attention_params(2, 3, refractory=refractory, seed=5)
    params["transformer.h.0.attn.gate.steepness"][1] = -9.0
    return params


def mapped(params: dict, t: int = 8, n: int = 4):
    net = kinds.map_variant("lif-refractory" if "transformer.h.0.attn.gate.ref_strength" in params
                            else "lif-learnable", params, 2, MappingOptions(timesteps=t, neurons_per_gate=n))
    return net["attention"]


@pytest.mark.parametrize("refractory", [False, True])
def test_only_a_flat_unit_becomes_a_constant_within_the_bound(refractory) -> None:
    group = mapped(flat_params(refractory))
    assert list(np.flatnonzero(~group.on_neurons)) == [1]
    c = group.host_constant[1]
    # the whole input box, densely: the constant is never further than the bound from the trained fire
    rng = np.random.default_rng(0)
    idx = np.ones(4000, np.int64)
    values = {src: rng.uniform(0, 1, idx.size) for src in group.fixed_params.host_sources}
    corner_idx, corners = input_corners(group)
    assert np.abs(group.target(values, idx) - c).max() <= group.bound
    assert np.abs(group.target(corners, corner_idx)[corner_idx == 1] - c).max() <= group.bound
    assert host_constants(mapped(attention_params(2, 3, seed=5))) is None  # steep units stay on neurons


def test_the_saved_mapping_keeps_it(tmp_path) -> None:
    from ember_neuro.mappers.network import MappedNetwork

    group = mapped(flat_params())
    net = MappedNetwork("lif-learnable", {"attention": group}, {"timesteps": 8}, {"sha256": "x"})
    path = save_mapped(net, tmp_path / "m.npz")
    back = load_mapped(path).group("attention")
    assert np.array_equal(np.isnan(back.host_constant), np.isnan(group.host_constant))
    assert back.host_constant[1] == group.host_constant[1]


@pytest.mark.parametrize("backend", ["numpy", pytest.param("lava-sim", marks=pytest.mark.lava)])
def test_every_backend_answers_the_constant_and_deploys_no_lanes(backend) -> None:
    group = mapped(flat_params())
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, (1, 3, 5, 5))  # (batch, head, query, key) of layer 0
    with RateGate(group, backend, slots=25) as gate:
        fire = gate.fire(0, {"input": p})
        if gate.runners:
            layout = gate.layout(0)
            assert sorted(set(layout.unit_index.tolist())) == [0, 2]  # unit 1 has no lanes
    assert np.all(fire[:, 1] == group.host_constant[1])
    reference = RateGate(group, "numpy").fire(0, {"input": p})
    assert np.array_equal(fire, reference)
