"""GateHostBridge: payload source, dither generator and raster sink in one process.

Why: Lava's CPU simulator runs every Process as an OS process and synchronises
all of them through the runtime service at every step; with 2 cores the cost is
per process, not per neuron (~1300 steps/s with six processes, ~2300 with four,
nearly independent of width up to ~10^4).  Fusing the three host-facing roles
into one process leaves four: this bridge, the two Sparse synapses and LIFReset.
The arithmetic stays in Lava's own Sparse and LIF models; the rasters are
identical to the unfused PayloadSource + DitherGenerator + SpikeRasterSink
network (tested).

Ports: ``x_out`` (I graded), ``d_out`` (N graded), ``s_in`` (M spikes), and the
host pipes ``host_in`` (one (I,) payload per window) and ``host_out`` (one
bit-packed (T, ceil(M/8)) uint8 raster per window).  Payloads: float64
(``floating_pt``) or int32 graded spikes (``fixed_pt``, declared 24 bits).

Step order inside ``run_spk`` matters.  The LIF's spikes of step s depend only on
what the synapses buffered at step s-1, so the bridge first receives them (and
hands a finished window to the host), and only then blocks on the host for the
next payload.  Receiving the payload first would deadlock: the host waits for the
raster that completes in that very step.

Timing (Lava steps from 1): payload window w and dither row r leave at step
``w T + r + 1``; spikes of step s >= 2 are window (s-2) // T, row (s-2) % T.

This module must stay free of import-time side effects: Lava imports every
module in this folder while it searches for ProcessModels.  Importing it imports
Lava: call ``ember_neuro.lava_backend.import_lava()`` first (fork quirk).
"""

from __future__ import annotations

import numpy as np
from ember_neuro.processes.host_io import packed_width
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class GateHostBridge(AbstractProcess):
    """Host-facing half of the gate network (see module docstring)."""

    def __init__(
        self,
        *,
        n_inputs: int,
        size: int,
        dither: np.ndarray,
        buffer_size: int = 4,
        name: str | None = None,
    ) -> None:
        table = np.asarray(dither)
        if table.ndim != 2 or min(table.shape) < 1:
            raise ValueError(f"dither must be a non-empty (T, N) table, got shape {table.shape}")
        super().__init__(name=name)
        t = table.shape[0]
        self.host_in = InPort(shape=(n_inputs,))
        self.host_in.flag_external_pipe(buffer_size=buffer_size)
        self.x_out = OutPort(shape=(n_inputs,))
        self.d_out = OutPort(shape=(table.shape[1],))
        self.s_in = InPort(shape=(size,))
        self.host_out = OutPort(shape=(t, packed_width(size)))
        self.host_out.flag_external_pipe(buffer_size=buffer_size)
        self.dither = Var(shape=table.shape, init=table)


class _BridgeModel(PyLoihiProcessModel):
    PAYLOAD_DTYPE: type = np.float64
    dither: np.ndarray

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self._payload: np.ndarray | None = None
        self._raster: np.ndarray | None = None

    def run_spk(self) -> None:
        t = self.dither.shape[0]
        spikes = self.s_in.recv()
        k = self.time_step - 2  # neuron window step; < 0: pipeline fill
        if k >= 0:
            if self._raster is None:
                self._raster = np.zeros((t, spikes.shape[0]), dtype=bool)
            np.not_equal(spikes, 0, out=self._raster[k % t])
            if k % t == t - 1:
                self.host_out.send(np.packbits(self._raster, axis=1))
        j = self.time_step - 1  # source window step
        if j % t == 0:
            self._payload = self.host_in.recv().astype(self.PAYLOAD_DTYPE, copy=False)
        self.x_out.send(self._payload)
        self.d_out.send(self.dither[j % t])


@implements(proc=GateHostBridge, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyGateHostBridgeFloat(_BridgeModel):
    """float64 payloads; receives Lava's float spikes (0.0 / 1.0)."""

    host_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    d_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    host_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.uint8, precision=8)
    dither: np.ndarray = LavaPyType(np.ndarray, float)


@implements(proc=GateHostBridge, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyGateHostBridgeFixed(_BridgeModel):
    """int32 graded payloads (input: 13-bit unsigned, dither: 17-bit signed in the mapping)."""

    PAYLOAD_DTYPE = np.int32
    host_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    d_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    host_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.uint8, precision=8)
    dither: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
