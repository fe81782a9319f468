"""Golden traces: the input windows a hybrid run sent to the gate neurons, with the spikes
Lava's bit-accurate simulator answered -- saved, then replayed and compared bit for bit.

Why: an INRC reviewer (or a Loihi 2 board) must be able to check that the gate network
built from the saved mapping still answers exactly what it answered when the bundle was
made, without torch and without the host model.  A trace per gate path holds

    unit_index  (width,)       which gate unit owns each input slot (the layout)
    payload     (W, P)         the host payload of every window, in order
    raster      (W, T, M)      the spikes, packed 8 per byte along M

Windows are replayed in order from a fresh network, so neurons whose state carries
across windows (temporal-lif's hard membrane, reset every n_layer windows) see the
same history.  Numpy only: this module ships inside the bundle.
"""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ember_neuro.atomic import atomic_write_bytes
from ember_neuro.errors import BadInput
from ember_neuro.mappers import MappedNetwork, NeuronArray

FORMAT = "ember-neuro/golden-trace"
FORMAT_VERSION = 1


class GoldenFileError(BadInput):
    """A golden-trace file that cannot be used; the message is one line."""


@dataclass
class Trace:
    """The windows one gate path exchanged with the neurons (fixed point)."""

    path: str  # attention | hidden | membrane | membrane_hard
    group: str  # the neuron group of the saved mapping
    unit_index: np.ndarray  # (width,) int
    payloads: list[np.ndarray] = field(default_factory=list)  # each (W_i, P)
    rasters: list[np.ndarray] = field(default_factory=list)  # each (W_i, T, M) bool

    @property
    def windows(self) -> int:
        return sum(len(p) for p in self.payloads)

    def payload(self) -> np.ndarray:
        return np.concatenate(self.payloads) if self.payloads else np.zeros((0, 0), np.int64)

    def raster(self) -> np.ndarray:
        return np.concatenate(self.rasters)

    def array(self, net: MappedNetwork) -> NeuronArray:
        return net.group(self.group).layout(self.unit_index, fixed=True)


@dataclass
class Activity:
    """What the neurons did over a run: the counts behind the per-token resource estimate."""

    windows: int = 0
    steps: int = 0
    neuron_updates: int = 0
    synops: int = 0  # graded spikes delivered to a synapse (a zero payload sends nothing)
    spikes: int = 0

    def add(self, other: Activity) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}


def window_activity(array: NeuronArray, payloads: np.ndarray, rasters: np.ndarray) -> Activity:
    """Activity of windows (W, P) -> rasters (W, T, M) on `array`.

    Per step every neuron updates once; a host connection delivers one synaptic
    operation per neuron whose payload is non-zero (held for the T steps of the
    window); a chip table delivers one where its value at that step is non-zero.
    """
    w, t = payloads.shape[0], array.timesteps
    syn = 0
    for col in array.host_columns():
        syn += int((payloads[:, col] != 0).sum()) * t
    for s in array.tables:
        syn += int((np.asarray(s.table)[:, s.column] != 0).sum()) * w
    return Activity(windows=w, steps=w * t, neuron_updates=w * t * array.size, synops=syn,
                    spikes=int(rasters.sum()))


class Recorder:
    """Taps the gate paths of a hybrid run (gatepath.GateEvaluator.tap): keeps the first
    `max_windows` windows of each path as a golden trace."""

    def __init__(self, max_windows: int = 64):
        self.max_windows = int(max_windows)
        self.traces: dict[str, Trace] = {}

    def attach(self, name: str, evaluator: Any) -> None:
        # the persistent layout's slot -> unit map: what verify.py rebuilds the network from
        trace = Trace(name, evaluator.group.name, np.asarray(evaluator.layout().unit_index, np.int64))
        self.traces[name] = trace

        def tap(payloads: np.ndarray, rasters: np.ndarray) -> None:
            room = self.max_windows - trace.windows
            if room > 0:
                trace.payloads.append(np.array(payloads[:room]))
                trace.rasters.append(np.array(rasters[:room], dtype=bool))

        evaluator.tap = tap


def _narrow(a: np.ndarray) -> np.ndarray:
    """The smallest signed integer type holding every value of `a` (payloads are <= 24 bits)."""
    for dt in (np.int16, np.int32):
        if a.size == 0 or (a.min() >= np.iinfo(dt).min and a.max() <= np.iinfo(dt).max):
            return a.astype(dt)
    return a.astype(np.int64)


def save_golden(traces: dict[str, Trace], path: str | Path, meta: dict[str, Any]) -> Path:
    """Write the traces (compressed .npz, no pickles) atomically; returns the path."""
    arrays: dict[str, np.ndarray] = {}
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta, "traces": []}
    for name, tr in traces.items():
        if not tr.windows:
            continue
        raster = tr.raster()
        arrays[f"{name}/unit_index"] = tr.unit_index.astype(np.int32)
        arrays[f"{name}/payload"] = _narrow(tr.payload())
        arrays[f"{name}/raster"] = np.packbits(raster, axis=-1)
        header["traces"].append({"path": name, "group": tr.group, "windows": int(raster.shape[0]),
                                 "timesteps": int(raster.shape[1]), "neurons": int(raster.shape[2]),
                                 "spikes": int(raster.sum())})
    arrays["header"] = np.array(json.dumps(header))

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    atomic_write_bytes(path, write)
    return Path(path)


def load_golden(path: str | Path) -> tuple[dict[str, Any], dict[str, Trace]]:
    """(header, traces) of a golden file; GoldenFileError (one line) if unusable."""
    path = Path(path)
    if not path.is_file():
        raise GoldenFileError(f"golden trace {path} not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["header"][()]))
            if header.get("format") != FORMAT:
                raise GoldenFileError(f"{path} is not an ember-neuro golden trace")
            if int(header.get("format_version", 0)) > FORMAT_VERSION:
                raise GoldenFileError(f"{path} has golden format version {header['format_version']}; "
                                      f"this code reads up to {FORMAT_VERSION}")
            traces = {}
            for t in header["traces"]:
                name = t["path"]
                raster = np.unpackbits(z[f"{name}/raster"], axis=-1, count=t["neurons"]).astype(bool)
                traces[name] = Trace(name, t["group"], z[f"{name}/unit_index"].astype(np.int64),
                                     [z[f"{name}/payload"].astype(np.int64)], [raster])
    except GoldenFileError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError, EOFError) as exc:
        raise GoldenFileError(f"{path} is not a readable golden trace ({type(exc).__name__})") from None
    return header, traces


@dataclass
class ReplayResult:
    path: str
    windows: int
    neurons: int
    steps: int
    spikes: int
    mismatched_spikes: int
    first_mismatch: tuple[int, int, int] | None  # (window, step, neuron)
    seconds: float

    @property
    def exact(self) -> bool:
        return self.mismatched_spikes == 0

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["exact"] = self.exact
        return d


def compare(path: str, expected: np.ndarray, got: np.ndarray, seconds: float) -> ReplayResult:
    diff = expected != got
    first = tuple(int(i) for i in np.argwhere(diff)[0]) if diff.any() else None
    return ReplayResult(path, expected.shape[0], expected.shape[2], expected.shape[0] * expected.shape[1],
                        int(expected.sum()), int(diff.sum()), first, seconds)  # type: ignore[arg-type]


def replay(net: MappedNetwork, traces: dict[str, Trace], backend: str = "lava-sim", timeout_s: float = 120.0,
           open_kwargs: dict[str, Any] | None = None,
           progress: Callable[[str], None] | None = None) -> list[ReplayResult]:
    """Run every trace's windows on `backend` (in order, from a fresh network) and compare."""
    from ember_neuro.backends import registry

    be = registry.require(backend)
    results = []
    for name, tr in traces.items():
        if progress is not None:
            progress(name)
        array = tr.array(net)
        payload, expected = tr.payload(), tr.raster()
        t0 = time.perf_counter()
        if be.persistent:
            runner = be.open(array, timeout_s, **(open_kwargs or {}))
            try:
                got = runner.run_windows(payload)
            finally:
                runner.close()
        else:
            got = be.rasters(array, payload, timeout_s)
        results.append(compare(name, expected, got, time.perf_counter() - t0))
    return results


__all__ = ["Activity", "GoldenFileError", "Recorder", "ReplayResult", "Trace", "compare", "load_golden",
           "replay", "save_golden", "window_activity"]
