"""The sweep on a real local Dask cluster of two worker processes: a killed worker loses no finished
cell and the sweep completes; an interrupted sweep resumes without redoing a cell; the command joins
a running cluster by its address; bad input ends in one line.  No mock: real scheduler, real
worker processes over TCP, real cells (few batches, so each takes a second or two)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from ember_neuro import __version__
from ember_neuro.models.checkpoint import load_checkpoint
from ember_neuro.sweep import engine, results
from ember_neuro.sweep.__main__ import main
from ember_neuro.sweep.grid import Grid

from ..helpers import SHIPPED

LIF = str(SHIPPED / "lif-learnable-strong.pt")


@pytest.fixture(scope="module")
def client():
    with engine.engine(workers=2) as c:
        c.wait_for_workers(2, timeout=60)
        yield c


def _cells(windows, levels=("uniform", "auto"), batches=2):
    return Grid(checkpoints=[LIF], windows=list(windows), levels=list(levels), batches=batches).cells()


def test_a_killed_worker_loses_no_finished_cell_and_the_sweep_completes(client, tmp_path):
    cells = _cells([(1, 1), (2, 8), (8, 32)], batches=4)
    table = results.Results(tmp_path / "results.csv")
    out: dict = {}
    run = threading.Thread(target=lambda: out.update(s=engine.run(cells, table, client, progress=False)))
    run.start()
    path, deadline = tmp_path / "results.csv", time.time() + 120

    def on_disk() -> results.Results:  # what a reader (or the next run) sees: the file, not the loop's memory
        return results.Results(path) if path.exists() else results.Results(tmp_path / "none.csv")

    while not on_disk().done() and time.time() < deadline:  # the first cell has landed
        time.sleep(0.05)
    busy = {}
    while not busy and time.time() < deadline:  # a worker is in the middle of a cell
        busy = {w: keys for w, keys in client.processing().items() if keys}
        time.sleep(0.02)
    finished_before = on_disk().rows
    victim = next(iter(busy))
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    run.join(timeout=300)
    assert not run.is_alive()
    summary = out["s"]
    assert summary.ok == len(cells) and summary.errors == 0
    final = results.Results(tmp_path / "results.csv")
    assert final.done() == {c.id for c in cells}
    for k, row in finished_before.items():  # nothing finished was redone or lost
        assert final.rows[k] == row
    interrupted = {str(k).split("-")[1] for k in busy[victim]}  # the cells the victim was running
    assert interrupted and not interrupted & set(finished_before)
    for k in interrupted:  # each finished on a live worker
        assert not final.rows[k]["worker"].endswith(f":{pid}")
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it


def test_an_interrupted_sweep_resumes_without_redoing_a_cell(client, tmp_path):
    cells = _cells([(1, 1), (1, 4), (2, 8)], levels=("uniform",), batches=1)
    table = results.Results(tmp_path / "results.csv")

    def interrupt(_row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        engine.run(cells, table, client, progress=False, on_row=interrupt)
    first = results.Results(tmp_path / "results.csv")
    assert len(first.done()) == 1
    kept = dict(first.rows[next(iter(first.done()))])
    again = engine.run(cells, first, client, progress=False)
    assert (again.already_done, again.ran, again.ok) == (1, 2, 2)
    final = results.Results(tmp_path / "results.csv")
    assert final.done() == {c.id for c in cells} and final.rows[kept["cell"]] == kept


def test_the_command_joins_a_cluster_by_its_address_and_resumes(client, tmp_path, capsys):
    address = client.scheduler.address
    argv = ["run", LIF, "--windows", "1x1,2x8", "--levels", "uniform", "--batches", "1", "--address", address,
            "--out", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "2 cells: 0 already done, 2 run (2 ok, 0 errors)" in err and "on 2 workers" in err
    rows = results.Results(tmp_path / "results.csv").ok_rows()
    assert {(r["timesteps"], r["neurons_per_gate"]) for r in rows} == {(1, 1), (2, 8)}
    block = load_checkpoint(LIF).config.block_size
    assert all(r["ember_neuro"] == __version__ and r["predictions"] == 8 * block for r in rows)
    by_nt = {r["nt"]: r for r in rows}
    assert by_nt[1]["top1_agreement"] < by_nt[16]["top1_agreement"]  # N*T = 1 is far from faithful
    png = (tmp_path / "fidelity.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| lif-learnable-strong | 1337 | 2 | 8 | 16 | uniform |" in (tmp_path / "fidelity.md").read_text()
    assert main(argv + ["--windows", "1x1,2x8,1x4"]) == 0  # one more window: only it runs
    assert "3 cells: 2 already done, 1 run (1 ok, 0 errors)" in capsys.readouterr().err
    assert main(["table", str(tmp_path / "results.csv"), "--checkpoint", "lif-learnable-strong"]) == 0
    assert capsys.readouterr().out.count("| lif-learnable-strong |") == 3
    assert main(["table", str(tmp_path / "results.csv"), "--wide", "top1_agreement"]) == 0
    wide = capsys.readouterr().out.splitlines()
    assert wide[0] == "| checkpoint | levels | 1×1 | 1×4 | 2×8 |"
    assert wide[2].startswith("| lif-learnable-strong | uniform | ") and wide[2].count("%") == 3


@pytest.mark.parametrize(("argv", "says"), [
    (["run", "--backends", "emulator,truenorth"], "unknown backend 'truenorth'"),
    (["run", "--variants", "lif-learnable,lif-quantum"], "unknown variant 'lif-quantum'"),
    (["run", LIF, "--windows", "1x1", "--address", "tcp://127.0.0.1:9", "--connect-timeout", "1"],
     "no Dask scheduler answers at tcp://127.0.0.1:9"),
    (["plot", "/nonexistent/results.csv"], "no results table at /nonexistent/results.csv"),
])
def test_bad_input_ends_in_one_line(argv, says, capsys, tmp_path):
    assert main(argv + (["--out", str(tmp_path)] if argv[0] == "run" else [])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]


def test_a_results_file_of_another_version_is_refused_before_any_work(tmp_path, capsys):
    table = results.Results(tmp_path / "results.csv")
    (cell,) = _cells([(1, 1)], levels=("uniform",))
    from ember_neuro.sweep.cell import error_row

    table.add({**error_row(cell, "x"), "status": "ok", "ember_neuro": "0.0.9"})
    before = (tmp_path / "results.csv").read_bytes()
    assert main(["run", LIF, "--windows", "1x1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "computed by ember-neuro 0.0.9" in err[0]
    assert "refused rather than mixed" in err[0]
    assert (tmp_path / "results.csv").read_bytes() == before
