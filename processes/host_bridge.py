"""Host <-> Lava processes of a mapped neuron array: one payload in, one raster out, per window.

Two roles, each a small piece of step logic used by two process layouts:

* :class:`WindowFeed` -- the source.  At the first step of every window it takes
  the host payload (all host connections' slots, ``n_host`` values) and holds it;
  at every step it emits ``[held payload | table row t]``: one graded vector that
  every connection's Sparse synapse reads its own columns from (the chip tables,
  e.g. the dither, are generated here, row t at window step t).
* :class:`RasterCollector` -- the sink.  It collects the M neurons' spikes of the
  T window steps and hands the host one bit-packed (T, ceil(M/8)) uint8 raster.

``GateHostBridge`` runs both in one process (the runner's default: Lava's CPU
backend pays per process per step, ~1300 steps/s with six processes, ~2300 with
four); ``WindowSource`` + ``RasterSink`` run them as two (``fused=False``),
identical rasters.  The arithmetic stays in Lava's own Sparse and LIFReset.

Why per-window messages and not Lava's Injector/Extractor: the Injector only has
a float model (fixed-point synapses need integer payloads) and both exchange one
message per *step*; the gate input is held for a whole window and the host wants
the whole raster, so one message per window means T times fewer round trips.
The pipes are the same external-pipe mechanism the Injector/Extractor use.

Timing (Lava counts steps from 1): the source's window step is ``time_step - 1``
(window w, row r leave at step ``w T + r + 1``); a synapse delivers one step
later, so the sink's window step is ``time_step - 2`` and step 1 is pipeline fill.
In the fused bridge the sink part runs first: the LIF's spikes of step s depend
only on what the synapses buffered at s - 1, so the bridge hands over a finished
raster *before* it blocks on the host for the next payload (the other order
deadlocks: the host waits for the raster that completes in that very step).

Payloads: float64 (``floating_pt``) or int32 graded spikes (``fixed_pt``,
declared 24 bits, the Loihi 2 graded-spike width Lava's Python ports allow).

The chip-side window (:class:`ChipWindowBridge`, ember_neuro/backends/chip_window.py) needs only
one message each way per window: its bridge sends a window's gate values in one step and takes
the lanes' counts back two steps later (Sparse -> LIF -> Sparse -> graded neuron), emitting
nothing (a zero vector: no event on a board) in between.

Every bridge counts what crosses its chip-facing ports (:class:`ExchangeCounter`): the messages
(steps whose vector carries any non-zero value), the values, and their bytes (3 per graded
24-bit value; a spike vector as a bitmap, ceil(width / 8)).  The counts reach the host with
every result, so the exchanges per token are measured at the bridge, not derived on paper.

This module must stay free of import-time side effects: Lava imports every
module in this folder while it searches for ProcessModels.  Importing it imports
Lava: call ``ember_neuro.backends.lava.import_lava()`` first (fork quirk).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

SOURCE_PHASE = 1  # the source's window step 0 is Lava step 1
SINK_PHASE = 2  # ... and reaches the neurons one step later


def packed_width(size: int) -> int:
    """Bytes per raster row for `size` neurons (np.packbits along the last axis)."""
    return (int(size) + 7) // 8


def _check_table(table: np.ndarray) -> np.ndarray:
    table = np.asarray(table)
    if table.ndim != 2 or table.shape[0] < 1:
        raise ValueError(f"table must be a (T, C) array with T >= 1, got shape {table.shape}")
    return table


class WindowFeed:
    """Source step logic: hold the host payload for a window, append the table row of each step."""

    def __init__(self, table: np.ndarray, n_host: int, dtype: type) -> None:
        self.table = table
        self.out = np.zeros(n_host + table.shape[1], dtype=dtype)
        self.n_host = n_host

    def step(self, j: int, receive: Callable[[], np.ndarray]) -> np.ndarray:
        """Vector for source window step j (>= 0); receives a payload at each window start."""
        t = self.table.shape[0]
        if j % t == 0:
            self.out[: self.n_host] = receive()  # blocks until the host sends
        self.out[self.n_host:] = self.table[j % t]
        return self.out


class RasterCollector:
    """Sink step logic: collect T steps of spikes, return the packed raster when a window ends."""

    def __init__(self, timesteps: int, size: int) -> None:
        self.raster = np.zeros((timesteps, size), dtype=bool)

    def step(self, k: int, spikes: np.ndarray) -> np.ndarray | None:
        """Spikes of sink window step k; the packed (T, ceil(M/8)) raster at the window's end."""
        if k < 0:
            return None  # pipeline fill: no window has reached the neurons yet
        t = self.raster.shape[0]
        np.not_equal(spikes, 0, out=self.raster[k % t])
        return np.packbits(self.raster, axis=1) if k % t == t - 1 else None


STATS = ("to_chip_messages", "to_chip_values", "to_chip_bytes", "from_chip_messages", "from_chip_values",
         "from_chip_bytes", "setup_values", "steps")
GRADED_BYTES = 3  # a 24-bit graded payload


class ExchangeCounter:
    """What crossed a bridge's chip-facing ports so far (cumulative, in the order of STATS)."""

    def __init__(self) -> None:
        self.stats = np.zeros(len(STATS), np.int64)

    def sent(self, vector: np.ndarray) -> None:
        values = int(np.count_nonzero(vector))
        if values:
            self.stats[0:3] += (1, values, GRADED_BYTES * values)

    def received(self, vector: np.ndarray, graded: bool) -> None:
        values = int(np.count_nonzero(vector))
        if values:
            size = GRADED_BYTES * values if graded else packed_width(vector.shape[0])
            self.stats[3:6] += (1, values, size)

    def setup(self, vector: np.ndarray) -> None:
        self.stats[6] += int(np.count_nonzero(vector))

    def step(self) -> None:
        self.stats[7] += 1


class ChipWindowFeed:
    """Chip-side bridge logic: one message per window out, its lanes' answers back LATENCY steps later.

    At each step: first the answers due now go to the host (with the exchange counts), then the
    next window's message is sent if the host has one -- blocking for it only when nothing is in
    flight, so the network idles at no cost while the host computes -- else a zero vector.
    """

    def __init__(self, width: int, dither: np.ndarray, latency: int) -> None:
        self.latency = int(latency)  # steps from a message to its answers (backends/chip_window.py)
        self.zeros = np.zeros(width, np.int32)
        self.dither = np.asarray(dither, np.int32)
        self.no_dither = np.zeros_like(self.dither)
        self.counter = ExchangeCounter()
        self.due: list[int] = []
        self.started = False

    def dither_out(self) -> np.ndarray:
        """The Sigma holder's levels at the first step, zeros (no event) after."""
        if self.started:
            return self.no_dither
        self.started = True
        self.counter.setup(self.dither)
        return self.dither

    def collect(self, step: int, answer: np.ndarray) -> np.ndarray | None:
        """[answer | stats] if a window's answers are due at this step, else None."""
        self.counter.step()
        self.counter.received(answer, graded=True)
        if not self.due or self.due[0] != step:
            return None
        self.due.pop(0)
        return np.concatenate([answer.astype(np.int32), self.counter.stats.astype(np.int32)])

    def emit(self, step: int, poll: Callable[[], bool], receive: Callable[[], np.ndarray]) -> np.ndarray:
        """This step's message to the chip (a host window, or zeros)."""
        if self.due and not poll():
            return self.zeros
        message = np.asarray(receive(), np.int32)  # blocks while nothing is in flight
        self.due.append(step + self.latency)
        self.counter.sent(message)
        return message


# -- processes -----------------------------------------------------------------------------------


def _source_ports(proc: AbstractProcess, n_host: int, table: np.ndarray, buffer_size: int) -> None:
    proc.host_in = InPort(shape=(n_host,))
    proc.host_in.flag_external_pipe(buffer_size=buffer_size)
    proc.s_out = OutPort(shape=(n_host + table.shape[1],))
    proc.table = Var(shape=table.shape, init=table)


def _sink_ports(proc: AbstractProcess, timesteps: int, size: int, buffer_size: int) -> None:
    proc.host_out = OutPort(shape=(int(timesteps), packed_width(size)))
    proc.host_out.flag_external_pipe(buffer_size=buffer_size)


class GateHostBridge(AbstractProcess):
    """Source and sink in one process: ``host_in`` -> ``s_out``, ``s_in`` -> ``host_out``."""

    def __init__(self, *, n_host: int, size: int, table: np.ndarray, buffer_size: int = 4,
                 name: str | None = None) -> None:
        table = _check_table(table)
        super().__init__(name=name)
        _source_ports(self, n_host, table, buffer_size)
        self.s_in = InPort(shape=(size,))
        _sink_ports(self, table.shape[0], size, buffer_size)
        self.stats_out = OutPort(shape=(len(STATS),))  # the exchange counts, with every raster
        self.stats_out.flag_external_pipe(buffer_size=buffer_size)


class WindowSource(AbstractProcess):
    """The source alone: ``host_in`` (one payload per window) -> ``s_out`` (every step)."""

    def __init__(self, *, n_host: int, table: np.ndarray, buffer_size: int = 4,
                 name: str | None = None) -> None:
        table = _check_table(table)
        super().__init__(name=name)
        _source_ports(self, n_host, table, buffer_size)


class RasterSink(AbstractProcess):
    """The sink alone: ``a_in`` (M spikes every step) -> ``host_out`` (one raster per window)."""

    def __init__(self, *, size: int, timesteps: int, buffer_size: int = 4,
                 name: str | None = None) -> None:
        super().__init__(name=name)
        self.proc_params["timesteps"] = int(timesteps)
        self.a_in = InPort(shape=(size,))
        _sink_ports(self, timesteps, size, buffer_size)


class ChipWindowBridge(AbstractProcess):
    """The chip-side window's host side: ``host_in`` (one message per window) -> ``s_out``; the
    dither levels once through ``d_out``; the lanes' answers ``a_in`` -> ``host_out``
    (``[answers | exchange counts]`` per window)."""

    def __init__(self, *, width: int, lanes: int, dither: np.ndarray, latency: int, buffer_size: int = 4,
                 name: str | None = None) -> None:
        dither = np.asarray(dither)
        if dither.ndim != 1 or dither.size < 1:
            raise ValueError(f"dither must be a non-empty vector, got shape {dither.shape}")
        super().__init__(name=name)
        self.proc_params["latency"] = int(latency)
        self.host_in = InPort(shape=(int(width),))
        self.host_in.flag_external_pipe(buffer_size=buffer_size)
        self.s_out = OutPort(shape=(int(width),))
        self.d_out = OutPort(shape=dither.shape)
        self.dither = Var(shape=dither.shape, init=dither)
        self.a_in = InPort(shape=(int(lanes),))
        self.host_out = OutPort(shape=(int(lanes) + len(STATS),))
        self.host_out.flag_external_pipe(buffer_size=buffer_size)


# -- models (float64 and int32 payloads share the step logic above) ------------------------------


class _SourceModel(PyLoihiProcessModel):
    PAYLOAD_DTYPE: type = np.float64
    table: np.ndarray
    _feed: WindowFeed | None = None

    def _emit(self) -> None:
        """Send this step's vector (receiving the host payload at a window start)."""
        if self._feed is None:
            self._feed = WindowFeed(self.table, self.host_in._shape[0], self.PAYLOAD_DTYPE)
        self.s_out.send(self._feed.step(self.time_step - SOURCE_PHASE, self.host_in.recv))

    def run_spk(self) -> None:
        self._emit()


class _SinkModel(PyLoihiProcessModel):
    _sink: RasterCollector | None = None

    def _window(self) -> int:
        return int(self.proc_params["timesteps"])

    def _collect(self, spikes: np.ndarray) -> bool:
        """Record this step's spikes; hand a finished window's raster to the host (True if it did)."""
        if self._sink is None:
            self._sink = RasterCollector(self._window(), spikes.shape[0])
        raster = self._sink.step(self.time_step - SINK_PHASE, spikes)
        if raster is not None:
            self.host_out.send(raster)
        return raster is not None

    def run_spk(self) -> None:
        self._collect(self.a_in.recv())


class _BridgeModel(_SourceModel, _SinkModel):
    _counter: ExchangeCounter | None = None

    def _window(self) -> int:
        return int(self.table.shape[0])

    def run_spk(self) -> None:
        if self._counter is None:
            self._counter = ExchangeCounter()
        spikes = self.s_in.recv()
        self._counter.step()
        self._counter.received(spikes, graded=False)
        if self._collect(spikes):  # first hand over a finished raster (and what crossed so far) ...
            self.stats_out.send(self._counter.stats.astype(np.int32))
        self._emit()  # ... then block on the host for the next payload (the other order deadlocks)
        self._counter.sent(self._feed.out)


class _ChipBridgeModel(PyLoihiProcessModel):
    dither: np.ndarray
    _feed: ChipWindowFeed | None = None

    def run_spk(self) -> None:
        if self._feed is None:
            self._feed = ChipWindowFeed(self.host_in._shape[0], self.dither, self.proc_params["latency"])
        step = self.time_step
        result = self._feed.collect(step, self.a_in.recv())  # first the answers due now ...
        if result is not None:
            self.host_out.send(result)
        self.d_out.send(self._feed.dither_out())  # ... then this step's messages (blocking when idle)
        self.s_out.send(self._feed.emit(step, self.host_in.probe, self.host_in.recv))


def _cpu_model(proc: type, arithmetic: str):
    """@implements(proc, LoihiProtocol) @requires(CPU) @tag(arithmetic), in one decorator."""
    def declare(cls: type) -> type:
        return implements(proc=proc, protocol=LoihiProtocol)(requires(CPU)(tag(arithmetic)(cls)))

    return declare


def _float(port: type) -> LavaPyType:
    return LavaPyType(port.VEC_DENSE, float)


def _fixed(port: type) -> LavaPyType:
    return LavaPyType(port.VEC_DENSE, np.int32, precision=24)


def _raster() -> LavaPyType:
    return LavaPyType(PyOutPort.VEC_DENSE, np.uint8, precision=8)


class _FloatFeedPorts:
    """The source's ports, float64 payloads."""

    host_in: PyInPort = _float(PyInPort)
    s_out: PyOutPort = _float(PyOutPort)
    table: np.ndarray = LavaPyType(np.ndarray, float)


class _FixedFeedPorts:
    """The source's ports, int32 graded payloads (the mapping's: 13-bit unsigned input, 17-bit
    signed dither; declared 24-bit)."""

    PAYLOAD_DTYPE = np.int32
    host_in: PyInPort = _fixed(PyInPort)
    s_out: PyOutPort = _fixed(PyOutPort)
    table: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)


def _stats() -> LavaPyType:
    return LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=32)


@_cpu_model(GateHostBridge, "floating_pt")
class PyGateHostBridgeFloat(_FloatFeedPorts, _BridgeModel):
    """float64 payloads; receives Lava's float spikes (0.0 / 1.0)."""

    s_in: PyInPort = _float(PyInPort)
    host_out: PyOutPort = _raster()
    stats_out: PyOutPort = _stats()


@_cpu_model(GateHostBridge, "fixed_pt")
class PyGateHostBridgeFixed(_FixedFeedPorts, _BridgeModel):
    """int32 graded payloads; receives the bit-accurate LIF's int32 spikes."""

    s_in: PyInPort = _fixed(PyInPort)
    host_out: PyOutPort = _raster()
    stats_out: PyOutPort = _stats()


@_cpu_model(ChipWindowBridge, "fixed_pt")
class PyChipWindowBridgeFixed(_ChipBridgeModel):
    """int32 graded messages both ways (Lava's bit-accurate Sparse and GradedVec)."""

    host_in: PyInPort = _fixed(PyInPort)
    s_out: PyOutPort = _fixed(PyOutPort)
    d_out: PyOutPort = _fixed(PyOutPort)
    dither: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    a_in: PyInPort = _fixed(PyInPort)
    host_out: PyOutPort = _stats()


@_cpu_model(WindowSource, "floating_pt")
class PyWindowSourceFloat(_FloatFeedPorts, _SourceModel):
    pass


@_cpu_model(WindowSource, "fixed_pt")
class PyWindowSourceFixed(_FixedFeedPorts, _SourceModel):
    pass


@_cpu_model(RasterSink, "floating_pt")
class PyRasterSinkFloat(_SinkModel):
    a_in: PyInPort = _float(PyInPort)
    host_out: PyOutPort = _raster()


@_cpu_model(RasterSink, "fixed_pt")
class PyRasterSinkFixed(_SinkModel):
    a_in: PyInPort = _fixed(PyInPort)
    host_out: PyOutPort = _raster()
