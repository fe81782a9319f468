"""The environment the set-up promises: Lava that runs a fixed-point LIF (patched on 3.11), namespaced
packages, side-effect-free processes.  Torch-free: part of the Python 3.10 suite."""

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ember_neuro.atomic import OutputExists, atomic_dir

from .helpers import ROOT, run_lava_isolated

pytestmark = pytest.mark.torchfree


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Lava installs natively on 3.10: no patch")
def test_lava_is_patched_for_this_python():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "patch_lava.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def _fixed_point_lif_spikes() -> np.ndarray:
    from ember_neuro.backends.lava import import_lava

    import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer
    from lava.proc.lif.process import LIF

    lif = LIF(shape=(1,), du=4095, dv=0, bias_mant=100, bias_exp=0, vth=5)
    sink = RingBuffer(shape=(1,), buffer=12)
    lif.s_out.connect(sink.a_in)
    try:
        lif.run(condition=RunSteps(num_steps=12), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        return sink.data.get()[0]
    finally:
        lif.stop()


@pytest.mark.lava
def test_lava_runs_a_fixed_point_lif():
    """Lava's own LIF, bit-accurate model: bias 100 -> v grows by 100 per step (dv = 0),
    threshold 5 << 6 = 320 -> spikes when v > 320, i.e. at steps 4, 8, 12 (v reset to 0)."""
    spikes = run_lava_isolated(_fixed_point_lif_spikes, timeout_s=60)
    assert np.flatnonzero(spikes).tolist() == [3, 7, 11]


def test_generic_folders_live_inside_the_namespace(tmp_path):
    """Installed, `ember_neuro.processes` comes from processes/ and no top-level `processes` exists."""
    code = ("import importlib.util as u, json;"
            "print(json.dumps({n: [getattr(u.find_spec('ember_neuro.' + n), 'origin', None),"
            " u.find_spec(n) is not None] for n in ('mappers', 'processes', 'export')}))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path)  # away from the checkout: only what is installed
    found = json.loads(r.stdout)
    for name, (origin, top_level) in found.items():
        assert Path(origin).parent == ROOT / name
        assert not top_level, f"a top-level '{name}' package is importable"


def test_the_wheel_ships_every_package_folder(tmp_path):
    """A wheel built from the checkout holds every package folder (a new gate kind's folder found by
    setup.py, not listed by hand), inside the ember_neuro namespace only, with the checkpoints.

    Built from a copy of the sources: an in-tree build would reuse a stale build/ folder, whose
    old files end up in the wheel whatever setup.py finds now."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "runs", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache"))
    out = tmp_path / "wheel"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    if r.returncode != 0 and ("No module named" in r.stderr or "invalid command 'bdist_wheel'" in r.stderr):
        pytest.skip("this venv's setuptools cannot build wheels offline (the 3.11 suite checks the wheel)")
    assert r.returncode == 0, r.stderr
    (wheel,) = out.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {str(Path(n).parent).replace("/", ".") for n in names if n.endswith("/__init__.py")}
    on_disk = {".".join(("ember_neuro", *i.parent.relative_to(ROOT / "ember_neuro").parts))
               for i in (ROOT / "ember_neuro").rglob("__init__.py") if "__pycache__" not in i.parts}
    on_disk |= {f"ember_neuro.{folder}" for folder in ("mappers", "processes", "export")}
    assert on_disk <= shipped
    top = {n.split("/")[0] for n in names}
    assert len(top) == 2 and "ember_neuro" in top and any(t.endswith(".dist-info") for t in top), top
    assert any(n.endswith("-strong.pt") for n in names) and "ember_neuro/export/bundle/verify.py" in names


def test_processes_modules_are_side_effect_free():
    """Lava imports every module in a Process's folder: importing them must not run anything."""
    code = ("import sys, ember_neuro.processes as p, pkgutil, importlib;"
            "[importlib.import_module('ember_neuro.processes.' + m.name)"
            " for m in pkgutil.iter_modules(p.__path__)];"
            "print(sorted(k for k in sys.modules if k.startswith('ember_neuro.')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    assert "ember_neuro.models.transformer" not in r.stdout and "ember_neuro.backends.lava" not in r.stdout


def test_atomic_dir_all_or_nothing(tmp_path):
    dest = tmp_path / "out"
    with atomic_dir(dest) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (dest / "a.txt").read_text() == "1"
    with pytest.raises(OutputExists):
        with atomic_dir(dest):
            pass
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(dest, force=True) as tmp:
            (tmp / "b.txt").write_text("half")
            raise KeyboardInterrupt
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp folders left
    with atomic_dir(dest, force=True) as tmp:
        (tmp / "c.txt").write_text("new")
    assert sorted(p.name for p in dest.iterdir()) == ["c.txt"]
