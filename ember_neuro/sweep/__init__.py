"""Fidelity sweeps: a grid of evaluations, every cell a task on Dask distributed.

    python -m ember_neuro.sweep run [CKPT ...] [--windows 1x1,8x32] [--levels uniform,auto]
        [--workers 2 | --address tcp://HOST:8786] [--out runs/sweep]

A cell is one ``run --eval`` (float vs spiking, gates on a backend) of one checkpoint at one
window (T, N) and level set, on the whole validation split by default.  The grid is
checkpoints x windows x level sets x backends; a checkpoint's seed is read from it, so three
seeds of a variant are three checkpoints and the plot shows their spread.

Why Dask distributed and not Ray: a cell is a plain Python function over a small picklable
record, and Dask's scheduler, nanny and ``LocalCluster`` are pure Python wheels whose
dependencies (tornado, msgpack, cloudpickle, psutil) sit beside our pins -- numpy<2, protobuf 7,
Python 3.10 and 3.11 -- without a resolver conflict; a killed worker's task is rescheduled on
another worker by the scheduler itself, and ``dask scheduler`` / ``dask worker`` on other
machines make the same command a real cluster (``--address``).  Ray's wheels bundle their own
gRPC and protobuf stack and an object store, which a few hundred one-minute tasks do not need.

Pieces (each short): grid.py (the spec and its cells), cell.py (what a worker runs),
results.py (the tidy table, its schema and version check), engine.py (the cluster and the
resumable loop), figures.py (the plot against the 1/(2NT) limit and the markdown tables),
__main__.py (the command).  docs/sweep.md documents the table's columns.
"""

from ember_neuro.sweep.grid import Cell, Grid, SweepError

__all__ = ["Cell", "Grid", "SweepError"]
