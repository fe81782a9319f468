"""Dither generator: the shared, input-independent half of the gate drive.

The gate network compares each neuron's drive k(p - theta) with an ascending
schedule of logit levels (see mappers/lif_gate.py).  The levels depend only on
the step inside a window, not on the gate, so one generator with N graded output
channels serves every neuron: channel c at window step t carries dither[t, c].

Timing: the generator emits row ``(time_step - phase) % T`` at Lava step
``time_step`` (Lava counts steps from 1).  With ``phase = 1`` row 0 leaves at
step 1, i.e. one step *before* the neurons' window starts, because a Dense or
Sparse synapse delivers what it received one step later.

Payload: float64 in ``floating_pt``; int32 in ``fixed_pt`` (the mapping uses
|dither| <= 15 * 2**12 < 2**16, a 17-bit signed graded spike; declared as 24-bit,
the Loihi 2 graded-spike width).

This module must stay free of import-time side effects: Lava imports every
module in this folder while it searches for ProcessModels.  Importing it imports
Lava: call ``ember_neuro.lava_backend.import_lava()`` first (fork quirk).
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class DitherGenerator(AbstractProcess):
    """N graded channels cycling through the rows of a (T, N) table.

    Parameters
    ----------
    dither : (T, N) array, the payload of channel c at window step t.
    phase : Lava step (1-based) at which row 0 is emitted; rows repeat every T.
    """

    def __init__(self, *, dither: np.ndarray, phase: int = 1, name: str | None = None) -> None:
        table = np.asarray(dither)
        if table.ndim != 2 or table.shape[0] < 1 or table.shape[1] < 1:
            raise ValueError(f"dither must be a non-empty (T, N) table, got shape {table.shape}")
        super().__init__(name=name)
        self.proc_params["phase"] = int(phase)
        self.s_out = OutPort(shape=(table.shape[1],))
        self.dither = Var(shape=table.shape, init=table)


class _DitherModel(PyLoihiProcessModel):
    """Shared step logic; subclasses only fix the payload type."""

    dither: np.ndarray

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self._phase = int(proc_params["phase"])

    def run_spk(self) -> None:
        row = (self.time_step - self._phase) % self.dither.shape[0]
        self.s_out.send(self.dither[row])


@implements(proc=DitherGenerator, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyDitherModelFloat(_DitherModel):
    """Float payload (float64)."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    dither: np.ndarray = LavaPyType(np.ndarray, float)


@implements(proc=DitherGenerator, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDitherModelFixed(_DitherModel):
    """Integer payload: int32 carrying a signed graded spike of up to 24 bits."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    dither: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
