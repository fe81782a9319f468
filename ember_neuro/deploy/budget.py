"""Choosing the window: the fewest timesteps T, and the neurons per gate N, that meet a per-gate
error within a Loihi 2 neuron budget.

Why: on Loihi a timestep costs latency and static energy, while neurons are plentiful (about a
million per chip).  N neurons per gate over T steps give N*T levels, so the same fidelity can
be bought with fewer steps and more neurons.  Numpy only: the search takes a function that maps
at a given (T, N), so the same code serves a checkpoint or a saved parameter set.

    choose(map_at, neurons_for, max_error=0.01)            fewest T (then fewest N) meeting 0.01
    choose(map_at, neurons_for, timesteps=8)               at T = 8, the most N the budget holds
    choose(map_at, neurons_for, max_error=0.01, timesteps=8)   at T = 8, the fewest N meeting 0.01

The error of a mapping is its exact fixed-point worst case over every unit's input range
(``NeuronGroup.fixed_worst_error``), the same number ``map`` reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ember_neuro.errors import BadInput
from ember_neuro.mappers import NeuronGroup
from ember_neuro.mappers.gate import MAX_LEVELS, MAX_TIMESTEPS
from ember_neuro.mappers.loihi import NEURONS_PER_CHIP, NEURONS_PER_CORE

MapAt = Callable[[int, int], Mapping[str, NeuronGroup]]


class BudgetError(BadInput):
    """A target the budget cannot meet; the message says what the best reachable is."""


@dataclass
class Choice:
    timesteps: int
    neurons_per_gate: int
    worst_error: float
    neurons: int
    tried: list[dict] = field(default_factory=list)

    @property
    def cores(self) -> int:
        return math.ceil(self.neurons / NEURONS_PER_CORE)

    def as_dict(self) -> dict:
        return {"timesteps": self.timesteps, "neurons_per_gate": self.neurons_per_gate,
                "worst_error": self.worst_error, "loihi2_neurons": self.neurons, "cores": self.cores,
                "mappings_tried": len(self.tried)}


def worst_error(groups: Mapping[str, NeuronGroup]) -> float:
    """The largest exact worst case of any rate-coded unit (the hard membrane is not rate-coded)."""
    return max(float(g.fixed_worst_error.max()) for g in groups.values() if not g.carries_state)


def deployed_neurons(groups: Mapping[str, NeuronGroup], slots: int, neurons_per_gate: int) -> int:
    """Neurons of the deployed layout: every unit owns `slots` inputs of N neurons each (one LIF
    neuron per slot for the hard membrane, whatever N)."""
    return sum(slots * (1 if g.carries_state else len(g.units) * neurons_per_gate)
               for g in groups.values())


def choose(map_at: MapAt, neurons_for: Callable[[int], int], max_error: float | None = None,
           timesteps: int | None = None, budget: int = NEURONS_PER_CHIP) -> Choice:
    """The window meeting the target within `budget` neurons (see the module docstring)."""
    if max_error is None and timesteps is None:
        raise BadInput("give a target: a per-gate error (--max-error), a window length (-T), or both")
    if max_error is not None and not 0 < max_error < 1:
        raise BadInput(f"--max-error must be in (0, 1), got {max_error}")
    if timesteps is not None and not 1 <= timesteps <= MAX_TIMESTEPS:
        raise BadInput(f"-T {timesteps} out of range (1..{MAX_TIMESTEPS})")
    if budget < neurons_for(1):
        raise BudgetError(f"a budget of {budget:,} neurons is below one neuron per gate: N = 1 needs "
                          f"{neurons_for(1):,}")
    n_budget = 1
    while neurons_for(n_budget * 2) <= budget:
        n_budget *= 2
    lo, hi = n_budget, n_budget * 2  # largest N with neurons_for(N) <= budget, by bisection
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if neurons_for(mid) <= budget else (lo, mid)
    n_budget = lo
    tried: list[dict] = []
    cache: dict[tuple[int, int], float] = {}

    def err(t: int, n: int) -> float:
        if (t, n) not in cache:
            cache[(t, n)] = worst_error(map_at(t, n))
            tried.append({"timesteps": t, "neurons_per_gate": n, "worst_error": cache[(t, n)]})
        return cache[(t, n)]

    def n_cap(t: int) -> int:
        return max(1, min(n_budget, MAX_LEVELS // t))

    def fewest_n(t: int) -> int:
        """Smallest N <= n_cap(t) meeting max_error at T = t (the error falls as N grows)."""
        lo, hi = 0, n_cap(t)  # err(t, hi) <= max_error is known
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if err(t, mid) <= max_error else (mid, hi)
        return hi

    def done(t: int, n: int) -> Choice:
        return Choice(t, n, err(t, n), neurons_for(n), tried)

    if timesteps is not None:
        if max_error is None:
            return done(timesteps, n_cap(timesteps))
        best = err(timesteps, n_cap(timesteps))
        if best > max_error:
            raise BudgetError(f"a per-gate error of {max_error:g} is out of reach at T = {timesteps} within "
                              f"{budget:,} neurons: the best reachable is {best:.5f} "
                              f"(N = {n_cap(timesteps)}); allow more neurons or more timesteps")
        return done(timesteps, fewest_n(timesteps))
    # fewest T: no N*T levels round better than 1/(2NT), so T >= 1/(2 max_error n_budget)
    t_lo = min(MAX_TIMESTEPS, max(1, math.floor(1.0 / (2.0 * max_error * n_budget))))
    t = t_lo
    while err(t, n_cap(t)) > max_error:  # double until it meets (or the range ends) ...
        if t >= MAX_TIMESTEPS:
            raise BudgetError(f"a per-gate error of {max_error:g} is out of reach within {budget:,} neurons "
                              f"and T <= {MAX_TIMESTEPS}: the best reachable is "
                              f"{min(e['worst_error'] for e in tried):.5f}; allow more neurons or a larger "
                              "error (fixed-point slack limits steep gates)")
        t_lo, t = t, min(2 * t, MAX_TIMESTEPS)
    lo, hi = t_lo, t  # ... then bisect: err(hi) meets, err(lo) does not (unless lo == hi)
    if lo == hi or err(lo, n_cap(lo)) <= max_error:
        hi = lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if err(mid, n_cap(mid)) <= max_error else (mid, hi)
    return done(hi, fewest_n(hi))
