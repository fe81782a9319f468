"""What a worker runs for one cell: ``run --eval`` at the cell's window, as one results row.

The cell checks that the checkpoint it opens is the one the client hashed (a worker on another
machine must see the same file), maps it at the cell's window, and scores float vs spiking on
the cell's batches through :func:`ember_neuro.hybrid.session.evaluate_session` -- the code
``run --eval`` runs, so a sweep row equals that command's numbers.  The float model's logits
depend only on the checkpoint and the batches, so each worker computes them once per
checkpoint and keeps the last one's (about 130 MB for a text model's whole validation split).

A failure inside a cell becomes an error row (one line), not a failed task: the sweep goes on,
and the cell runs again on resume.  A worker that dies is the engine's business (engine.py).
"""

from __future__ import annotations

import os
import platform
import socket
import time
from datetime import datetime, timezone
from typing import Any

from ember_neuro.sweep.grid import Cell, SweepError

_REFERENCE: dict[tuple[str, int, int], list] = {}  # (sha256, batches, batch_size) -> float logits per batch


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def identity(cell: Cell) -> dict[str, Any]:
    """The row's columns that the cell itself fixes (also an error row's)."""
    return {"cell": cell.id, "checkpoint": cell.name, "checkpoint_sha256": cell.sha256,
            "variant": cell.variant, "seed": cell.seed, "backend": cell.backend, "timesteps": cell.timesteps,
            "neurons_per_gate": cell.neurons_per_gate, "levels": cell.levels, "nt": cell.nt,
            "limit": 1.0 / (2 * cell.nt), "batches": cell.batches, "batch_size": cell.batch_size}


def versions() -> dict[str, Any]:
    from ember_neuro import __version__
    from ember_neuro.cli import package_versions

    v = package_versions(("torch", "lava-nc"))
    return {"ember_neuro": __version__, "torch": v["torch"], "lava": v["lava-nc"],
            "python": platform.python_version(), "worker": f"{socket.gethostname()}:{os.getpid()}"}


def error_row(cell: Cell, message: str, started: str | None = None) -> dict[str, Any]:
    """A cell that did not finish: every measured column empty, the reason in one line."""
    from ember_neuro.sweep.results import NAMES

    row: dict[str, Any] = dict.fromkeys(NAMES)
    row.update({**identity(cell), **versions(), "status": "error", "error": " ".join(message.split()),
                "started": started or now(), "finished": now()})
    return row


def _reference(session: Any, cell: Cell) -> list:
    """The float model's logits of the cell's batches, computed once per checkpoint on this worker."""
    import torch

    from ember_neuro.hybrid.session import EVAL_SEED

    key = (cell.sha256, cell.batches, cell.batch_size)
    if key not in _REFERENCE:
        _REFERENCE.clear()
        block = session.prep.ck.config.block_size
        batches = session.prep.text.evaluation(cell.batches, cell.batch_size, block, seed=EVAL_SEED)
        with torch.no_grad():
            _REFERENCE[key] = [session.model(x.to(session.device))[0] for x, _ in batches]
    return _REFERENCE[key]


def evaluate_cell(cell: Cell) -> dict[str, Any]:
    """The measured columns of one cell (exceptions propagate: :func:`run_cell` turns them into a row)."""
    from ember_neuro.deploy import budget
    from ember_neuro.hybrid.session import Deployment, Evaluation, evaluate_session, prepare_session
    from ember_neuro.models.checkpoint import sha256_of

    if not os.path.isfile(cell.checkpoint):
        raise SweepError(f"checkpoint {cell.checkpoint} is not on worker {socket.gethostname()}")
    if sha256_of(cell.checkpoint) != cell.sha256:
        raise SweepError(f"{cell.checkpoint} on worker {socket.gethostname()} is not the file the sweep "
                         "hashed (sha256 differs)")
    t0 = time.perf_counter()
    dep = Deployment(cell.checkpoint, backend=cell.backend, timesteps=cell.timesteps,
                     neurons_per_gate=cell.neurons_per_gate, levels=cell.levels, timeout=cell.timeout)
    session = prepare_session(dep)
    map_seconds = time.perf_counter() - t0
    reference = _reference(session, cell)
    r = evaluate_session(session, Evaluation(cell.batches, cell.batch_size), progress=False,
                         reference=reference)
    net, config = session.net, session.prep.ck.config
    gates = [g for g in net.groups.values() if not g.carries_state]
    worst = [float(e) for g in gates for e in g.fixed_worst_error]
    return {"gate_worst_error": budget.worst_error(net.groups),
            "gate_mean_worst_error": sum(worst) / len(worst),
            "neurons": budget.deployed_neurons(net.groups, config.block_size, cell.neurons_per_gate),
            "split": r.get("split", "validation"), "unit": "clips" if config.is_classifier else "tokens",
            "predictions": r["tokens"], "val_loss_float": r["val_loss_float"],
            "val_loss_hybrid": r["val_loss_hybrid"], "rel_delta": r["rel_delta"], "kl": r["kl_float_hybrid"],
            "top1_agreement": r["top1_agreement"], "accuracy_float": r["accuracy_float"],
            "accuracy_hybrid": r["accuracy_hybrid"], "mlp_skip_fraction": r.get("mlp_skip_fraction"),
            "map_seconds": round(map_seconds, 3), "eval_seconds": round(r["hybrid_seconds"], 3)}


def run_cell(cell: Cell) -> dict[str, Any]:
    """One cell, as a complete results row (status ok, or error with the reason)."""
    from ember_neuro.cli import one_line

    started, t0 = now(), time.perf_counter()
    try:
        measured = evaluate_cell(cell)
    except Exception as exc:  # noqa: BLE001 - a cell's failure is a row, not a dead sweep
        return error_row(cell, one_line(exc), started)
    row = {**identity(cell), **measured, **versions(), "status": "ok", "error": None, "started": started,
           "finished": now(), "seconds": round(time.perf_counter() - t0, 3)}
    return row
