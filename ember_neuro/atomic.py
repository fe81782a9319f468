"""Write files and folders so that a reader sees all of it or none of it."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


class OutputExists(FileExistsError):
    """The output folder exists and --force was not given."""


def _umask_mode(mode: int) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call write(tmp_path), then rename over `path`: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _umask_mode(0o666))  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_output_dir(dest: str | os.PathLike, force: bool) -> Path:
    """Fail early, with one line, if `dest` cannot be (re)written."""
    dest = Path(dest)
    if dest.exists() and not force:
        raise OutputExists(f"output folder {dest} exists; pass --force to replace it")
    if dest.exists() and not dest.is_dir():
        raise OutputExists(f"output path {dest} exists and is not a folder")
    parent = dest.parent if str(dest.parent) else Path(".")
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write output folder {dest}: {probe} is not writable")
    return dest


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder next to `dest`; on success it replaces `dest` in one rename.

    On any exception (Ctrl-C included) the temporary folder is removed and
    `dest` -- if it existed -- is left exactly as it was.
    """
    dest = check_output_dir(dest, force)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        yield tmp
        os.chmod(tmp, _umask_mode(0o777))
        if dest.exists():
            backup = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
            os.rmdir(backup)
            os.replace(dest, backup)
            os.replace(tmp, dest)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
