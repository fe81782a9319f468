"""Host <-> Lava channels for the gate network, one message per window.

Why not Lava's ``Injector``/``Extractor``: the Injector only has a float model
(the fixed-point synapses need integer payloads), and both exchange one message
per *step*.  The gate input is held for a whole window of T steps and the host
wants the whole (T, M) raster, so these processes exchange one message per
*window*: T times fewer host round trips, which is what makes a continuous run
fast.  Both use the same external-pipe mechanism as the Injector/Extractor (a
shared-memory channel between the host and the ProcessModel, created by the
runtime).

PayloadSource
    host -> ``host_in`` (one (I,) payload per window) -> ``s_out`` every step.
    Payload: float64 in ``floating_pt``; int32 in ``fixed_pt`` (the mapping
    sends round(|p| 2**12) <= 4096, a 13-bit unsigned graded spike).
    The model *blocks* on the host channel at the first step of each window:
    the network advances exactly as fast as the host feeds it.
SpikeRasterSink
    ``a_in`` (spikes of M neurons, every step) -> ``host_out``: one message per
    window, the (T, M) raster bit-packed along M (uint8, shape (T, ceil(M/8))).

Timing (Lava counts steps from 1): the source's window w covers steps
``source_phase + w T ... + T - 1``; the sink's window w covers
``sink_phase + w T ...``; steps before ``sink_phase`` are received and dropped.

This module must stay free of import-time side effects: Lava imports every
module in this folder while it searches for ProcessModels.  Importing it imports
Lava: call ``ember_neuro.lava_backend.import_lava()`` first (fork quirk).
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


def packed_width(size: int) -> int:
    """Bytes per raster row for `size` neurons (np.packbits along the last axis)."""
    return (int(size) + 7) // 8


class PayloadSource(AbstractProcess):
    """Graded source fed by the host once per window of `timesteps` steps."""

    def __init__(
        self,
        *,
        shape: tuple[int],
        timesteps: int,
        phase: int = 1,
        buffer_size: int = 4,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.proc_params["timesteps"] = int(timesteps)
        self.proc_params["phase"] = int(phase)
        self.host_in = InPort(shape=shape)
        self.host_in.flag_external_pipe(buffer_size=buffer_size)
        self.s_out = OutPort(shape=shape)


class _PayloadSourceModel(PyLoihiProcessModel):
    PAYLOAD_DTYPE: type = np.float64

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self._t = int(proc_params["timesteps"])
        self._phase = int(proc_params["phase"])
        self._payload: np.ndarray | None = None

    def run_spk(self) -> None:
        k = self.time_step - self._phase
        if k >= 0 and k % self._t == 0:
            self._payload = self.host_in.recv()  # blocks until the host sends
        elif self._payload is None:  # steps before the first window
            self._payload = np.zeros(self.s_out._shape, dtype=self.PAYLOAD_DTYPE)
        self.s_out.send(self._payload)


@implements(proc=PayloadSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyPayloadSourceFloat(_PayloadSourceModel):
    """float64 payload."""

    host_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)


@implements(proc=PayloadSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyPayloadSourceFixed(_PayloadSourceModel):
    """int32 payload carrying an unsigned graded spike (declared 24 bits)."""

    PAYLOAD_DTYPE = np.int32

    host_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)


class SpikeRasterSink(AbstractProcess):
    """Collects T steps of M spikes and hands the packed raster to the host."""

    def __init__(
        self,
        *,
        shape: tuple[int],
        timesteps: int,
        phase: int = 2,
        buffer_size: int = 4,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.proc_params["timesteps"] = int(timesteps)
        self.proc_params["phase"] = int(phase)
        self.a_in = InPort(shape=shape)
        self.host_out = OutPort(shape=(int(timesteps), packed_width(shape[0])))
        self.host_out.flag_external_pipe(buffer_size=buffer_size)


class _SpikeRasterSinkModel(PyLoihiProcessModel):
    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self._t = int(proc_params["timesteps"])
        self._phase = int(proc_params["phase"])
        self._raster: np.ndarray | None = None

    def run_spk(self) -> None:
        spikes = self.a_in.recv()
        k = self.time_step - self._phase
        if k < 0:
            return  # pipeline fill: no window has reached the neurons yet
        if self._raster is None:
            self._raster = np.zeros((self._t, spikes.shape[0]), dtype=bool)
        row = k % self._t
        np.not_equal(spikes, 0, out=self._raster[row])
        if row == self._t - 1:
            self.host_out.send(np.packbits(self._raster, axis=1))


@implements(proc=SpikeRasterSink, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySpikeRasterSinkFloat(_SpikeRasterSinkModel):
    """Receives float spikes (Lava's float LIF sends 0.0/1.0)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    host_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.uint8, precision=8)


@implements(proc=SpikeRasterSink, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeRasterSinkFixed(_SpikeRasterSinkModel):
    """Receives int32 spikes (Lava's bit-accurate LIF)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    host_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.uint8, precision=8)
