"""Run a mapped neuron array on Lava -- its CPU simulator (Loihi2SimCfg) or Loihi 2 (Loihi2HwCfg).

Two networks.  :class:`ChipWindowRunner`, the default of ``open()`` wherever it is exact
(fixed-point memoryless rate gates), runs a window as one step and exchanges one message each
way per window (backends/chip_window.py, docs/mapping.md section 10; built by
:func:`_build_chip`).  :class:`LavaGateRunner` is the per-step network below, for float Lava,
the hard membrane and ``bridge="per-step"``.  Both count what crosses their bridge
(``runner.exchanges``).

The per-step network (compiled and started once per runner)::

    GateHostBridge --[payload | table row] (graded)--> Sparse, one per connection --> LIFReset (M)
        ^                                               (its weights, its weight_exp)      |
        '-------------------------------------- spikes (M) --------------------------------'

The bridge sends one graded vector per step: the host payload of the window
(every host connection's I slots) followed by the chip tables' row (the
dither).  Each connection of the :class:`~ember_neuro.mappers.network.NeuronArray`
is one Lava ``Sparse`` (``num_message_bits=24``, its own ``weight_exp``) whose
(M x width) matrix reads its own columns of that vector; all of them feed the
LIF's ``a_in``, connected in the array's connection order.  Lava's own Sparse
and LIFReset (``reset_interval=T``) carry all arithmetic, so fixed point is
Lava's bit-accurate Loihi model.  Our processes (``ember_neuro.processes``) only
feed and read: the fused GateHostBridge by default, or (``fused=False``) the
separate WindowSource and RasterSink -- identical rasters, slower, because Lava's
CPU backend pays per process per step (one OS process each, all synced by the
runtime service every step).

Run configuration.  :func:`run_config` builds ``Loihi2SimCfg`` (select_tag
fixed_pt / floating_pt) for the simulator and ``Loihi2HwCfg`` (fixed_pt, with
optional profiler callbacks) for hardware; the hardware one is only built when
Intel's lava-loihi extension is importable (``loihi2_available``), never as a
silent stand-in for the simulator.

Timing.  A synapse delivers one step late, so the neurons' window w occupies Lava
steps ``w T + 2 ... w T + T + 1`` while payload and dither of window w leave at
steps ``w T + 1 ... w T + T``; LIFReset resets u, v when ``step % T == 2 % T``.
Lava's CPU LIFReset uses ``time_step % reset_interval``, so any T works (no
power-of-2 requirement in the Python models; tested with T = 7).  Neuron step 1
is pipeline fill and is dropped.

Speed.  The runtime runs continuously (``RunContinuous``); the bridge blocks on
its host pipe at the first step of every window, so one payload in and one
bit-packed raster out per window are the only host synchronisation -- no
per-window ``run(RunSteps)`` round trip.  ``run_windows`` pipelines windows
through the pipe buffers.  Measured (2 cores, shared with another busy process,
T = 32, fixed point): ~1600-2300 steps/s at width 512 and ~1500-1700 at width
3072 (fused; unfused ~1200-1700), ~180-200 steps/s at width 100 000 (there the
LIF's numpy arithmetic dominates); startup (compile + fork) ~0.5 s.

Layout.  Per-neuron parameters (weights in the synapses, bias in the neurons) are
fixed when the runner compiles, from ``unit_index`` (which unit each of the
``width`` input slots evaluates).  Lava's ``set_var`` moves one scalar per channel
message and needs a paused runtime, so re-laying out per window would cost more
than the windows; build one runner per layout (one compile per run).  To serve
chunks of different units with one runner, give every unit its own lanes
(``unit_index = repeat(arange(U), slots)``) and send payload 0 to idle slots:
width is nearly free up to ~10^4 (see Speed).

Shutdown.  ``close()`` (also via ``with``, atexit and on every error path) asks
the runtime to stop, feeds a dummy payload so a source blocked on the host can
finish its step, drains the raster channel, and, if that does not complete within
``stop_timeout_s``, kills the runtime's processes and shuts its shared-memory
manager down.  Children are forked with SIGINT ignored (Ctrl-C reaches only the
host, which then stops them) and, on Linux, with a parent-death signal, so even a
killed host leaves no orphans.

Fork quirk.  Lava calls ``multiprocessing.set_start_method('fork')`` when its
runtime module is imported; that raises ``RuntimeError: context has already been
set`` if anything fixed the start method earlier (even a bare
``get_start_method()``).  :func:`import_lava` clears the context for that import
and restores a non-fork method afterwards; the runtime is built under 'fork'.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

from ember_neuro.backends import chip_window as cw
from ember_neuro.backends.chip_window import ANSWER_STEPS, BRIDGES, ChipWindowError, chip_window, one_step
from ember_neuro.errors import RuntimeFault, Unavailable
from ember_neuro.mappers import loihi
from ember_neuro.mappers.network import NeuronArray

PAYLOAD_BITS = loihi.PAYLOAD_BITS  # declared graded-spike width of every connection
LOIHI2_EXTENSION = "lava.utils.loihi2_profiler"  # ships only with Intel's lava-loihi
_RUNTIME_MODULE = "lava.magma.runtime.message_infrastructure.multiprocessing"


class LavaTimeoutError(RuntimeFault, TimeoutError):
    """A blocking exchange with the Lava runtime did not complete in time."""


class LavaRuntimeError(RuntimeFault):
    """The Lava runtime failed (a process died or reported an error)."""


class LavaUnavailable(Unavailable):
    """A Lava target that cannot run on this machine (the message says why)."""


LOIHI2_MISSING = (
    "target loihi2 needs Intel's lava-loihi extension (the Loihi 2 compiler and profiler, "
    f"{LOIHI2_EXTENSION}) and access to a Loihi 2 system; neither is installed here. Both come "
    "through the Intel Neuromorphic Research Community (INRC). Use lava-sim for the bit-accurate "
    "Loihi 2 simulation."
)


# -- Lava's private runtime state: the one place this module touches it -------------------------
# Lava 0.10 has no public way to list a runtime's processes (to notice one died, or to kill
# them), to stop a runtime whose bridge is blocked on its host pipe, or to release the shared
# memory of a runtime that did not stop: Runtime.stop() hangs in each of those cases.  These
# helpers reach into Runtime's private attributes for exactly that; nothing else does.

def _actors(runtime: Any) -> list[Any]:
    """The runtime's OS processes (the services and the process models)."""
    mi = runtime._messaging_infrastructure
    return list(mi.actors) if mi is not None else []


def _is_started(runtime: Any) -> bool:
    return bool(runtime._is_started)


def _mark_stopped(runtime: Any) -> None:
    """Tell the runtime it is stopped, so Runtime.__del__ does not stop it again."""
    runtime._is_running = False
    runtime._is_started = False


def _finish_stop(runtime: Any) -> None:
    """After every service answered TERMINATED: join the actors, shut the shared memory down."""
    runtime._is_running = False
    runtime._messaging_infrastructure.stop()
    if runtime._watchdog_manager is not None:
        runtime._watchdog_manager.stop()


def _release(runtime: Any) -> None:
    """Last resort after killing the actors: release the shared memory and the watchdog."""
    mi = runtime._messaging_infrastructure
    with contextlib.suppress(Exception):
        if mi is not None and mi.smm is not None:
            mi.smm.shutdown()
    with contextlib.suppress(Exception):
        if runtime._watchdog_manager is not None:
            runtime._watchdog_manager.stop()


def _waitable_queue(port: Any) -> Any:
    """The queue behind a receive port, which Lava's own Extractor polls with a timeout (or None)."""
    return getattr(port, "_queue", None)


@contextlib.contextmanager
def _start_method(method: str | None) -> Iterator[None]:
    """Temporarily set the global multiprocessing start method (None: unset)."""
    prev = mp.get_start_method(allow_none=True)
    if prev == method:
        yield
        return
    mp.set_start_method(method, force=True)
    try:
        yield
    finally:
        if mp.get_start_method(allow_none=True) != prev:
            mp.set_start_method(prev, force=True)


def import_lava() -> None:
    """Import Lava's runtime despite an already fixed multiprocessing context."""
    if _RUNTIME_MODULE in sys.modules:
        return
    prev = mp.get_start_method(allow_none=True)
    if prev is None:
        __import__(_RUNTIME_MODULE)  # Lava sets 'fork' itself
        return
    mp.set_start_method(None, force=True)
    try:
        __import__(_RUNTIME_MODULE)
    finally:
        if prev != "fork":
            mp.set_start_method(prev, force=True)


_CHILD_GUARD: dict[str, Any] = {"armed": False, "hooked": False, "prctl": None, "parent": 0}


def _after_fork_in_child() -> None:
    """In Lava's children only: ignore SIGINT, and die with the host (Linux)."""
    if not _CHILD_GUARD["armed"]:
        return
    _CHILD_GUARD["armed"] = False
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if _CHILD_GUARD["prctl"] is not None:
        with contextlib.suppress(Exception):
            _CHILD_GUARD["prctl"](1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != _CHILD_GUARD["parent"]:  # the host died while forking
        os._exit(1)


@contextlib.contextmanager
def _lava_children() -> Iterator[None]:
    """Fork Lava's processes ignoring SIGINT and tied to the host's life.

    Ctrl-C then reaches only the host, which stops the runtime cleanly instead of
    every child dying mid-step; a Ctrl-C during the fork itself is deferred to the
    end of this block.  The parent-death signal (Linux) leaves no orphans even if
    the host is killed.  Main thread only: the death signal follows the forking
    *thread*, and only the main thread may set signal handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if not _CHILD_GUARD["hooked"]:
        if sys.platform.startswith("linux"):
            with contextlib.suppress(Exception):  # resolved here, not after fork
                _CHILD_GUARD["prctl"] = ctypes.CDLL(None, use_errno=True).prctl
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _CHILD_GUARD["hooked"] = True
    interrupted: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, _frame: interrupted.append(signum))
    _CHILD_GUARD.update(armed=True, parent=os.getpid())
    try:
        yield
    finally:
        _CHILD_GUARD["armed"] = False
        signal.signal(signal.SIGINT, old)
    if interrupted:
        raise KeyboardInterrupt


def loihi2_available() -> bool:
    """Whether Intel's lava-loihi extension (Loihi 2 compiler and profiler) is importable.

    ``lava.utils.loihi.is_installed()`` checks this very module; done here with
    importlib so nothing of Lava's runtime is imported just to ask.
    """
    import importlib.util

    try:
        return importlib.util.find_spec(LOIHI2_EXTENSION) is not None
    except ModuleNotFoundError:
        return False


def run_config(fixed: bool, hardware: bool, pins: dict[Any, Any],
               callbacks: list[Any] | None = None) -> Any:
    """The Lava run configuration: Loihi2HwCfg on hardware, Loihi2SimCfg otherwise."""
    from lava.magma.core.run_configs import Loihi2HwCfg, Loihi2SimCfg

    if hardware:
        if not fixed:
            raise ValueError("Loihi 2 runs fixed point only (use lava-sim-float for float)")
        return Loihi2HwCfg(select_tag="fixed_pt", exception_proc_model_map=pins,
                           callback_fxs=list(callbacks or []))
    return Loihi2SimCfg(select_tag="fixed_pt" if fixed else "floating_pt", exception_proc_model_map=pins)


def _build(array: NeuronArray, buffer_size: int, fused: bool, hardware: bool = False,
           callbacks: list[Any] | None = None) -> tuple[dict[str, Any], Any]:
    """Create and connect the Lava processes for `array`; returns (procs, run config)."""
    import_lava()
    from lava.proc.lif.process import LIFReset
    from lava.proc.sparse.process import Sparse
    from scipy.sparse import csr_matrix

    from ember_neuro.processes import host_bridge as hb

    fixed = array.fixed
    t, m = array.timesteps, array.size
    dt = np.int32 if fixed else np.float64
    width = array.source_width
    rows = np.arange(m)
    # column offset of every synapse inside the bridge's vector: host blocks, then tables
    offsets, start = [], 0
    for s in array.synapses:
        offsets.append(start)
        start += array.n_inputs if s.from_host else int(s.table.shape[1])
    lif = LIFReset(
        shape=(m,), du=array.du, dv=array.dv, vth=array.vth,
        bias_mant=np.asarray(array.bias_mant).astype(dt), bias_exp=np.asarray(array.bias_exp).astype(dt),
        # u, v reset when a neuron window (Lava steps w T + 2 ...) starts, every reset_windows windows
        reset_interval=t * array.reset_windows, reset_offset=hb.SINK_PHASE % (t * array.reset_windows),
    )
    synapses = []
    for s, off in zip(array.synapses, offsets, strict=True):
        w = csr_matrix((np.asarray(s.weight).astype(dt), (rows, off + s.column)), shape=(m, width))
        syn = Sparse(weights=w, num_message_bits=PAYLOAD_BITS, weight_exp=int(s.weight_exp))
        syn.a_out.connect(lif.a_in)  # in connection order: Lava sums a_in in this order
        synapses.append(syn)
    tables = [np.asarray(s.table) for s in array.tables]
    table = (np.concatenate(tables, axis=1) if tables else np.zeros((t, 0))).astype(dt)
    stats = None
    if fused:
        br = hb.GateHostBridge(n_host=array.payload_width, size=m, table=table, buffer_size=buffer_size)
        source, sink, sink_port, stats = br, br, br.s_in, br.stats_out
        pins: dict[Any, Any] = {br: hb.PyGateHostBridgeFixed if fixed else hb.PyGateHostBridgeFloat}
    else:
        source = hb.WindowSource(n_host=array.payload_width, table=table, buffer_size=buffer_size)
        sink = hb.RasterSink(size=m, timesteps=t, buffer_size=buffer_size)
        sink_port = sink.a_in
        pins = {source: hb.PyWindowSourceFixed if fixed else hb.PyWindowSourceFloat,
                sink: hb.PyRasterSinkFixed if fixed else hb.PyRasterSinkFloat}
    for syn in synapses:
        source.s_out.connect(syn.s_in)
    lif.s_out.connect(sink_port)
    # Pinning our processes to their models skips Lava's folder scan for them.
    return {"src": source.host_in, "sink": sink.host_out, "stats": stats}, run_config(fixed, hardware, pins,
                                                                                       callbacks)


def _csr(conn: Any, shape: tuple[int, int]) -> Any:
    from scipy.sparse import csr_matrix

    return csr_matrix((np.asarray(conn.weights, np.int32), (conn.rows, conn.cols)), shape=shape)


def _build_chip(window: Any, buffer_size: int, hardware: bool = False,
                callbacks: list[Any] | None = None) -> tuple[dict[str, Any], Any]:
    """The chip-side window (ember_neuro/backends/chip_window.py) as Lava processes.

    ChipWindowBridge --message--> Sparse per host connection --+
    Sigma (the dither levels, written once) --> Sparse ---------+--> LIFReset (every step)
        --> Sparse (the readout) --> GradedVec (one per lane) --> ChipWindowBridge
    Only the bridge is ours; everything between its ports is Lava's own, bit-accurate models.
    """
    import_lava()
    from lava.proc.graded.process import GradedVec
    from lava.proc.lif.process import LIFReset
    from lava.proc.sdn.process import Sigma
    from lava.proc.sparse.process import Sparse

    from ember_neuro.processes import host_bridge as hb

    m, width, k = window.size, window.message_width, int(window.dither_values.size)
    bridge = hb.ChipWindowBridge(width=width, lanes=window.lanes, dither=window.dither_values,
                                 latency=ANSWER_STEPS, buffer_size=buffer_size)
    lif = LIFReset(shape=(m,), du=loihi.DECAY_MAX, dv=loihi.DECAY_MAX, vth=window.vth,
                   bias_mant=np.asarray(window.bias_mant, np.int32),
                   bias_exp=np.asarray(window.bias_exp, np.int32),
                   reset_interval=1, reset_offset=0)  # every step is a whole window: rest before each
    for conn in window.host:  # in connection order: host payloads, then the dither
        syn = Sparse(weights=_csr(conn, (m, width)), num_message_bits=PAYLOAD_BITS, weight_exp=conn.exp)
        bridge.s_out.connect(syn.s_in)
        syn.a_out.connect(lif.a_in)
    holder = Sigma(shape=(k,))
    bridge.d_out.connect(holder.a_in)
    for conn in window.dither:
        syn = Sparse(weights=_csr(conn, (m, k)), num_message_bits=PAYLOAD_BITS, weight_exp=conn.exp)
        holder.s_out.connect(syn.s_in)
        syn.a_out.connect(lif.a_in)
    # The level neurons' spikes reach the readout as graded values of 1: the same sums as binary
    # spikes, and Lava's CPU Sparse computes them as one sparse product instead of indexing the
    # matrix's columns by the spike vector (which took half of a window's time at 66k neurons).
    readout = Sparse(weights=_csr(window.readout, (window.lanes, m)), num_message_bits=PAYLOAD_BITS)
    lif.s_out.connect(readout.s_in)
    lanes = GradedVec(shape=(window.lanes,), vth=window.z_threshold)
    readout.a_out.connect(lanes.a_in)
    lanes.s_out.connect(bridge.a_in)
    pins = {bridge: hb.PyChipWindowBridgeFixed}
    return {"src": bridge.host_in, "sink": bridge.host_out, "stats": None}, run_config(True, hardware, pins,
                                                                                        callbacks)


class LavaGateRunner:
    """One compiled, running Lava network evaluating a neuron array, window after window.

    ``run_windows(x)`` -> (W, T, M) bool rasters, neuron m = i * N + c: the registry's
    Runner.  Fixed mode takes the integer payload of ``NeuronGroup.encode`` (int32 graded
    spikes), float mode the float payload.  Build it from an array:
    ``LavaGateRunner(group.layout(unit_index, fixed))``.
    ``hardware=True`` runs on Loihi 2 through Loihi2HwCfg (Intel's extension
    required; ``callbacks`` are its profiler loggers).  ``fused=False`` uses a
    separate WindowSource and RasterSink (same rasters, slower).
    """

    def __init__(
        self,
        array: NeuronArray,
        timeout_s: float = 60.0,
        fused: bool = True,
        buffer_size: int = 4,
        stop_timeout_s: float = 10.0,
        hardware: bool = False,
        callbacks: list[Any] | None = None,
    ) -> None:
        self._closed = True  # until started: close() is a no-op, __del__ is safe
        self._runtime: Any = None
        if buffer_size < 2:
            raise ValueError("buffer_size must be >= 2")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        if hardware and not loihi2_available():
            raise LavaUnavailable(LOIHI2_MISSING)
        self.array = array
        self.timeout_s = float(timeout_s)
        self.stop_timeout_s = float(stop_timeout_s)  # graceful-stop budget before killing
        self.buffer_size = int(buffer_size)
        self.steps = 0  # Lava steps of the windows delivered so far
        self.windows = 0
        self._pending = 0  # payloads sent whose raster has not been received
        self.exchanges: dict[str, int] | None = None  # what crossed the bridge so far (hb.STATS)
        t0 = time.perf_counter()
        procs, cfg = self._network(fused, hardware, callbacks)
        self.run_cfg = cfg
        self._closed = False
        ref = weakref.ref(self)
        self._atexit = lambda: (r := ref()) is not None and r.close()
        atexit.register(self._atexit)  # runs before multiprocessing joins children
        try:
            self._start(procs, cfg)
        except BaseException:
            self.close()
            raise
        self.startup_s = time.perf_counter() - t0

    design = "per-step"  # the host feeds every window step (the bridge's tables) and takes T rasters
    why_per_step: str | None = None  # set by open(): why this array did not get the chip-side window

    def _network(self, fused: bool, hardware: bool, callbacks: list[Any] | None) -> tuple[dict, Any]:
        return _build(self.array, self.buffer_size, fused, hardware, callbacks)

    # -- lifecycle -------------------------------------------------------------

    def _start(self, procs: dict[str, Any], cfg: Any) -> None:
        from lava.magma.core.process.message_interface_enum import ActorType
        from lava.magma.core.run_conditions import RunContinuous
        from lava.magma.runtime.runtime import Runtime

        exe = procs["src"].process.compile(cfg)
        runtime = Runtime(exe, ActorType.MultiProcessing)
        exe.assign_runtime_to_all_processes(runtime)
        self._runtime = runtime
        with _start_method("fork"), _lava_children():
            runtime.initialize()
        runtime.start(RunContinuous())
        self._send_port = procs["src"].external_pipe_csp_send_port
        self._recv_port = procs["sink"].external_pipe_csp_recv_port
        self._stats_port = None if procs["stats"] is None else procs["stats"].external_pipe_csp_recv_port

    def close(self, stop_timeout_s: float | None = None) -> None:
        """Stop the runtime; leaves no process or shared memory behind.

        Never raises on its own; an interrupt while stopping gets the forced stop
        first and then propagates.
        """
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            atexit.unregister(self._atexit)
        runtime, self._runtime = self._runtime, None
        if runtime is None:
            return
        actors = _actors(runtime)
        budget = self.stop_timeout_s if stop_timeout_s is None else stop_timeout_s
        ok = False
        try:
            if actors and _is_started(runtime) and all(a.is_alive() for a in actors):
                ok = self._graceful_stop(runtime, budget)
        except Exception:  # noqa: BLE001 - the forced stop below covers it
            ok = False
        finally:
            if not ok:
                _force_stop(runtime, actors)
            _mark_stopped(runtime)

    def _graceful_stop(self, runtime: Any, timeout_s: float) -> bool:
        """Runtime.stop(), unrolled so the host pipes can be served meanwhile.

        A bridge blocked on the host needs a (dummy) payload to finish its step
        before it can obey STOP, and a full raster pipe needs draining.  All of it
        runs in this thread: the pipes live in shared memory that the final
        shutdown unmaps, so nothing may touch them concurrently (a Ctrl-C test
        with a helper thread here ended in a segfault).
        """
        from lava.magma.runtime.mgmt_token_enums import MGMT_COMMAND, MGMT_RESPONSE, enum_equal

        deadline = time.monotonic() + timeout_s
        for port in runtime.runtime_to_service:
            port.send(MGMT_COMMAND.STOP)
        waiting, ok = list(runtime.service_to_runtime), True
        dummy = np.zeros(self._send_port.shape, dtype=self._send_port.d_type)
        while waiting:
            if time.monotonic() > deadline:
                return False
            for port in [p for p in waiting if p.probe()]:
                ok &= bool(enum_equal(port.recv(), MGMT_RESPONSE.TERMINATED))
                waiting.remove(port)
            if self._send_port.probe():
                self._send_port.send(dummy)
            for port in (self._recv_port, self._stats_port):
                while port is not None and port.probe():
                    port.recv()
            time.sleep(0.001)
        actors = _actors(runtime)
        for actor in actors:  # they return after TERMINATED; never wait unbounded
            mp.Process.join(actor, max(0.0, deadline - time.monotonic()))
        if not ok or any(actor.is_alive() for actor in actors):
            return False
        runtime.join()
        _finish_stop(runtime)
        return True

    def __enter__(self) -> LavaGateRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    # -- exchange --------------------------------------------------------------

    def _payloads(self, payloads: np.ndarray) -> np.ndarray:
        """(W, payload_width) as the bridge's dtype; fixed point within the 24-bit graded spike."""
        x = self.array.check_payload(payloads)
        if not self.array.fixed:
            return x
        if np.any(np.abs(x) >= 2 ** (PAYLOAD_BITS - 1)):
            raise ValueError(f"fixed-point payload exceeds the {PAYLOAD_BITS}-bit graded spike")
        return x.astype(np.int32)

    def _fail(self, exc: Exception) -> Exception:
        self.close()
        return exc

    def _check_alive(self) -> None:
        dead = [a for a in _actors(self._runtime) if not a.is_alive()]
        if dead:
            codes = [a.exitcode for a in dead]
            raise self._fail(LavaRuntimeError(
                f"{len(dead)} Lava process(es) died (exit codes {codes}); runtime stopped"))

    def _send(self, payload: np.ndarray, deadline: float) -> None:
        while not self._send_port.probe():  # the pipe holds buffer_size payloads
            if time.monotonic() > deadline:
                raise self._fail(LavaTimeoutError(
                    f"Lava did not take a payload within {self.timeout_s:g} s; runtime stopped"))
            self._check_alive()
            time.sleep(0.0005)
        self._send_port.send(payload)
        self._pending += 1

    def _recv(self, deadline: float) -> np.ndarray:
        """One window's raster (T, M) bool."""
        packed = self._recv_message(deadline)
        if self._stats_port is not None:
            self._record(self._stats_port.recv())  # sent right after the raster
        self.steps += self.array.timesteps
        return np.unpackbits(packed, axis=1, count=self.array.size).view(bool)

    def _record(self, stats: np.ndarray) -> None:
        from ember_neuro.processes.host_bridge import STATS

        self.exchanges = {k: int(v) for k, v in zip(STATS, np.asarray(stats).ravel(), strict=True)}

    def _recv_message(self, deadline: float) -> np.ndarray:
        wait = _waitable_queue(self._recv_port)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._fail(LavaTimeoutError(
                    f"no spike raster from Lava within {self.timeout_s:g} s (runtime stalled); "
                    "runtime stopped"))
            try:
                if wait is not None:
                    wait.get(timeout=min(remaining, 0.1), peek=True)
                elif not self._recv_port.probe():
                    time.sleep(0.0005)
                    raise queue.Empty
                break
            except queue.Empty:
                self._check_alive()
        message = self._recv_port.recv()
        self._pending -= 1
        self.windows += 1
        return message

    def run_windows(self, payloads: np.ndarray) -> np.ndarray:
        """Several windows pipelined through the channel buffers: (W, I) -> (W, T, M).

        Every blocking exchange waits at most ``timeout_s``; on any error or
        interrupt the runtime is stopped (a half-fed pipeline cannot resume).
        """
        prepared = self._prepared(payloads)
        out = np.empty((len(prepared), self.array.timesteps, self.array.size), dtype=bool)
        return self._pipeline(prepared, out)

    def _prepared(self, payloads: np.ndarray) -> np.ndarray:
        if self._closed or self._runtime is None:
            raise LavaRuntimeError("this runner's Lava runtime is closed")
        if np.asarray(payloads).ndim != 2:
            raise ValueError(f"payloads must be (W, {self.array.payload_width}), got shape "
                             f"{np.shape(payloads)}")
        return self._payloads(payloads)

    def _pipeline(self, prepared: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Send `prepared` windows, keeping the pipe buffers full; out[w] = window w's result."""
        sent = 0
        try:
            for got in range(len(prepared)):
                deadline = time.monotonic() + self.timeout_s
                while sent < len(prepared) and self._pending < self.buffer_size - 1:
                    self._send(prepared[sent], deadline)
                    sent += 1
                out[got] = self._recv(deadline)
        except BaseException:
            self.close()
            raise
        return out


class ChipWindowRunner(LavaGateRunner):
    """The chip-side window of a memoryless neuron array: one message in and one out per window.

    ``run_counts(payloads, live)`` -> (W, I) spike counts per gate value (each value's N
    neurons over T steps, summed on chip), exactly the counts of the per-step network and of
    the emulator.  ``live`` (W, I) says which lanes carry a value: an idle lane is not sent and
    does not answer.  ``run_windows`` is not offered: there is no raster, the window is one
    step.  Build it from an array: ``ChipWindowRunner(group.layout(unit_index, True))``.
    """

    design = "chip-side"

    def __init__(self, array: NeuronArray, timeout_s: float = 60.0, buffer_size: int = 4,
                 stop_timeout_s: float = 10.0, hardware: bool = False,
                 callbacks: list[Any] | None = None) -> None:
        self._closed = True
        self._runtime = None
        self.window = chip_window(array)  # refuses (ChipWindowError) an array it cannot reproduce
        super().__init__(array, timeout_s=timeout_s, buffer_size=buffer_size, stop_timeout_s=stop_timeout_s,
                         hardware=hardware, callbacks=callbacks)

    def _network(self, fused: bool, hardware: bool, callbacks: list[Any] | None) -> tuple[dict, Any]:
        return _build_chip(self.window, self.buffer_size, hardware, callbacks)

    def run_windows(self, payloads: np.ndarray) -> np.ndarray:  # noqa: ARG002 - the Runner signature
        raise TypeError("the chip-side window answers counts, not rasters: use run_counts")

    def run_counts(self, payloads: np.ndarray, live: np.ndarray | None = None) -> np.ndarray:
        """(W, payload_width) payloads, (W, I) live lanes (default all) -> (W, I) spike counts."""
        prepared = self._prepared(payloads)
        live = cw.live_lanes(self.window, len(prepared), live)
        messages = cw.encode(self.window, prepared, live).astype(np.int32)
        answers = self._pipeline(messages, np.empty((len(prepared), self.window.lanes), np.int64))
        try:
            return cw.decode(self.window, answers, live)
        except ChipWindowError as exc:
            raise self._fail(LavaRuntimeError(f"the chip-side window answered wrongly ({exc}); runtime "
                                              "stopped")) from None

    def _recv(self, deadline: float) -> np.ndarray:
        """One window's answers (I,): the lanes' graded values, then the bridge's exchange counts."""
        message = np.asarray(self._recv_message(deadline), np.int64)
        self._record(message[self.window.lanes:])
        self.steps = self.exchanges["steps"]  # the bridge's steps: a window's, the answers' two, idle ones
        return message[:self.window.lanes]


def _force_stop(runtime: Any, actors: list[Any]) -> None:
    """Last resort: kill the runtime's processes, release its shared memory."""
    for actor in actors:
        with contextlib.suppress(Exception):
            if actor.is_alive():
                actor.kill()
    for actor in actors:
        with contextlib.suppress(Exception):
            mp.Process.join(actor, 5)  # SystemProcess.join() has no timeout
    _release(runtime)


# -- the backend adapter (ember_neuro/backends/registry.py) ----------------------------------------

def unavailable(hardware: bool = False) -> str | None:
    """Why this adapter cannot run here (None: it can)."""
    return LOIHI2_MISSING if hardware and not loihi2_available() else None




def chip_side_refusal(array: NeuronArray) -> str | None:
    """Why `array` cannot run as a chip-side window (None: it can)."""
    try:
        chip_window(array)
    except ChipWindowError as exc:
        return str(exc)
    return None


def open(array: NeuronArray, timeout_s: float, hardware: bool = False, bridge: str | None = None,  # noqa: A001
         **kwargs: Any) -> LavaGateRunner:
    """A persistent runner (compile once, run many windows): the registry's Runner.

    ``bridge="chip-side"`` builds the chip-side window wherever it reproduces the array exactly
    (fixed-point memoryless rate gates) and falls back to the per-step network otherwise (float,
    the hard membrane); ``"per-step"`` always builds the per-step network.  The default (None) is
    chip-side, except at T = 1, where the per-step network exchanges as little with fewer neurons.
    """
    if bridge is not None and bridge not in BRIDGES:
        raise ValueError(f"unknown bridge {bridge!r}; use {' or '.join(BRIDGES)}")
    refusal = one_step(array) if bridge is None else None
    if refusal is not None:
        refusal += " (bridge='chip-side' builds the chip-side window anyway)"
    else:
        refusal = chip_side_refusal(array) if bridge != "per-step" else "asked for (bridge='per-step')"
    if refusal is None:
        kwargs.pop("fused", None)
        return ChipWindowRunner(array, timeout_s=timeout_s, hardware=hardware, **kwargs)
    runner = LavaGateRunner(array, timeout_s=timeout_s, hardware=hardware, **kwargs)
    runner.why_per_step = refusal
    return runner


def rasters(array: NeuronArray, payload: np.ndarray, timeout_s: float, hardware: bool = False) -> np.ndarray:
    """(B, T, M) rasters of one window per payload row, on a runner started and stopped for them."""
    with LavaGateRunner(array, timeout_s=timeout_s, hardware=hardware) as runner:
        return runner.run_windows(np.atleast_2d(payload))
