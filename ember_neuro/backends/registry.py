"""Every backend in one table: name -> what it computes, what it may be used for, and its adapter.

Each backend is a small adapter over the same :class:`~ember_neuro.mappers.network.NeuronArray`;
none of them sees trained parameters.  ``map``, ``run``, ``validate``, the benchmarks and the
INRC bundle all choose backends here, and everything they need to know is a field of the
entry: whether it spikes and in which arithmetic, whether hybrid inference may use it, where
it stands among the simulators ``validate`` compares, which implementation is its twin.
Adding a backend means one adapter module and one :class:`Backend` entry in :data:`BACKENDS`.

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

An adapter is a module with ``rasters(array, payload (B, W), timeout_s, **options) -> (B, T, M)``
and optionally ``counts(array, payload, **options)``, ``gate_counts(group, unit_index, payload,
**options)`` (a per-gate shortcut, or None where it is not exact), ``open(array, timeout_s,
**options, **kwargs) -> Runner`` (a persistent network) and ``unavailable(**options)`` (why it
cannot run here, or None).  Importing this module loads no adapter: each is imported when its
backend first runs.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from ember_neuro.errors import BadInput, Unavailable
from ember_neuro.mappers.network import NeuronArray, NeuronGroup, gate_counts


class BackendUnavailable(Unavailable):
    """The requested backend cannot run on this machine (the message says why)."""


class UnknownBackend(BadInput):
    """A backend name that is not in the registry."""


class Runner(Protocol):
    """A compiled, running network of one layout, evaluating window after window (``Backend.open``)."""

    def run_windows(self, payloads: np.ndarray) -> np.ndarray:
        """(W, payload_width) payloads -> (W, T, M) bool rasters, in order (state carries where it does)."""

    def close(self) -> None:
        """Stop, leaving no process or shared memory behind; safe to call twice."""

    def __enter__(self) -> Runner: ...

    def __exit__(self, *exc: object) -> None: ...


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ModuleNotFoundError, ValueError):
        return False


@dataclass(frozen=True)
class Backend:
    """One way to run a neuron array (see the module docstring)."""

    name: str
    fixed: bool | None  # None: no spikes (the trained sigmoid)
    description: str
    adapter: str = ""  # the module that runs it ("" for the trained sigmoid)
    label: str = ""  # its name in validation reports
    hybrid: bool = False  # hybrid inference may run its gates (run, the bundle's generate.py)
    validation: int | None = None  # its place among the simulators `validate` compares (None: not one)
    reference: bool = False  # validation's reference of its arithmetic (NIR round trip, rasters, plots)
    twin: str | None = None  # the other implementation of its arithmetic, compared spike for spike by `map`
    needs: tuple[str, ...] = ()  # modules it imports
    options: Mapping[str, Any] = field(default_factory=dict)  # passed to every adapter call

    @property
    def spiking(self) -> bool:
        return self.fixed is not None

    def module(self) -> ModuleType:
        if not self.adapter:
            raise ValueError(f"backend {self.name} does not spike")
        return importlib.import_module(self.adapter)

    @property
    def persistent(self) -> bool:
        """Whether hybrid inference keeps one compiled network (fixed layout) for the whole run."""
        return bool(self.adapter) and hasattr(self.module(), "open")

    def check(self) -> None:
        """Raise BackendUnavailable (with how to get it) if this backend cannot run here."""
        missing = [m for m in self.needs if not _has(m)]
        if missing:
            raise BackendUnavailable(f"backend {self.name} needs {', '.join(missing)}, which is not "
                                     "installed (see the README's set-up)")
        why = getattr(self.module(), "unavailable",
                      lambda **o: None)(**self.options) if self.adapter else None
        if why:
            raise BackendUnavailable(why)

    def rasters(self, array: NeuronArray, payload: np.ndarray, timeout_s: float = 120.0) -> np.ndarray:
        """(B, T, M) bool spike rasters, one window per payload row."""
        return self.module().rasters(array, np.atleast_2d(payload), timeout_s, **self.options)

    def open(self, array: NeuronArray, timeout_s: float, **kwargs: Any) -> Runner:
        """A persistent runner of this layout (only where ``persistent``)."""
        return self.module().open(array, timeout_s, **self.options, **kwargs)

    def counts(self, array: NeuronArray, payload: np.ndarray, timeout_s: float = 120.0) -> np.ndarray:
        """(B, M) spike counts, one window per payload row."""
        module = self.module()
        if hasattr(module, "counts"):
            return module.counts(array, np.atleast_2d(payload), **self.options)
        return self.rasters(array, payload, timeout_s).sum(axis=1)

    def gate_counts(self, group: NeuronGroup, unit_index: np.ndarray, payload: np.ndarray,
                    timeout_s: float = 120.0) -> np.ndarray:
        """(B, I) spike counts per gate input (its N neurons summed), one window per payload row:
        the adapter's per-gate shortcut where it has one, else the neuron layout's counts."""
        shortcut = getattr(self.module(), "gate_counts", None)
        counts = shortcut(group, unit_index, payload, **self.options) if shortcut is not None else None
        if counts is not None:
            return counts
        array = group.layout(unit_index, fixed=bool(self.fixed))
        return gate_counts(self.counts(array, payload, timeout_s), group.neurons_per_gate)


_LAVA = ("lava",)
BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("float", None, "the trained sigmoid (no spikes): the reference for hybrid runs", hybrid=True),
    Backend("emulator", True, "vectorised torch emulator of Lava's bit-accurate Loihi 2 arithmetic",
            "ember_neuro.backends.emulator", "emulator-fixed", hybrid=True, validation=3, twin="lava-sim",
            needs=("torch",)),
    Backend("emulator-float", False, "vectorised torch emulator of Lava's floating-point LIF",
            "ember_neuro.backends.emulator", "emulator-float", hybrid=True, validation=2,
            twin="lava-sim-float", needs=("torch",)),
    Backend("numpy", True, "numpy reference of the Loihi 2 arithmetic (no torch, no Lava)",
            "ember_neuro.backends.numpy_ref", "numpy-fixed", hybrid=True, twin="emulator"),
    Backend("numpy-float", False, "numpy reference of Lava's floating-point LIF",
            "ember_neuro.backends.numpy_ref", "numpy-float", hybrid=True, twin="emulator-float"),
    Backend("lava-sim", True, "Lava's bit-accurate Loihi 2 simulation (Loihi2SimCfg, fixed_pt)",
            "ember_neuro.backends.lava", "lava-fixed", hybrid=True, validation=1, reference=True,
            twin="emulator", needs=_LAVA),
    Backend("lava-sim-float", False, "Lava's floating-point simulation (Loihi2SimCfg, floating_pt)",
            "ember_neuro.backends.lava", "lava-float", hybrid=True, validation=0, reference=True,
            twin="emulator-float", needs=_LAVA),
    Backend("loihi2", True, "Lava on a Loihi 2 system (Loihi2HwCfg; Intel's lava-loihi extension)",
            "ember_neuro.backends.lava", "loihi2", hybrid=True, needs=_LAVA, options={"hardware": True}),
    Backend("snntorch", False, "snnTorch Leaky neurons driven by the same synaptic input",
            "ember_neuro.backends.snntorch_sim", "snntorch", validation=4, needs=("snntorch", "torch")),
    Backend("norse", False, "Norse LIFCell driven by the same synaptic input",
            "ember_neuro.backends.norse_sim", "norse", validation=5, needs=("norse", "torch")),
)}


def names(spiking: bool | None = None, hybrid: bool = False) -> tuple[str, ...]:
    """Backend names, optionally only spiking ones, or those hybrid inference can use."""
    return tuple(b.name for b in BACKENDS.values()
                 if (spiking is None or b.spiking == spiking) and (not hybrid or b.hybrid))


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
    """The simulators `validate` compares, in report order."""
    return tuple(sorted((b for b in BACKENDS.values() if b.validation is not None),
                        key=lambda b: b.validation))


def reference(fixed: bool) -> Backend:
    """The validation's reference simulator of an arithmetic (Lava: the one a board runs)."""
    return next(b for b in validated() if b.reference and b.fixed == fixed)
