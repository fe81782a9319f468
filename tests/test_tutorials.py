"""The tutorials (docs/tutorials/*.py, jupytext percent format) execute top to bottom in a fresh kernel.

The docs build executes them too (mkdocs-jupyter); this is the developer's way to see a broken cell
without building the site: `make test-slow`.  Each notebook runs with a working directory that is
not its own folder, so one that finds its files through the cwd fails here.  A failing cell fails
the test with that cell's source and error.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .helpers import ROOT

TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("[0-9][0-9]_*.py"))
CELL_TIMEOUT_S = 300


def test_the_tutorials_are_there() -> None:
    assert len(TUTORIALS) >= 3, TUTORIALS


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_executes(path: Path, tmp_path: Path) -> None:
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    from nbclient.exceptions import CellExecutionError

    nb = jupytext.read(path)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", allow_errors=False,
                                     resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except CellExecutionError as exc:
        message = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # the kernel's traceback, without its colours
        pytest.fail(f"{path.relative_to(ROOT)}: a cell failed\n{message}", pytrace=False)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert not list(tmp_path.iterdir()), "a tutorial left files in its working directory"
