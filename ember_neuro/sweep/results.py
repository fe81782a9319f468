"""The sweep's tidy table: one CSV row per cell, its schema, and the check that refuses to mix.

CSV, not Parquet: the table is a few hundred rows, every tool reads CSV, and Parquet would add
pyarrow (100 MB) to the set-up for nothing.  The columns, their types and meanings are
:data:`COLUMNS` (docs/sweep.md prints them; a test keeps the two equal).  The file is rewritten
whole (temp file, then rename) after every finished cell, so an interrupted sweep leaves a
complete table of the cells it finished and never a half-written row.

A table written by another ember-neuro version (another header, or rows stamped with another
version) is refused with one line: its numbers came from other code, and mixing them with this
version's would make one figure of two programs.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ember_neuro import __version__
from ember_neuro.atomic import atomic_write_bytes
from ember_neuro.sweep.grid import SweepError


@dataclass(frozen=True)
class Column:
    name: str
    type: type
    meaning: str


COLUMNS: tuple[Column, ...] = (
    Column("cell", str, "the cell's id: a hash of the checkpoint's sha256, backend, T, N, level set, "
                        "batches and batch size"),
    Column("status", str, "ok, or error (then `error` says why; an error cell runs again on resume)"),
    Column("checkpoint", str, "the checkpoint file's name without .pt"),
    Column("checkpoint_sha256", str, "sha256 of the checkpoint file"),
    Column("variant", str, "the Ember variant"),
    Column("seed", int, "the training seed, from the checkpoint's config"),
    Column("backend", str, "where the gates ran (emulator: bit-exact with lava-sim)"),
    Column("timesteps", int, "T, the window length"),
    Column("neurons_per_gate", int, "N, neurons per gate"),
    Column("levels", str, "the dither's level set (uniform, log, auto)"),
    Column("nt", int, "N*T: a gate's N*T + 1 representable levels"),
    Column("limit", float, "1/(2NT): the rate code's worst-case gate error at this N*T"),
    Column("gate_worst_error", float, "the largest unit's exact fixed-point worst case of |rate - sigmoid| "
                                      "over its input range (the mapper's; the hard membrane excluded)"),
    Column("gate_mean_worst_error", float, "the mean over units of that worst case"),
    Column("neurons", int, "Loihi 2 neurons of the generation layout (block_size slots per unit)"),
    Column("split", str, "what was scored: validation (text) or testing (audio, as run --eval)"),
    Column("unit", str, "tokens or clips"),
    Column("batches", int, "run --eval's batches; 0: the whole split"),
    Column("batch_size", int, "sequences (clips) per batch"),
    Column("predictions", int, "next-token predictions (clips) scored"),
    Column("val_loss_float", float, "the float model's loss"),
    Column("val_loss_hybrid", float, "the spiking model's loss"),
    Column("rel_delta", float, "(hybrid - float) / float loss"),
    Column("kl", float, "mean KL(float || hybrid) per prediction"),
    Column("top1_agreement", float, "fraction of predictions whose top-1 equals the float model's"),
    Column("accuracy_float", float, "the float model's top-1 accuracy"),
    Column("accuracy_hybrid", float, "the spiking model's top-1 accuracy"),
    Column("mlp_skip_fraction", float, "temporal-lif, hard membrane: MLP calls skipped (else empty)"),
    Column("map_seconds", float, "mapping the checkpoint at this window, on the worker"),
    Column("eval_seconds", float, "the hybrid forward passes"),
    Column("seconds", float, "the whole cell on its worker"),
    Column("worker", str, "host:pid of the worker process that ran it"),
    Column("started", str, "UTC start, ISO 8601"),
    Column("finished", str, "UTC end, ISO 8601"),
    Column("ember_neuro", str, "the ember-neuro version that wrote the row"),
    Column("torch", str, "torch version on the worker"),
    Column("lava", str, "lava-nc version on the worker (empty: not installed)"),
    Column("python", str, "Python version on the worker"),
    Column("error", str, "one line, when status is error"),
)
NAMES = tuple(c.name for c in COLUMNS)
TYPES = {c.name: c.type for c in COLUMNS}


def _parse(name: str, text: str) -> Any:
    if text == "":
        return None
    kind = TYPES[name]
    try:
        return kind(float(text)) if kind is int else kind(text)
    except ValueError:
        raise SweepError(f"column {name!r}: {text!r} is not a {kind.__name__}") from None


def _format(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


class Results:
    """The table at ``path``: the rows read (checked), then one :meth:`add` per finished cell."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.rows: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self._read()

    def _read(self) -> None:
        where = str(self.path)
        try:
            with self.path.open(newline="") as f:
                reader = csv.reader(f)
                header = next(reader, None)
                body = list(reader)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise SweepError(f"cannot read the results table {where}: {' '.join(str(exc).split())}") from None
        if header is None:
            return
        if tuple(header) != NAMES:
            raise SweepError(f"{where} was not written by ember-neuro {__version__}'s sweep (its columns "
                             "differ from docs/sweep.md's); give another --out, or move it away to start "
                             "over")
        for line in body:
            if len(line) != len(NAMES):
                raise SweepError(f"{where}: a row has {len(line)} fields, not {len(NAMES)}; the file was "
                                 "edited or cut; move it away to start over")
            row = {n: _parse(n, v) for n, v in zip(NAMES, line, strict=True)}
            if row["ember_neuro"] != __version__:
                raise SweepError(f"{where} holds cells computed by ember-neuro {row['ember_neuro']} (this is "
                                 f"{__version__}); refused rather than mixed: give another --out")
            self.rows[row["cell"]] = row

    def done(self) -> set[str]:
        """The finished cells: never run again."""
        return {k for k, r in self.rows.items() if r["status"] == "ok"}

    def add(self, row: dict[str, Any]) -> None:
        """Keep one cell's row (replacing an earlier error row of it) and rewrite the table."""
        missing = [n for n in NAMES if n not in row]
        if missing:
            raise ValueError(f"a results row lacks {', '.join(missing)}")
        self.rows[row["cell"]] = {n: row[n] for n in NAMES}
        self.write()

    def write(self) -> None:
        def dump(tmp: str) -> None:
            with open(tmp, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(NAMES)
                for r in self.rows.values():
                    w.writerow([_format(r[n]) for n in NAMES])

        atomic_write_bytes(self.path, dump)

    def ok_rows(self) -> list[dict[str, Any]]:
        return [r for r in self.rows.values() if r["status"] == "ok"]


def read(path: str | os.PathLike) -> Results:
    """A results table that must exist (plot and table refuse a missing one with one line)."""
    p = Path(path)
    if not p.is_file():
        raise SweepError(f"no results table at {p}; run `python -m ember_neuro.sweep run --out {p.parent}` "
                         "first")
    return Results(p)
