"""Runtime faults reach the user as one line and a non-zero exit, with nothing left behind.

A Lava process killed mid-run, a Lava exchange that times out, a disk that fills
while outputs are written: `run`, `map` and `validate` end with exit 4 and one
`error:` line; no orphan process, no leaked shared-memory segment, no half-written
output (an existing output folder survives intact).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import ROOT, SHIPPED, run_main, running

CKPT = SHIPPED / "lif-learnable-strong.pt"
pytest.importorskip("lava")


def _children(pid: int) -> set[int]:
    """All descendants of pid (from /proc)."""
    parent_of = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parent_of[int(stat.parent.name)] = int(fields[1])
    out, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, p in parent_of.items() if p in frontier} - out
        out |= frontier
    return out


def _shm() -> set[str]:
    return {p.name for p in Path("/dev/shm").iterdir()}


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.mark.lava
def test_run_with_a_lava_child_killed_mid_generation() -> None:
    shm_before = _shm()
    proc = subprocess.Popen([sys.executable, "-m", "ember_neuro.run", str(CKPT), "--backend", "lava-sim",
                             "-T", "32", "-N", "1", "--levels", "uniform", "--tokens", "2000", "--timeout",
                                 "30"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        assert proc.stdout is not None
        seen = proc.stdout.read(len("ROMEO:") + 5)  # the prompt and a few generated tokens
        assert seen.startswith("ROMEO:"), seen
        lava = sorted(_children(proc.pid))
        assert len(lava) >= 3, lava  # the runtime's processes
        os.kill(lava[-1], signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    assert proc.returncode == 4, err
    line = _one_error_line(err)
    assert "died" in line and "Traceback" not in err
    deadline = time.monotonic() + 10
    while any(running(p) for p in lava) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in lava if running(p)], "orphaned Lava processes"
    assert not (_shm() - shm_before), "leaked shared memory"


@pytest.mark.lava
@pytest.mark.parametrize("cli", ["map", "validate"])
def test_a_lava_timeout_is_one_line(cli: str, tmp_path: Path) -> None:
    shm_before = _shm()
    args = [str(CKPT), "-T", "8", "-N", "1", "--grid-only", "--timeout", "1e-6",
            "--out", str(tmp_path / "out")]
    if cli == "map":
        args += ["--target", "lava-sim"]
    r = run_main(f"ember_neuro.{cli}", *args)
    assert r.returncode == 4, r.stderr
    assert "within" in _one_error_line(r.stderr) and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())
    assert not (_shm() - shm_before)


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 160 KiB tmpfs (root only): room for a mapped network, not for its plots."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()}); the injected "
                    "ENOSPC test below covers the code path")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_map_on_a_full_disk(tiny_disk: Path) -> None:
    keep = tiny_disk / "out"
    keep.mkdir()
    (keep / "mine.txt").write_text("earlier results")
    r = run_main("ember_neuro.map", str(CKPT), "--target", "emulator", "-T", "8", "-N", "1", "--levels",
                 "uniform", "--grid-only",
                "--no-bit-exact-check", "--out", str(keep), "--force")
    assert r.returncode == 4, r.stderr
    assert "no space left" in _one_error_line(r.stderr)
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["out"]  # no temporary folder left
    assert [p.name for p in keep.iterdir()] == ["mine.txt"]  # the earlier folder is untouched


def test_enospc_while_writing_is_one_line_and_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    """The same path, with ENOSPC injected where matplotlib writes (any machine, no mount)."""
    from ember_neuro import map as map_cli
    from ember_neuro import plots

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "transfer_L0.png")

    monkeypatch.setattr(plots, "transfer_curves", full)
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("earlier results")
    code = map_cli.main([str(CKPT), "--target", "emulator", "-T", "8", "-N", "1", "--grid-only",
                         "--no-bit-exact-check",
                         "--out", str(out), "--force"])
    assert code == 4
    assert "no space left on the device while writing transfer_L0.png" in _one_error_line(
        capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
