"""The real Lava runtime: bit-exactness with the numpy reference, run configurations, clean shutdown.

Few and small on purpose (each runner forks ~5 processes, ~0.5 s); breadth is in
tests/core/test_loihi.py (Lava's own model code in process).  Every runner here
has a timeout and is closed in a ``with`` block or ``finally``.  Torch-free: part
of the Python 3.10 suite.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lava")

from ember_neuro.backends import numpy_ref  # noqa: E402
from ember_neuro.backends.lava import (  # noqa: E402
    LavaGateRunner,
    LavaRuntimeError,
    LavaTimeoutError,
    LavaUnavailable,
    _actors,
)
from ember_neuro.mappers import MappingOptions, map_gates  # noqa: E402

from ..helpers import nasty_array, nasty_payload, random_units, runner_for, running  # noqa: E402

pytestmark = [pytest.mark.torchfree, pytest.mark.lava]


def _pids(runner: LavaGateRunner) -> list[int]:
    """The runtime's processes and its shared-memory manager (Lava internals: what must not survive)."""
    smm = runner._runtime._messaging_infrastructure.smm
    return [a.pid for a in _actors(runner._runtime)] + [smm._manager._process.pid]


def _segments(runner: LavaGateRunner) -> list[str]:
    return [h.name for h in runner._runtime._messaging_infrastructure.smm._shared_memory_handles]


def _assert_released(pids: list[int], segments: list[str]) -> None:
    deadline = time.monotonic() + 5
    while any(running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if running(p)], "Lava processes left running"
    assert not [s for s in segments if Path("/dev/shm", s.lstrip("/")).exists()]


@pytest.mark.parametrize(("fixed", "fused"), [(True, True), (False, False)])
def test_runner_equals_numpy_reference(fixed: bool, fused: bool) -> None:
    """Several windows back to back (state reset, 1-step delay alignment), T not 2^k."""
    rng = np.random.default_rng(5)
    group = map_gates(random_units(rng, 5), MappingOptions(timesteps=7, neurons_per_gate=2))
    unit_index = rng.integers(0, 5, 24)
    x = group.encode(rng.uniform(0, 1, (4, 24)), fixed)
    with runner_for(group, 24, fixed, unit_index=unit_index, timeout_s=30,
                                  fused=fused) as runner:
        first = runner.run_windows(np.atleast_2d(x[0]))[0]
        rest = runner.run_windows(x[1:])
        assert runner.windows == 4 and runner.steps == 4 * 7
    raster = numpy_ref.rasters(group.layout(unit_index, fixed), x)
    np.testing.assert_array_equal(first, raster[0])
    np.testing.assert_array_equal(rest, raster[1:])
    assert raster.any() and not raster.all()


def test_log_levels_on_lava_equal_numpy_reference() -> None:
    """The log level set's dither table (wider logit range, same neuron) through the real runtime."""
    rng = np.random.default_rng(11)
    group = map_gates(random_units(rng, 4, k_max=9.0),
                      MappingOptions(timesteps=16, neurons_per_gate=2, levels="log"))
    unit_index = rng.integers(0, 4, 32)
    x = group.encode(rng.uniform(0, 1, (3, 32)) ** 3, True)  # mostly small p: the fine levels
    with runner_for(group, 32, True, unit_index=unit_index, timeout_s=30) as runner:
        out = runner.run_windows(x)
    np.testing.assert_array_equal(out, numpy_ref.rasters(group.layout(unit_index, True), x))
    assert out.any() and not out.all()


@pytest.mark.parametrize("fixed", [True, False])
def test_many_connections_and_wraps_equal_numpy_reference(fixed: bool) -> None:
    """Three host payloads, two chip tables with phase blocks, Lava's int32 / 24-bit wraps,
    8-bit clipping, leaky u and v -- through the real runtime, several windows."""
    rng = np.random.default_rng(9)
    array = nasty_array(rng, fixed, 6, 2, 10, n_host=3, n_tables=2, phases=2)
    x = np.stack([nasty_payload(rng, array) for _ in range(3)])
    with LavaGateRunner(array, timeout_s=30) as runner:
        out = runner.run_windows(x)
    np.testing.assert_array_equal(out, numpy_ref.rasters(array, x))
    assert out.any()


def test_stalled_runtime_times_out_and_cleans_up() -> None:
    rng = np.random.default_rng(1)
    group = map_gates(random_units(rng, 2), MappingOptions(timesteps=4))
    runner = runner_for(group, 8, True, timeout_s=1.0, stop_timeout_s=1.0)
    try:
        x = group.encode(rng.uniform(0, 1, 8), True)
        runner.run_windows(np.atleast_2d(x))
        pids, segments = _pids(runner), _segments(runner)
        os.kill(pids[0], signal.SIGSTOP)  # freeze one Lava process: the step never ends
        t0 = time.monotonic()
        with pytest.raises(LavaTimeoutError, match="within 1 s"):
            runner.run_windows(np.atleast_2d(x))
        assert time.monotonic() - t0 < 6
    finally:
        runner.close()
    _assert_released(pids, segments)
    with pytest.raises(LavaRuntimeError, match="closed"):
        runner.run_windows(np.atleast_2d(x))


def test_dead_process_is_reported_quickly() -> None:
    rng = np.random.default_rng(2)
    group = map_gates(random_units(rng, 2), MappingOptions(timesteps=4))
    with runner_for(group, 8, False, timeout_s=30) as runner:
        pids, segments = _pids(runner), _segments(runner)
        os.kill(pids[1], signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(LavaRuntimeError, match="died"):
            runner.run_windows(np.atleast_2d(np.full(8, 0.5)))[0]
        assert time.monotonic() - t0 < 5
    _assert_released(pids, segments)


def test_exception_inside_with_block_stops_runtime() -> None:
    rng = np.random.default_rng(3)
    group = map_gates(random_units(rng, 2), MappingOptions(timesteps=4))
    with pytest.raises(KeyboardInterrupt):
        with runner_for(group, 8, True, timeout_s=30) as runner:
            pids, segments = _pids(runner), _segments(runner)
            runner.run_windows(group.encode(np.full(8, 0.3), True)[None])
            raise KeyboardInterrupt
    _assert_released(pids, segments)


def test_preset_start_method_does_not_break_lava() -> None:
    """Lava's import-time set_start_method('fork') must survive a fixed context."""
    script = textwrap.dedent("""
        import multiprocessing as mp
        mp.set_start_method("spawn")
        import numpy as np
        from ember_neuro.backends import lava
        from ember_neuro.mappers import GateUnit, MappingOptions, map_gates
        m = map_gates([GateUnit(0, 0, 0.2, 0.0, 3.0)], MappingOptions(timesteps=4))
        r = lava.rasters(m.layout([0, 0], True), m.encode([0.1, 0.9], True)[None], timeout_s=30)
        print(int(r.sum()), mp.get_start_method())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "spawn"
    assert mp.get_start_method(allow_none=True) in (None, "fork")


def test_run_config_is_the_simulator_unless_hardware() -> None:
    """loihi2 builds Loihi2HwCfg (fixed point, profiler callbacks), lava-sim Loihi2SimCfg."""
    from lava.magma.core.run_configs import Loihi2HwCfg, Loihi2SimCfg

    from ember_neuro.backends.lava import _build

    group = map_gates(random_units(np.random.default_rng(0), 2), MappingOptions(timesteps=4))
    array = group.layout([0, 1], True)
    _, sim = _build(array, 4, fused=True)
    assert type(sim) is Loihi2SimCfg and sim.select_tag == "fixed_pt"
    marker = object()
    _, hw = _build(array, 4, fused=True, hardware=True, callbacks=[marker])
    assert isinstance(hw, Loihi2HwCfg) and hw.select_tag == "fixed_pt" and hw.callback_fxs == [marker]
    with pytest.raises(ValueError, match="fixed point only"):
        _build(group.layout([0, 1], False), 4, fused=True, hardware=True)


def test_the_chip_side_window_builds_the_same_run_configs() -> None:
    """verify.py --hw builds the chip-side network with Loihi2HwCfg: Lava's own processes, only the
    bridge pinned to our model."""
    from lava.magma.core.run_configs import Loihi2HwCfg, Loihi2SimCfg

    from ember_neuro.backends.chip_window import chip_window
    from ember_neuro.backends.lava import _build_chip
    from ember_neuro.processes.host_bridge import PyChipWindowBridgeFixed

    group = map_gates(random_units(np.random.default_rng(0), 2), MappingOptions(timesteps=4))
    window = chip_window(group.layout([0, 1], True))
    procs, sim = _build_chip(window, 4)
    assert type(sim) is Loihi2SimCfg and sim.select_tag == "fixed_pt"
    assert list(sim.exception_proc_model_map.values()) == [PyChipWindowBridgeFixed]
    marker = object()
    _, hw = _build_chip(window, 4, hardware=True, callbacks=[marker])
    assert isinstance(hw, Loihi2HwCfg) and hw.select_tag == "fixed_pt" and hw.callback_fxs == [marker]
    # everything the bridge talks to is Lava's: Sparse, LIFReset, Sigma, GradedVec
    bridge = procs["src"].process
    names = {type(p).__name__ for port in (bridge.s_out, bridge.d_out) for p in
             [c.process for c in port.out_connections]}
    names |= {type(c.process).__name__ for c in bridge.a_in.in_connections}
    assert names == {"Sparse", "Sigma", "GradedVec"}


def test_hardware_runner_without_the_extension_says_inrc() -> None:
    from ember_neuro.backends import lava

    if lava.loihi2_available():
        pytest.skip("Intel's lava-loihi extension is installed here")
    group = map_gates(random_units(np.random.default_rng(0), 2), MappingOptions(timesteps=4))
    with pytest.raises(LavaUnavailable, match="INRC"):
        LavaGateRunner(group.layout([0, 1], True), hardware=True)


@pytest.mark.slow
@pytest.mark.parametrize("width", [512, 100_000])
def test_throughput(width: int) -> None:
    """Lava steps per second (printed; run with -s).  Not an assertion on speed."""
    rng = np.random.default_rng(4)
    group = map_gates(random_units(rng, 8), MappingOptions(timesteps=32))
    windows = 40 if width <= 4096 else 3
    x = group.encode(rng.uniform(0, 1, (windows, width)), True)
    with runner_for(group, width, True, timeout_s=120) as runner:
        runner.run_windows(np.atleast_2d(x[0]))[0]
        t0 = time.perf_counter()
        out = runner.run_windows(x)
        rate = windows * 32 / (time.perf_counter() - t0)
    print(f"\nwidth {width}: {rate:.0f} Lava steps/s (fixed point, fused)")
    np.testing.assert_array_equal(out, numpy_ref.rasters(runner.array, x))
