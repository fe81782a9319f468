"""Fidelity sweeps on Dask distributed: a grid of run --eval cells, resumable, one tidy table.

    python -m ember_neuro.sweep run                      # every shipped checkpoint x 8 windows x 2 level sets
    python -m ember_neuro.sweep run ckpt42.pt ckpt668.pt ckpt1337.pt --windows 1x1,4x16,8x32
    python -m ember_neuro.sweep run --spec sweep.toml --address tcp://10.0.0.5:8786
    python -m ember_neuro.sweep plot runs/sweep/results.csv --out fidelity.png
    python -m ember_neuro.sweep table runs/sweep/results.csv --checkpoint lif-learnable-strong

run: every cell (checkpoint x window T x N x level set x backend) is one `run --eval` -- float vs
spiking loss, KL and top-1 agreement, on the whole validation split by default (--batches 0;
an audio model: the testing split's clips) -- as one task on a local Dask cluster of --workers
processes (default: one per core), or on the real cluster whose scheduler is at --address.
Each finished cell lands in OUT/results.csv at once (columns: docs/sweep.md); run the same
command again after an interruption and only the unfinished cells run.  A killed worker loses
no finished cell: its cell runs on another.  At the end OUT/fidelity.png (error against N*T
with the 1/(2NT) limit, per variant, the spread over seeds) and OUT/fidelity.md are written.

A checkpoint's seed is read from the checkpoint: sweep three seeds of a variant by giving
their three checkpoints.  A spec file (TOML or JSON; ember_neuro/sweep/grid.py documents its
keys) holds the same grid; options given here override it.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from ember_neuro import cli
from ember_neuro.sweep import engine, figures, results
from ember_neuro.sweep.grid import DEFAULT_LEVELS, DEFAULT_WINDOWS, Grid, read_spec


def _stop_on_sigterm() -> None:
    """SIGTERM (a batch system's stop, `kill`) ends the sweep as Ctrl-C does: the running cells are
    cancelled and the cluster closed; every finished cell is already in the table."""
    def stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def _run(args: Any) -> dict[str, Any]:
    _stop_on_sigterm()
    spec = read_spec(args.spec) if args.spec else {}
    grid = Grid.from_spec(spec, checkpoints=args.checkpoints or None, variants=args.variants,
                          windows=args.windows, levels=args.levels, backends=args.backends,
                          batches=args.batches, batch_size=args.batch_size, timeout=args.timeout)
    out = Path(args.out)
    table = results.Results(out / "results.csv")  # another version's table refused before any work
    cells = grid.cells()
    with engine.engine(args.address, args.workers, args.connect_timeout) as client:
        summary = engine.run(cells, table, client, progress=not args.quiet)
    ids = {c.id for c in cells}
    rows = [r for r in table.ok_rows() if r["cell"] in ids]
    written = [str(table.path)]
    if rows:
        written.append(str(figures.plot(rows, out / "fidelity.png")))
        from ember_neuro.atomic import atomic_write_bytes

        atomic_write_bytes(out / "fidelity.md", lambda tmp: Path(tmp).write_text(figures.table(rows)))
        written.append(str(out / "fidelity.md"))
    print(summary.line(str(table.path)), file=sys.stderr)
    return {**summary.__dict__, "written": written,
            "failed": [{"cell": r["cell"], "error": r["error"]} for r in table.rows.values()
                       if r["status"] != "ok" and r["cell"] in ids]}


def _plot(args: Any) -> dict[str, Any]:
    rows = results.read(args.results).ok_rows()
    return {"written": str(figures.plot(rows, args.out or Path(args.results).with_name("fidelity.png")))}


def _table(args: Any) -> dict[str, Any]:
    rows = results.read(args.results).ok_rows()
    known = {r["checkpoint"] for r in rows}
    for c in args.checkpoint or []:
        if c not in known:
            raise results.SweepError(f"no finished cell of checkpoint {c!r} in {args.results} (has: "
                                     f"{', '.join(sorted(known))})")
    keep = [r for r in rows if not args.checkpoint or r["checkpoint"] in args.checkpoint]
    if args.wide:
        return {"markdown": figures.wide_table(keep, args.wide)}
    return {"markdown": figures.table(keep)}


def main(argv: list[str] | None = None) -> int:
    ap = cli.parser("ember_neuro.sweep", __doc__)
    sub = ap.add_subparsers(dest="command", required=True, metavar="{run,plot,table}")
    r = sub.add_parser("run", help="run the grid (resumes: finished cells are kept)",
                       description="Run the grid; see `python -m ember_neuro.sweep --help`.")
    r.add_argument("checkpoints", nargs="*",
                   help="checkpoints to sweep (default: every shipped one, or --variants)")
    r.add_argument("--spec", help="a TOML or JSON spec of the grid (keys: ember_neuro/sweep/grid.py)")
    r.add_argument("--variants", help="comma-separated: every shipped checkpoint of these variants")
    r.add_argument("--windows", help="comma-separated T x N (default: "
                                     f"{','.join(f'{t}x{n}' for t, n in DEFAULT_WINDOWS)})")
    r.add_argument("--levels", help=f"comma-separated level sets (default: {','.join(DEFAULT_LEVELS)})")
    r.add_argument("--backends", help="comma-separated gate backends (default: emulator, bit-exact with "
                                      "lava-sim; lava-sim runs the real Lava runtime, far slower)")
    r.add_argument("--batches", type=int, help="run --eval's batches per cell (default 0: the whole split)")
    r.add_argument("--batch-size", type=int, help="sequences per batch (default 8)")
    r.add_argument("--timeout", type=float, help="seconds per Lava run inside a cell (default 120)")
    where = r.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="local cluster: worker processes, one thread each (default: one per core)")
    where.add_argument("--address", help="join the real cluster whose Dask scheduler is here, "
                                         "e.g. tcp://10.0.0.5:8786 (`dask scheduler` prints it)")
    r.add_argument("--connect-timeout", type=float, default=10.0, help="seconds to wait for --address")
    r.add_argument("--out", default="runs/sweep", help="folder of results.csv, fidelity.png, fidelity.md")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    cli.add_json_option(r)
    r.set_defaults(fn=_run)
    p = sub.add_parser("plot", help="draw fidelity against N*T from a results table")
    p.add_argument("results")
    p.add_argument("--out", help="PNG path (default: fidelity.png beside the table)")
    cli.add_json_option(p)
    p.set_defaults(fn=_plot)
    t = sub.add_parser("table", help="print a markdown table of a results table's cells")
    t.add_argument("results")
    t.add_argument("--checkpoint", action="append", help="only this checkpoint (its file name without .pt)")
    t.add_argument("--wide", choices=("top1_agreement", "rel_delta"),
                   help="one row per checkpoint and level set, one column per window, this value")
    cli.add_json_option(t)
    t.set_defaults(fn=_table)
    args = ap.parse_args(argv)

    def report(res: dict[str, Any]) -> None:
        if "markdown" in res:
            print(res["markdown"], end="")
        elif args.command == "plot":
            print(f"wrote {res['written']}")
        else:
            for w in res["written"]:
                print(f"wrote {w}")
            for f in res["failed"]:
                print(f"cell {f['cell']} failed: {f['error']}", file=sys.stderr)

    return cli.run_and_report(args.fn, args, "interrupted: the finished cells are in the results table; run "
                              "the same command to resume", report,
                              status=lambda res: 1 if res.get("failed") else 0)


if __name__ == "__main__":
    sys.exit(main())
