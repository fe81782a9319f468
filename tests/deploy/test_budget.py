"""Choosing (T, N) for a per-gate error within a neuron budget (ember_neuro/deploy/budget.py): the choice
is the fewest timesteps, checked against a brute-force scan of the same mappings."""

import dataclasses

import numpy as np
import pytest

from ember_neuro.deploy import budget as B
from ember_neuro.mappers import GateUnit, MappingOptions, map_gates

pytestmark = pytest.mark.torchfree

UNITS = [GateUnit(0, h, th, 0.1, k) for h, (th, k) in enumerate([(0.66, 8.2), (0.3, 2.0), (-1.5, 0.3)])]
SLOTS = 16


def map_at(t, n):
    return {"attention": map_gates(UNITS, MappingOptions(timesteps=t, neurons_per_gate=n))}


def neurons_for(n):
    return B.deployed_neurons(map_at(1, 1), SLOTS, n)


@pytest.mark.parametrize("max_error", [0.05, 0.01])
@pytest.mark.parametrize("budget", [3 * SLOTS * 4, 3 * SLOTS * 32])
def test_fewest_timesteps_then_fewest_neurons(max_error, budget):
    c = B.choose(map_at, neurons_for, max_error=max_error, budget=budget)
    assert c.worst_error <= max_error and c.neurons <= budget
    n_budget = budget // (3 * SLOTS)
    assert c.neurons == 3 * SLOTS * c.neurons_per_gate
    # brute force: no shorter window meets the target with any N the budget allows
    for t in range(1, c.timesteps):
        assert B.worst_error(map_at(t, n_budget)) > max_error, t
    if c.neurons_per_gate > 1:
        assert B.worst_error(map_at(c.timesteps, c.neurons_per_gate - 1)) > max_error


def test_fixed_window_takes_the_fewest_or_the_most_neurons():
    c = B.choose(map_at, neurons_for, max_error=0.01, timesteps=8, budget=10**6)
    assert c.timesteps == 8 and c.worst_error <= 0.01
    assert B.worst_error(map_at(8, c.neurons_per_gate - 1)) > 0.01
    most = B.choose(map_at, neurons_for, timesteps=8, budget=3 * SLOTS * 5)
    assert most.neurons_per_gate == 5 and most.neurons == 3 * SLOTS * 5


def test_unreachable_targets_say_what_is_reachable():
    with pytest.raises(B.BudgetError, match=r"out of reach .* best reachable is 0\.\d+"):
        B.choose(map_at, neurons_for, max_error=1e-4, budget=3 * SLOTS * 2)
    with pytest.raises(B.BudgetError, match="N = 1 needs 48"):
        B.choose(map_at, neurons_for, max_error=0.01, budget=10)
    with pytest.raises(B.BudgetError, match="at T = 4 .* best reachable"):
        B.choose(map_at, neurons_for, max_error=0.001, timesteps=4, budget=3 * SLOTS * 8)
    with pytest.raises(B.BadInput, match="give a target"):
        B.choose(map_at, neurons_for)


def test_deployed_neurons_counts_a_carried_neuron_once_per_slot():
    g = map_at(4, 1)["attention"]
    carried = dataclasses.replace(g, reset_windows=4)  # the hard membrane: one LIF neuron per slot
    assert B.deployed_neurons({"attention": g, "membrane_hard": carried}, 10, 3) == 10 * 3 * 3 + 10
    assert np.isclose(B.worst_error({"attention": g}), g.fixed_worst_error.max())
