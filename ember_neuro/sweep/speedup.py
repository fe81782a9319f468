"""The sweep at 2 local workers against 1, measured in one run (``python -m ember_neuro.bench --only sweep``).

The same grid runs twice, each time as the command a user runs (``python -m ember_neuro.sweep run``,
its own process, its own local cluster) into a fresh table: first with two workers, then with one.
Each wall time is the whole command -- cluster start, every worker's float reference, the cells,
the figure -- so the ratio is what a user waits, not a sum of cell times.  The two tables must
hold the same numbers (the same cells, bit for bit: the emulator is deterministic), which is
checked here too: a faster sweep that computed something else would not count.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ember_neuro.sweep import results
from ember_neuro.sweep.grid import SweepError

QUICK_GRID = ("--windows", "1x1,2x8,4x16,8x32", "--levels", "uniform,auto", "--batches", "4")
MEASURED = ("val_loss_hybrid", "top1_agreement", "gate_worst_error", "predictions")


def measure(root: Path, quick: bool, workers: tuple[int, ...] = (2, 1), log: Any = print) -> dict[str, Any]:
    """Run the grid once per worker count, into root/workers-W: the shipped lif-learnable checkpoint at
    the default 8 windows x 2 level sets on the whole validation split (16 cells; quick: 8 cells of 4
    batches).  One checkpoint, not every shipped one, so that both runs fit in half an hour here."""
    if root.exists():
        raise SweepError(f"{root} exists: the timing needs fresh tables (a resumed sweep skips its cells)")
    from ember_neuro.sweep.grid import SHIPPED

    grid = [str(SHIPPED / "lif-learnable-strong.pt"), *(QUICK_GRID if quick else ())]
    what = "quick" if quick else "lif-learnable x the default windows x level sets, whole split"
    out: dict[str, Any] = {"grid": what,
                           "grid_args": grid, "runs": []}
    tables: list[dict[str, tuple]] = []  # each run's measured numbers, by cell
    for w in workers:
        dest = root / f"workers-{w}"
        cmd = [sys.executable, "-m", "ember_neuro.sweep", "run", *grid, "--workers", str(w),
               "--out", str(dest), "--quiet"]
        log(f"bench: sweep at {w} worker(s): {' '.join(cmd[1:])}")
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"the sweep at {w} workers failed ({done.returncode}): "
                               f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
        rows = results.read(dest / "results.csv").ok_rows()
        out["runs"].append({"workers": w, "seconds": round(wall, 1), "cells": len(rows),
                            "cell_seconds": round(sum(r["seconds"] for r in rows), 1), "table": str(dest)})
        tables.append({r["cell"]: tuple(r[k] for k in MEASURED) for r in rows})
        log(f"bench: {len(rows)} cells in {wall:.1f} s at {w} worker(s)")
    out["same_numbers"] = all(t == tables[0] for t in tables)
    return out


def ratios(s: dict[str, Any]) -> dict[str, float]:
    wall = {r["workers"]: r["seconds"] for r in s["runs"]}
    return {"sweep_2_workers_vs_1": wall[1] / wall[2]} if 1 in wall and 2 in wall else {}


def markdown(s: dict[str, Any]) -> str:
    lines = [f"Sweep ({s['grid']} grid{': ' + ' '.join(s['grid_args']) if s['grid_args'] else ''}), each run "
             "the whole `python -m ember_neuro.sweep run` command into a fresh table:", "",
             "| workers | cells | wall s | sum of cell s |", "|---|---|---|---|"]
    lines += [f"| {r['workers']} | {r['cells']} | {r['seconds']:.1f} | {r['cell_seconds']:.1f} |"
              for r in s["runs"]]
    lines.append(f"\nThe tables hold the same numbers: {'yes' if s['same_numbers'] else '**no**'}.")
    return "\n".join(lines)
