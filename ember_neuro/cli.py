"""The one runner every command goes through: parsing helpers, one-line errors, exit codes, --json.

0 done; 1 done, but a quality bar was missed (the output says which); 2 bad input
(the message names it); 3 a backend that cannot run on this machine (e.g.
loihi2 without Intel's extension); 4 a runtime fault (a Lava process died, a
run timed out, the disk filled while writing); 130 interrupted (Ctrl-C).
Nothing that was already written is lost: outputs are written to a temporary
path and renamed.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import sys
from collections.abc import Callable
from dataclasses import fields
from importlib import metadata
from typing import Any

from ember_neuro.atomic import OutputExists
from ember_neuro.errors import BadInput, RuntimeFault, Unavailable

EXIT_BAD_INPUT, EXIT_UNAVAILABLE, EXIT_RUNTIME, EXIT_INTERRUPTED = 2, 3, 4, 130


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (whatever the library put in it)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _os_error(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" while writing {exc.filename}" if exc.filename else " while writing outputs"
        return f"no space left on the device{where}; nothing was half-written"
    return one_line(exc)


def classify(exc: BaseException) -> tuple[int, str]:
    """(exit code, one-line message) for an exception escaping a command."""
    if isinstance(exc, Unavailable):
        return EXIT_UNAVAILABLE, f"error: {one_line(exc)}"
    if isinstance(exc, (BadInput, OutputExists, PermissionError, ValueError, ImportError)):
        return EXIT_BAD_INPUT, f"error: {one_line(exc)}"
    if isinstance(exc, (RuntimeFault, TimeoutError)):
        return EXIT_RUNTIME, f"error: {one_line(exc)}"
    if isinstance(exc, OSError):
        return EXIT_RUNTIME, f"error: {_os_error(exc)}"
    if isinstance(exc, (RuntimeError, MemoryError)):
        return EXIT_RUNTIME, f"error: {type(exc).__name__}: {one_line(exc)}"
    raise exc


def run_guarded(fn: Callable[[Any], Any], args: Any, interrupted: str) -> tuple[int, Any]:
    """Call fn(args); map failures to (exit code, None) after one line on stderr.

    With args.json, anything a library prints goes to stderr, so stdout carries
    exactly the one JSON object the caller prints afterwards.
    """
    quiet = contextlib.redirect_stdout(sys.stderr) if getattr(args, "json", False) \
        else contextlib.nullcontext()
    try:
        with quiet:
            return 0, fn(args)
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return EXIT_INTERRUPTED, None
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line and an exit code
        code, line = classify(exc)
        print(line, file=sys.stderr)
        return code, None


LEVELS_HELP = ("the dither's level set: auto (default: log for attention groups whose gates can close, "
               "leak < 0.1, uniform elsewhere; the best measured at the model level, about 4x fewer "
               "neurons on strong gates), uniform (per-gate error 1/(2NT), the rate code's limit; the "
               "default of map --max-error) or log (levels uniform in log(fire + 0.01): a nearly closed "
               "gate keeps its relative precision; the per-gate worst case grows); docs/mapping.md")


def bundle_runtime_missing(backend: str) -> str | None:
    """What the INRC bundle's runners (generate.py, classify.py) need and this environment lacks,
    as their one-line error (None: nothing): onnxruntime, and Lava unless the gates run on numpy."""
    from importlib.util import find_spec

    missing = [m for m in ("onnxruntime", *(("lava",) if backend != "numpy" else ())) if find_spec(m) is None]
    if not missing:
        return None
    return (f"{', '.join(missing)} not installed in this environment; install the bundle's environment "
            "with `pip install -r requirements.txt` (Python 3.10)")


def parser(prog: str, doc: str | None, epilog: str = "") -> argparse.ArgumentParser:
    """An argument parser whose --help is the command's docstring (and `epilog`), formatted as written."""
    return argparse.ArgumentParser(prog=f"python -m {prog}" if "." in prog else prog,
                                   description=(doc or "") + epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def add_json_option(ap: Any,
                    what: str = "print one JSON object on stdout (anything else goes to stderr)") -> None:
    ap.add_argument("--json", action="store_true", help=what)


def add_threads_option(ap: Any) -> None:
    ap.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads (default 1)")


def from_args(cls: type, args: Any, **overrides: Any) -> Any:
    """An options dataclass from an argparse namespace: every field of the same name, then `overrides`."""
    given = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    return cls(**{**given, **overrides})


WINDOW_EPILOG = """
the window (default: faithful at the model level):
  With no -T/-N the window is chosen on calibration text (deploy/faithful.py): the fewest
  timesteps T within one Loihi 2 chip, then the fewest neurons per gate N, whose hybrid model
  agrees with the float model on >= 99.8 % of next tokens (top-1) with |rel. delta| <= 0.1 % of
  validation loss, gates on the emulator (bit-exact with lava-sim), levels auto.  The choice is
  printed, kept in the mapping and in --json, and cached per checkpoint.  -T alone: N is chosen;
  -N alone: T is chosen; both: no search.  --min-top1 / --max-rel-delta set another target; one
  that no window within the chip meets is refused with the best reachable.
"""


def add_window_options(ap: Any, mapped_note: str = "") -> None:
    """-T, -N, --levels and the model-level target, shared by map, run, validate and export inrc."""
    ap.add_argument("--timesteps", "-T", type=int, default=None,
                    help=f"window length T (default: chosen, see below{mapped_note})")
    ap.add_argument("--neurons-per-gate", "-N", type=int, default=None,
                    help=f"neurons per gate; N*T levels per value (default: chosen{mapped_note})")
    ap.add_argument("--levels", choices=("uniform", "log", "auto"), default=None, help=LEVELS_HELP)
    ap.add_argument("--min-top1", type=float, default=None, metavar="PCT",
                    help="the chosen window's least top-1 agreement with the float model, in %% "
                         "(default 99.8)")
    ap.add_argument("--max-rel-delta", type=float, default=None, metavar="PCT",
                    help="the chosen window's largest |relative change| of validation loss, in %% "
                         "(default 0.1)")


def run_and_report(fn: Callable[[Any], Any], args: Any, interrupted: str, report: Callable[[Any], None],
                   status: Callable[[Any], int] | None = None) -> int:
    """A CLI's main after parsing: fn(args) guarded by :func:`run_guarded`, then one JSON object
    (``args.json``) or ``report(result)``; the exit status is ``status(result)`` (default 0:
    done; 1 where a command says a bar was missed)."""
    code, result = run_guarded(fn, args, interrupted)
    if code:
        return code
    if getattr(args, "json", False):
        print(json.dumps(result, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    else:
        report(result)
    return status(result) if status is not None else 0


def torch_threads(n: int) -> None:
    """Set torch's intra-op threads (the CLIs default to 1).

    The gate path's tensors are small: on a 2-core machine with Lava's processes or any
    other load, OpenMP workers spinning against them made the same work 5-100x slower
    (measured: calibrating Liquid Ember took 22 s with torch's default, 4.5 s with one).
    """
    if n < 1:
        raise BadInput(f"--threads must be >= 1, got {n}")
    import torch

    torch.set_num_threads(n)


def package_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    """Installed version of each distribution (None if absent), for manifests and reports."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
