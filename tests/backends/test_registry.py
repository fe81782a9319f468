"""The backend registry: self-describing entries, adapters loaded only when a backend runs, and every
adapter meeting the contract the rest of the package relies on.  Torch-free: the registry and the
numpy and Lava adapters run on the Python 3.10 suite."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from ember_neuro.backends import registry
from ember_neuro.mappers import MappingOptions, map_gates

from ..helpers import random_units

pytestmark = pytest.mark.torchfree


def test_importing_the_registry_loads_no_backend() -> None:
    prefixes = ("ember_neuro.backends.", "lava", "torch", "snntorch", "norse")
    code = ("import json, sys; import ember_neuro.backends.registry as r; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == ["ember_neuro.backends.registry"]


def test_capabilities_are_fields() -> None:
    """What map, run and validate list comes from the entries' own fields."""
    b = registry.BACKENDS
    assert registry.names(spiking=True, hybrid=True) == tuple(
        n for n, e in b.items() if e.spiking and e.hybrid)
    assert "float" not in registry.names(spiking=True) and "float" in registry.names(hybrid=True)
    order = registry.validated()
    assert [e.validation for e in order] == sorted(e.validation for e in order)
    assert len({e.label for e in order}) == len(order)  # report labels are unique
    for fixed in (True, False):  # one reference per arithmetic, with a twin of the same arithmetic
        ref = registry.reference(fixed)
        assert ref.fixed == fixed and registry.get(ref.twin).fixed == fixed
    for e in b.values():
        assert e.spiking == bool(e.adapter)
        assert e.twin is None or registry.get(e.twin).fixed == e.fixed


def test_unknown_and_unavailable_backends_say_why() -> None:
    with pytest.raises(registry.UnknownBackend, match="expected one of"):
        registry.get("truenorth")
    from ember_neuro.backends.lava import loihi2_available

    if not loihi2_available():
        with pytest.raises(registry.BackendUnavailable, match="INRC"):
            registry.require("loihi2")


@pytest.mark.parametrize("name", ["numpy", "numpy-float"])
def test_an_adapter_meets_the_contract(name: str) -> None:
    """rasters (B, T, M) bool, counts their sum, gate_counts per input -- for any adapter."""
    be = registry.require(name)
    rng = np.random.default_rng(0)
    group = map_gates(random_units(rng, 3), MappingOptions(timesteps=6, neurons_per_gate=2))
    idx = rng.integers(0, 3, 10)
    x = group.encode(rng.uniform(0, 1, (2, 10)), bool(be.fixed), idx)
    array = group.layout(idx, bool(be.fixed))
    r = be.rasters(array, x, 30.0)
    assert r.shape == (2, 6, 20) and r.dtype == bool
    np.testing.assert_array_equal(be.counts(array, x), r.sum(axis=1))
    np.testing.assert_array_equal(be.gate_counts(group, idx, x), r.sum(axis=1).reshape(2, 10, 2).sum(axis=2))
    assert not be.persistent
