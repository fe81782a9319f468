"""A backend adapter that lives only in the tests: a persistent runner that steps its windows one at a
time, in order, carrying u and v where the layout says so -- the adapter shape a chip-side runner has
(``open`` -> :class:`~ember_neuro.backends.registry.Runner`), built on the numpy reference's step."""

from __future__ import annotations

import numpy as np

from ember_neuro.backends import numpy_ref
from ember_neuro.mappers import NeuronArray

OPENED: list[StreamRunner] = []  # every runner opened, so a test can check each was closed


class StreamRunner:
    """One compiled layout, window after window; satisfies the registry's Runner protocol."""

    def __init__(self, array: NeuronArray, timeout_s: float):
        self.array, self.timeout_s = array, timeout_s
        self.state: tuple[np.ndarray, np.ndarray] | None = None
        self.windows = 0
        self.closed = False

    def run_windows(self, payloads: np.ndarray) -> np.ndarray:
        if self.closed:
            raise RuntimeError("run_windows on a closed runner")
        a = self.array
        out = np.zeros((len(payloads), a.timesteps, a.size), dtype=bool)
        for w, row in enumerate(np.atleast_2d(payloads)):
            carried = None if self.windows % a.reset_windows == 0 else self.state
            self.state, out[w] = numpy_ref.step_window(a, carried, row)
            self.windows += 1
        return out

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> StreamRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open(array: NeuronArray, timeout_s: float, **options: object) -> StreamRunner:  # noqa: A001
    runner = StreamRunner(array, timeout_s)
    OPENED.append(runner)
    return runner


def rasters(array: NeuronArray, payload: np.ndarray, timeout_s: float | None = None,
            **options: object) -> np.ndarray:
    with open(array, timeout_s or 0.0) as runner:
        return runner.run_windows(payload)
