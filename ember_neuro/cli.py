"""Shared command-line conventions: one-line errors and meaningful exit codes.

0 done; 2 bad input (the message names it); 3 a backend that cannot run on this
machine (e.g. loihi2 without Intel's extension); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from importlib import metadata
from typing import Any

from ember_neuro.backends import BackendUnavailable


def run_guarded(fn: Callable[[Any], Any], args: Any, bad_input: tuple[type[BaseException], ...],
                interrupted: str) -> tuple[int, Any]:
    """Call fn(args); map failures to (exit code, None) after one line on stderr.

    With args.json, anything a library prints goes to stderr, so stdout carries
    exactly the one JSON object the caller prints afterwards.
    """
    quiet = contextlib.redirect_stdout(sys.stderr) if getattr(args, "json", False) \
        else contextlib.nullcontext()
    try:
        with quiet:
            return 0, fn(args)
    except BackendUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3, None
    except bad_input as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2, None
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130, None


def package_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    """Installed version of each distribution (None if absent), for manifests and reports."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
