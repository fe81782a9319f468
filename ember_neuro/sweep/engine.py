"""The cluster and the resumable loop: every unfinished cell a Dask task, each row kept as it lands.

Where it runs: a ``LocalCluster`` of ``workers`` processes (one thread each: a cell's torch
work is single-threaded, ``run``'s default, so N workers use N cores) or, with an address, the
scheduler of a real cluster (``dask scheduler`` on one machine, ``dask worker ADDRESS`` on
each; every worker needs ember-neuro installed and the checkpoints at the same paths).

Resuming: the table's finished cells are not submitted; the rest are, the costliest first.
Each row lands in the table (rewritten atomically) as soon as its task returns, so an
interrupted client loses only the cells still running.  A worker that dies mid-cell (killed,
out of memory) loses nothing finished: the local cluster's nanny restarts it and the scheduler
gives the cell to a live worker; a cell that kills ``allowed-failures`` + 1 workers in a row
becomes an error row.  Worker processes are not daemonic, so a cell on ``lava-sim`` can start
Lava's own processes.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ember_neuro.sweep.cell import error_row, run_cell
from ember_neuro.sweep.grid import Cell, SweepError
from ember_neuro.sweep.results import Results

ALLOWED_FAILURES = 2  # a cell may kill this many workers; the next death makes it an error row
# Worker processes may start their own (Lava's); a killed worker's cell is retried elsewhere.  Their
# environment is Dask's default less MALLOC_TRIM_THRESHOLD_=65536: with it glibc hands every freed
# block back to the kernel, and a cell's per-batch spike rasters (tens of MB, freed and allocated
# again each batch) page-faulted in anew -- measured: a whole-split cell spent 84 s in the kernel
# beside 79 s computing, 99 s of evaluation where the same cell outside Dask takes about a third.
LOCAL_CONFIG = {"distributed.worker.daemon": False,
                "distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                "distributed.nanny.pre-spawn-environ": {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1,
                                                        "OPENBLAS_NUM_THREADS": 1}}


@contextlib.contextmanager
def engine(address: str | None = None, workers: int = 2, connect_timeout: float = 10.0) -> Iterator[Any]:
    """A ``distributed.Client``: of a new local cluster, or of the scheduler at ``address``."""
    import dask
    from distributed import Client, LocalCluster

    if address:
        try:
            client = Client(address, timeout=f"{connect_timeout}s")
        except (OSError, TimeoutError) as exc:
            raise SweepError(f"no Dask scheduler answers at {address} (waited {connect_timeout:g} s: "
                             f"{type(exc).__name__}); start one with `dask scheduler` and give the address "
                             "it prints") from None
        try:
            yield client
        finally:
            client.close()
        return
    if workers < 1:
        raise SweepError(f"--workers must be >= 1, got {workers}")
    with dask.config.set(LOCAL_CONFIG):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR, host="127.0.0.1")
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()


def worker_count(client: Any) -> int:
    return len(client.scheduler_info().get("workers", {}))


@dataclass
class Summary:
    cells: int
    already_done: int
    ran: int = 0
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    workers: int = 0

    def line(self, where: str) -> str:
        return (f"sweep: {self.cells} cells: {self.already_done} already done, {self.ran} run "
                f"({self.ok} ok, {self.errors} errors) in {self.seconds:.1f} s on {self.workers} workers; "
                f"results in {where}")


def run(cells: list[Cell], results: Results, client: Any, progress: bool = True,
        on_row: Callable[[dict[str, Any]], None] | None = None) -> Summary:
    """Run every cell the table has not finished on ``client``'s cluster, keeping each row as it lands."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    done = results.done()
    todo = [c for c in cells if c.id not in done]
    summary = Summary(len(cells), len(cells) - len(todo), workers=worker_count(client))
    t0 = time.perf_counter()
    batch = uuid.uuid4().hex[:8]  # task keys name their cell (the dashboard, a worker's log) and are unique
    futures = {client.submit(run_cell, c, key=f"sweep-{c.id}-{batch}"): c for c in todo}
    bar = tqdm(total=len(todo), desc="sweep", unit="cell", disable=not progress or not todo, file=sys.stderr,
               dynamic_ncols=True)
    try:
        for fut in as_completed(futures):
            cell = futures.pop(fut)
            try:
                row = fut.result()
            except Exception as exc:  # noqa: BLE001 - KilledWorker, a lost scheduler: the cell's row says so
                row = error_row(cell, _task_failure(exc))
            results.add(row)
            summary.ran += 1
            summary.ok += row["status"] == "ok"
            summary.errors += row["status"] != "ok"
            bar.update(1)
            bar.set_postfix_str(f"{cell.name} T={cell.timesteps} N={cell.neurons_per_gate} {cell.levels}")
            if on_row is not None:
                on_row(row)
    finally:
        bar.close()
        if futures:  # interrupted: the unfinished cells stay unfinished, for the next run
            client.cancel(list(futures))
    summary.seconds = time.perf_counter() - t0
    return summary


def _task_failure(exc: BaseException) -> str:
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        return (f"the cell killed {ALLOWED_FAILURES + 1} workers in a row (out of memory, or a crash in "
                f"native code): {' '.join(str(exc).split())[:200]}")
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"
