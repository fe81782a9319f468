"""One entry point for every gate backend: float sigmoid, emulators, Lava.

Each backend runs a :class:`~ember_neuro.mappers.description.NeuronArray`
built from the same :class:`MappedGates`; only the arithmetic differs.
"""

from __future__ import annotations

import importlib.util

import numpy as np

TARGETS = ("lava-sim", "lava-sim-float", "emulator", "emulator-float", "loihi2")
LOIHI2_MISSING = (
    "target loihi2 needs Intel's lava-loihi extension (the Loihi 2 compiler, "
    "lava.magma.compiler.subcompilers.nc) and access to a Loihi 2 system; neither is "
    "installed here. Both come through the Intel Neuromorphic Research Community (INRC). "
    "Use --target lava-sim for the bit-accurate Loihi 2 simulation."
)


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run on this machine (message says why)."""


def is_fixed(target: str) -> bool:
    return target in ("lava-sim", "emulator", "loihi2")


def loihi2_available() -> bool:
    try:
        return importlib.util.find_spec("lava.magma.compiler.subcompilers.nc.ncproc_compiler") is not None
    except ModuleNotFoundError:
        return False


def check_target(target: str) -> None:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of: {', '.join(TARGETS)}")
    if target == "loihi2" and not loihi2_available():
        raise BackendUnavailable(LOIHI2_MISSING)


def run_raster(target: str, array, payload: np.ndarray, timeout_s: float = 120.0) -> np.ndarray:
    """Spike raster (T, M) bool of `array` driven by `payload` on `target`."""
    check_target(target)
    if target.startswith("emulator"):
        from ember_neuro.emulator import emulate

        _, raster = emulate(array, payload, record=True)
        return np.asarray(raster, dtype=bool)
    from ember_neuro.lava_backend import run_gate_array

    return np.asarray(run_gate_array(array, payload, timeout_s=timeout_s), dtype=bool)
