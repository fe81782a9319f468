"""Every backend in one table: name -> what it computes and how to run a neuron array on it.

Each backend is a small adapter over the same :class:`~ember_neuro.mappers.network.NeuronArray`;
none of them sees trained parameters.  ``map``, ``run``, ``validate``, the
benchmarks and the INRC bundle all choose backends here.  Adding a backend means
adding one :class:`Backend` entry to :data:`BACKENDS`.

    name            arithmetic  runs on
    float           -           the trained sigmoid itself (hybrid reference; no spikes)
    emulator        fixed       vectorised torch emulator (bit-exact with lava-sim)
    emulator-float  float       same, float64
    numpy           fixed       numpy reference of the Loihi 2 arithmetic (no torch)
    numpy-float     float       numpy reference of Lava's float LIF
    lava-sim        fixed       Lava, Loihi2SimCfg, bit-accurate Loihi 2 models
    lava-sim-float  float       Lava, Loihi2SimCfg, floating point
    loihi2          fixed       Lava, Loihi2HwCfg on a Loihi 2 system (Intel's extension, INRC)
    snntorch        float       snnTorch Leaky (reference simulator, validation)
    norse           float       Norse LIFCell (reference simulator, validation)

This module imports neither torch nor Lava (ember_neuro.backends.lava imports
Lava only when a network is built); each adapter imports its library when it runs.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ember_neuro.backends.lava import LOIHI2_MISSING, loihi2_available
from ember_neuro.errors import BadInput, Unavailable
from ember_neuro.mappers.network import NeuronArray, NeuronGroup, gate_counts


class BackendUnavailable(Unavailable):
    """The requested backend cannot run on this machine (the message says why)."""


class UnknownBackend(BadInput):
    """A backend name that is not in the registry."""


def _emulator_rasters(array: NeuronArray, payload: np.ndarray, timeout_s: float) -> np.ndarray:
    if array.reset_windows > 1:  # state carried window to window: one row at a time (numpy steps)
        return _numpy_rasters(array, payload, timeout_s)
    from ember_neuro.backends.emulator import emulate

    return np.asarray(emulate(array, np.atleast_2d(payload), record=True)[1], dtype=bool)


def _emulator_counts(array: NeuronArray, payload: np.ndarray) -> np.ndarray:
    if array.reset_windows > 1:
        return _numpy_rasters(array, payload, 0.0).sum(axis=1)
    from ember_neuro.backends.emulator import emulate

    return np.asarray(emulate(array, np.atleast_2d(payload)))


def _emulator_gate_counts(group: NeuronGroup, unit_index: np.ndarray,
                          payload: np.ndarray) -> np.ndarray | None:
    from ember_neuro.backends.emulator import group_gate_counts

    return group_gate_counts(group, unit_index, payload)


def _numpy_rasters(array: NeuronArray, payload: np.ndarray, timeout_s: float) -> np.ndarray:
    from ember_neuro.backends.numpy_ref import rasters

    return rasters(array, payload)


def _lava_rasters(hardware: bool) -> Callable[[NeuronArray, np.ndarray, float], np.ndarray]:
    def run(array: NeuronArray, payload: np.ndarray, timeout_s: float) -> np.ndarray:
        from ember_neuro.backends.lava import LavaGateRunner

        with LavaGateRunner(array, timeout_s=timeout_s, hardware=hardware) as runner:
            return runner.run_windows(np.atleast_2d(payload))

    return run


def _lava_open(hardware: bool) -> Callable[..., Any]:
    def open_runner(array: NeuronArray, timeout_s: float, **kwargs: Any) -> Any:
        from ember_neuro.backends.lava import LavaGateRunner

        return LavaGateRunner(array, timeout_s=timeout_s, hardware=hardware, **kwargs)

    return open_runner


def _reference_rasters(module: str) -> Callable[[NeuronArray, np.ndarray, float], np.ndarray]:
    def run(array: NeuronArray, payload: np.ndarray, timeout_s: float) -> np.ndarray:
        from ember_neuro.backends import references

        sim = getattr(references, f"run_{module}")
        return np.stack([sim(array, row) for row in np.atleast_2d(payload)])

    return run


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ModuleNotFoundError, ValueError):
        return False


@dataclass(frozen=True)
class Backend:
    """One way to run a neuron array.

    ``rasters(array, payload (B, W), timeout_s) -> (B, T, M) bool`` runs one window per
    row; ``open(array, timeout_s)`` starts a persistent runner (Lava: compile once,
    ``run_windows`` many times) for hybrid inference; ``counts`` skips the raster
    where a backend can.  ``twin`` is the other implementation of the same
    arithmetic, checked spike for spike by ``map``.  ``label`` is the name in
    validation reports.
    """

    name: str
    fixed: bool | None  # None: no spikes (the trained sigmoid)
    description: str
    label: str = ""
    rasters: Callable[[NeuronArray, np.ndarray, float], np.ndarray] | None = None
    fast_counts: Callable[[NeuronArray, np.ndarray], np.ndarray] | None = None
    fast_gate_counts: Callable[[NeuronGroup, np.ndarray, np.ndarray], np.ndarray | None] | None = None
    open: Callable[..., Any] | None = None
    twin: str | None = None
    needs: tuple[str, ...] = ()
    validated: bool = False  # one of the simulators `validate` compares
    available_check: Callable[[], bool] | None = field(default=None, repr=False)
    unavailable_message: str = ""

    @property
    def spiking(self) -> bool:
        return self.fixed is not None

    @property
    def persistent(self) -> bool:
        """Whether hybrid inference keeps one compiled network (fixed layout) for the whole run."""
        return self.open is not None

    def check(self) -> None:
        """Raise BackendUnavailable (with how to get it) if this backend cannot run here."""
        missing = [m for m in self.needs if not _has(m)]
        if missing:
            raise BackendUnavailable(f"backend {self.name} needs {', '.join(missing)}, which is not "
                                     "installed (see the README's set-up)")
        if self.available_check is not None and not self.available_check():
            raise BackendUnavailable(self.unavailable_message)

    def counts(self, array: NeuronArray, payload: np.ndarray, timeout_s: float = 120.0) -> np.ndarray:
        """(B, M) spike counts, one window per payload row."""
        if self.fast_counts is not None:
            return self.fast_counts(array, payload)
        assert self.rasters is not None, f"{self.name} does not spike"
        return self.rasters(array, payload, timeout_s).sum(axis=1)

    def gate_counts(self, group: NeuronGroup, unit_index: np.ndarray, payload: np.ndarray,
                    timeout_s: float = 120.0) -> np.ndarray:
        """(B, I) spike counts per gate input (its N neurons summed), one window per payload row:
        the backend's per-gate shortcut where it has one, else the neuron layout's counts."""
        if self.fast_gate_counts is not None:
            counts = self.fast_gate_counts(group, unit_index, payload)
            if counts is not None:
                return counts
        array = group.layout(unit_index, fixed=bool(self.fixed))
        return gate_counts(self.counts(array, payload, timeout_s), group.neurons_per_gate)


_LAVA = ("lava",)
BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("float", None, "the trained sigmoid (no spikes): the reference for hybrid runs"),
    Backend("emulator", True, "vectorised torch emulator of Lava's bit-accurate Loihi 2 arithmetic",
            "emulator-fixed", _emulator_rasters, _emulator_counts, fast_gate_counts=_emulator_gate_counts,
            twin="lava-sim", needs=("torch",), validated=True),
    Backend("emulator-float", False, "vectorised torch emulator of Lava's floating-point LIF",
            "emulator-float", _emulator_rasters, _emulator_counts, twin="lava-sim-float",
            needs=("torch",), validated=True),
    Backend("numpy", True, "numpy reference of the Loihi 2 arithmetic (no torch, no Lava)",
            "numpy-fixed", _numpy_rasters, twin="emulator"),
    Backend("numpy-float", False, "numpy reference of Lava's floating-point LIF", "numpy-float",
            _numpy_rasters, twin="emulator-float"),
    Backend("lava-sim", True, "Lava's bit-accurate Loihi 2 simulation (Loihi2SimCfg, fixed_pt)",
            "lava-fixed", _lava_rasters(False), open=_lava_open(False), twin="emulator", needs=_LAVA,
            validated=True),
    Backend("lava-sim-float", False, "Lava's floating-point simulation (Loihi2SimCfg, floating_pt)",
            "lava-float", _lava_rasters(False), open=_lava_open(False), twin="emulator-float",
            needs=_LAVA, validated=True),
    Backend("loihi2", True, "Lava on a Loihi 2 system (Loihi2HwCfg; Intel's lava-loihi extension)",
            "loihi2", _lava_rasters(True), open=_lava_open(True), needs=_LAVA,
            available_check=loihi2_available, unavailable_message=LOIHI2_MISSING),
    Backend("snntorch", False, "snnTorch Leaky neurons driven by the same synaptic input", "snntorch",
            _reference_rasters("snntorch"), needs=("snntorch", "torch"), validated=True),
    Backend("norse", False, "Norse LIFCell driven by the same synaptic input", "norse",
            _reference_rasters("norse"), needs=("norse", "torch"), validated=True),
)}


def names(spiking: bool | None = None, hybrid: bool = False) -> tuple[str, ...]:
    """Backend names, optionally only spiking ones, or those `run` can use."""
    out = []
    for b in BACKENDS.values():
        if spiking is not None and b.spiking != spiking:
            continue
        if hybrid and b.name in ("snntorch", "norse"):
            continue
        out.append(b.name)
    return tuple(out)


def get(name: str) -> Backend:
    if name not in BACKENDS:
        raise UnknownBackend(f"unknown backend {name!r}; expected one of: {', '.join(BACKENDS)}")
    return BACKENDS[name]


def require(name: str) -> Backend:
    """The backend, checked to run on this machine (BackendUnavailable with the reason if not)."""
    backend = get(name)
    backend.check()
    return backend


def validated() -> tuple[Backend, ...]:
    """The six simulators `validate` compares, in report order."""
    order = ("lava-sim-float", "lava-sim", "emulator-float", "emulator", "snntorch", "norse")
    return tuple(BACKENDS[n] for n in order)
