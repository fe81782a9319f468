"""Every script in examples/ runs, as a user runs it: its own interpreter, a fresh working directory,
small arguments, a timeout, and what it prints or writes checked.

Each example has a case here (a new example without one fails `test_every_example_has_a_case`).
The window is pinned in every case (-T/-N), so no window search runs; the Lava case starts the real
runtime and must leave nothing of its process group running after it exits.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .helpers import ROOT

EXAMPLES = ROOT / "examples"
TIMEOUT_S = 180  # per example; each takes a few seconds here
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group `pgid`, read from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            pids.append(int(stat.parent.name))
    return pids


def run_example(name: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """examples/<name> in its own interpreter and process group; on a timeout the whole group is killed.
    After it exits, nothing of its group may keep running (Lava's processes, a stray child)."""
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / name), *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1", MPLBACKEND="Agg"))
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{name} ran past {TIMEOUT_S} s; killed\nstdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}")
    if Path("/proc/self/stat").exists():
        deadline = time.monotonic() + 10
        while _group_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _group_members(proc.pid)
        if left:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"{name} exited but left processes of its group running: {left}")
    assert proc.returncode == 0, (f"{name} exited {proc.returncode}\nstdout:\n{out[-3000:]}\n"
                                  f"stderr:\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _finite(x: object) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


# -- one case per example: its arguments and what its output must show --------------------------------

def check_eval_vs_timesteps(r: subprocess.CompletedProcess, cwd: Path) -> None:
    lines = r.stdout.strip().splitlines()
    rows = [json.loads(line) for line in lines[:-1]]
    assert [row["timesteps"] for row in rows] == [4, 8]
    for row in rows:
        assert set(row) == {"timesteps", "val_loss_float", "val_loss_hybrid", "rel_delta", "top1_agreement"}
        assert all(_finite(row[k]) for k in row)
        assert 0 < row["val_loss_float"] < 10 and 0 < row["val_loss_hybrid"] < 10
        assert row["rel_delta"] == pytest.approx(row["val_loss_hybrid"] / row["val_loss_float"] - 1, abs=1e-9)
        assert 0.5 < row["top1_agreement"] <= 1.0  # a spiking model that still predicts like the float one
    assert rows[0]["val_loss_float"] == rows[1]["val_loss_float"]  # the same fixed batches for every T
    plot = cwd / "plots" / "eval.png"
    assert lines[-1] == f"wrote {Path('plots') / 'eval.png'}"
    data = plot.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 400 and height > 200, (width, height)


def check_hybrid_generate(r: subprocess.CompletedProcess, cwd: Path) -> None:
    streamed, _, last = r.stdout.rstrip("\n").rpartition("\n")
    record = json.loads(last)
    assert set(record) == {"backend", "timesteps", "tokens_per_s", "lava_steps_per_s"}
    assert record["backend"] == "lava-sim" and record["timesteps"] == 4
    assert record["tokens_per_s"] > 0 and record["lava_steps_per_s"] > 0
    assert streamed.startswith("ROMEO:")
    assert len(streamed) == len("ROMEO:") + 8  # the prompt and 8 generated characters, streamed


def check_spike_stats(r: subprocess.CompletedProcess, cwd: Path) -> None:
    header, columns, *rows = r.stdout.strip().splitlines()
    assert header == f"emulator, T=4, {len(PROMPT)} tokens, 1 neuron(s) per gate"
    assert columns.split() == ["path", "layer", "gates", "fired", "spikes/token", "mean", "rate"]
    assert rows, "no layer rows"
    layers = []
    for row in rows:
        path, layer, gates, fired, per_token, mean_rate = row.split()
        assert path == "attention"
        layers.append(int(layer))
        assert int(gates) > 0
        assert fired.endswith("%") and 0 <= float(fired[:-1]) <= 100
        assert float(per_token) >= 0 and 0 <= float(mean_rate) <= 1
    assert layers == list(range(len(rows)))


PROMPT = "ROMEO: what light"
Check = Callable[[subprocess.CompletedProcess, Path], None]
CASES: dict[str, tuple[list[str], Check]] = {
    "eval_vs_timesteps.py": (["--ts", "4", "8", "-N", "2", "--batches", "1", "--out", "plots/eval.png"],
                             check_eval_vs_timesteps),
    "hybrid_generate.py": (["--backend", "lava-sim", "--timesteps", "4", "-N", "2", "--tokens", "8"],
                           check_hybrid_generate),
    "spike_stats.py": (["--timesteps", "4", "--prompt", PROMPT], check_spike_stats),
}
LAVA = {"hybrid_generate.py"}


def test_every_example_has_a_case() -> None:
    assert sorted(CASES) == sorted(p.name for p in EXAMPLES.glob("*.py"))


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.lava] if n in LAVA else [])
                                  for n in sorted(CASES)])
def test_example_runs(name: str, tmp_path: Path) -> None:
    args, check = CASES[name]
    check(run_example(name, args, tmp_path), tmp_path)
