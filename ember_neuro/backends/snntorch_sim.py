"""The snntorch backend: snnTorch's ``Leaky`` neurons on the float neuron array (validation reference).

The adapter of ember_neuro/backends/registry.py over references.run_snntorch (the recipe and
why it is exact are there).
"""

from __future__ import annotations

import numpy as np

from ember_neuro.backends.references import run_snntorch
from ember_neuro.mappers.network import NeuronArray


def rasters(array: NeuronArray, payload: np.ndarray, timeout_s: float | None = None) -> np.ndarray:
    return np.stack([run_snntorch(array, row) for row in np.atleast_2d(payload)])
