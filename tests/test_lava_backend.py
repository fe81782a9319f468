"""The real Lava runtime: bit-exactness with the emulator, and clean shutdown.

Few and small on purpose (each runner forks ~6 processes, ~0.5 s); breadth is in
tests/test_emulator.py.  Every runner here has a timeout and is closed in a
``with`` block or ``finally``.
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

from ember_neuro.mappers import GateUnit, MappingOptions, NeuronArray, map_gates  # noqa: E402

from ember_neuro.emulator import emulate  # noqa: E402
from ember_neuro.lava_backend import (  # noqa: E402
    LavaGateRunner,
    LavaRuntimeError,
    LavaTimeoutError,
    run_gate_array,
)

pytestmark = pytest.mark.lava


def _units(rng: np.random.Generator, count: int) -> list[GateUnit]:
    return [
        GateUnit(0, h, float(rng.uniform(-0.5, 1.2)), float(rng.uniform(0, 1)),
                 float(rng.uniform(0.3, 5.0)))
        for h in range(count)
    ]


def _pids(runner: LavaGateRunner) -> list[int]:
    mi = runner._runtime._messaging_infrastructure
    return [a.pid for a in mi.actors] + [mi.smm._manager._process.pid]


def _segments(runner: LavaGateRunner) -> list[str]:
    return [h.name for h in runner._runtime._messaging_infrastructure.smm._shared_memory_handles]


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _assert_released(pids: list[int], segments: list[str]) -> None:
    deadline = time.monotonic() + 5
    while any(_running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if _running(p)], "Lava processes left running"
    assert not [s for s in segments if Path("/dev/shm", s.lstrip("/")).exists()]


@pytest.mark.parametrize(("fixed", "fused"), [(True, True), (False, False)])
def test_runner_equals_emulator(fixed: bool, fused: bool) -> None:
    """Several windows back to back (state reset, 1-step delay alignment), T not 2^k."""
    rng = np.random.default_rng(5)
    mapped = map_gates(_units(rng, 5), MappingOptions(timesteps=7, neurons_per_gate=2))
    unit_index = rng.integers(0, 5, 24)
    x = mapped.encode(rng.uniform(0, 1, (4, 24)), fixed)
    with LavaGateRunner(mapped, 24, fixed, timeout_s=30, unit_index=unit_index,
                        fused=fused) as runner:
        first = runner.run_window(x[0])
        rest = runner.run_windows(x[1:])
        assert runner.windows == 4 and runner.steps == 4 * 7
    counts, raster = emulate(mapped.layout(unit_index, fixed), x, record=True)
    np.testing.assert_array_equal(first, raster[0])
    np.testing.assert_array_equal(rest, raster[1:])
    assert raster.any() and not raster.all()


def test_fixed_point_wraps_equal_emulator() -> None:
    """Lava's int32 / 24-bit wrap, 8-bit clip, leaky u and v through the real runtime."""
    rng = np.random.default_rng(9)
    t, n, i = 6, 2, 10
    m = n * i
    array = NeuronArray(
        fixed=True, timesteps=t, neurons_per_gate=n, unit_index=np.zeros(i, int),
        w_in=rng.integers(-300, 300, m), w_dither=rng.integers(1, 300, m),
        bias_mant=rng.integers(-4096, 4096, m), bias_exp=rng.integers(0, 8, m),
        channel=np.tile(np.arange(n), i), in_weight_exp=1, dither_weight_exp=-3,
        dither=rng.integers(-2**16, 2**16, (t, n)), du=1000, dv=300, vth=50,
    )
    x = rng.integers(-2**22, 2**22, i)
    np.testing.assert_array_equal(run_gate_array(array, x, timeout_s=30),
                                  emulate(array, x, record=True)[1])


def test_stalled_runtime_times_out_and_cleans_up() -> None:
    rng = np.random.default_rng(1)
    mapped = map_gates(_units(rng, 2), MappingOptions(timesteps=4))
    runner = LavaGateRunner(mapped, 8, True, timeout_s=1.0, stop_timeout_s=1.0)
    try:
        x = mapped.encode(rng.uniform(0, 1, 8), True)
        runner.run_window(x)
        pids, segments = _pids(runner), _segments(runner)
        os.kill(pids[0], signal.SIGSTOP)  # freeze one Lava process: the step never ends
        t0 = time.monotonic()
        with pytest.raises(LavaTimeoutError, match="within 1 s"):
            runner.run_window(x)
        assert time.monotonic() - t0 < 6
    finally:
        runner.close()
    _assert_released(pids, segments)
    with pytest.raises(LavaRuntimeError, match="closed"):
        runner.run_window(x)


def test_dead_process_is_reported_quickly() -> None:
    rng = np.random.default_rng(2)
    mapped = map_gates(_units(rng, 2), MappingOptions(timesteps=4))
    with LavaGateRunner(mapped, 8, False, timeout_s=30) as runner:
        pids, segments = _pids(runner), _segments(runner)
        os.kill(pids[1], signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(LavaRuntimeError, match="died"):
            runner.run_window(np.full(8, 0.5))
        assert time.monotonic() - t0 < 5
    _assert_released(pids, segments)


def test_exception_inside_with_block_stops_runtime() -> None:
    rng = np.random.default_rng(3)
    mapped = map_gates(_units(rng, 2), MappingOptions(timesteps=4))
    with pytest.raises(KeyboardInterrupt):
        with LavaGateRunner(mapped, 8, True, timeout_s=30) as runner:
            pids, segments = _pids(runner), _segments(runner)
            runner.run_window(mapped.encode(np.full(8, 0.3), True))
            raise KeyboardInterrupt
    _assert_released(pids, segments)


def test_preset_start_method_does_not_break_lava(tmp_path: Path) -> None:
    """Lava's import-time set_start_method('fork') must survive a fixed context."""
    script = textwrap.dedent("""
        import multiprocessing as mp
        mp.set_start_method("spawn")
        import numpy as np
        from ember_neuro.lava_backend import run_gate_array
        from ember_neuro.mappers import GateUnit, MappingOptions, map_gates
        m = map_gates([GateUnit(0, 0, 0.2, 0.0, 3.0)], MappingOptions(timesteps=4))
        r = run_gate_array(m.layout([0, 0], True), m.encode([0.1, 0.9], True), timeout_s=30)
        print(int(r.sum()), mp.get_start_method())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "spawn"
    assert mp.get_start_method(allow_none=True) in (None, "fork")


@pytest.mark.slow
@pytest.mark.parametrize("width", [512, 100_000])
def test_throughput(width: int) -> None:
    """Lava steps per second (printed; run with -s).  Not an assertion on speed."""
    rng = np.random.default_rng(4)
    mapped = map_gates(_units(rng, 8), MappingOptions(timesteps=32))
    windows = 40 if width <= 4096 else 3
    x = mapped.encode(rng.uniform(0, 1, (windows, width)), True)
    with LavaGateRunner(mapped, width, True, timeout_s=120) as runner:
        runner.run_window(x[0])
        t0 = time.perf_counter()
        out = runner.run_windows(x)
        rate = windows * 32 / (time.perf_counter() - t0)
    print(f"\nwidth {width}: {rate:.0f} Lava steps/s (fixed point, fused)")
    np.testing.assert_array_equal(out.sum(axis=1), emulate(runner.array, x))
