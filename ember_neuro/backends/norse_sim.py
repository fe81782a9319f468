"""The norse backend: Norse's ``LIFCell`` on the float neuron array (validation reference).

The adapter of ember_neuro/backends/registry.py over references.run_norse (the recipe and why
it is exact are there).
"""

from __future__ import annotations

import numpy as np

from ember_neuro.backends.references import run_norse
from ember_neuro.mappers.network import NeuronArray


def rasters(array: NeuronArray, payload: np.ndarray, timeout_s: float | None = None) -> np.ndarray:
    return np.stack([run_norse(array, row) for row in np.atleast_2d(payload)])
