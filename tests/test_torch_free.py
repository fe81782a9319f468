"""The hardware path without torch: a saved mapping loads and runs on the numpy reference and on Lava
in a Python where ``import torch`` fails; the audio front end computes features there without
librosa (given the stored mel basis).

Torch-free itself: part of the Python 3.10 suite (where torch is not installed at all).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ember_neuro.mappers import MappedNetwork, MappingOptions, map_gates, save_mapped

from .helpers import random_units

pytestmark = pytest.mark.torchfree

CHILD = textwrap.dedent("""
    import json, pkgutil, sys
    sys.modules["torch"] = None  # any `import torch` now raises ImportError
    sys.modules["librosa"] = None  # the audio front end too: the bundle stores the mel basis
    try:
        import torch  # noqa: F401
        raise SystemExit("torch was importable")
    except ImportError:
        pass
    import numpy as np
    import ember_neuro.mappers, ember_neuro.processes
    from ember_neuro.audio import features, wav  # classify.py's front end (export/inrc.py LIB_PACKAGES)
    from ember_neuro.backends import lava, numpy_ref, registry
    from ember_neuro.mappers import load_mapped
    out = {}
    net = load_mapped(sys.argv[1], expect_sha256="00" * 32)
    group = net.group("attention")
    rng = np.random.default_rng(1)
    idx = rng.integers(0, len(group.units), 40)
    x = group.encode(rng.uniform(0, 1, (3, 40)), True)
    array = group.layout(idx, True)
    ref = numpy_ref.rasters(array, x)
    with lava.LavaGateRunner(array, timeout_s=60) as runner:
        got = runner.run_windows(x)
    lava.import_lava()
    import importlib
    for m in pkgutil.iter_modules(ember_neuro.processes.__path__):
        importlib.import_module("ember_neuro.processes." + m.name)
    try:
        registry.require("emulator")
        out["emulator"] = "available"
    except registry.BackendUnavailable as exc:
        out["emulator"] = str(exc)
    spec = features.FeatureSpec()
    basis = np.abs(rng.normal(size=(spec.n_mels, spec.n_bins))).astype(np.float32)
    out["log_mel"] = list(features.log_mel(rng.uniform(-1, 1, spec.audio_length), spec, basis).shape)
    out["bit_exact"] = bool(np.array_equal(ref, got))
    out["spikes"] = int(ref.sum())
    out["torch_loaded"] = sys.modules.get("torch") is not None
    print(json.dumps(out))
""")


@pytest.mark.lava
def test_saved_mapping_runs_on_lava_and_numpy_without_torch(tmp_path: Path) -> None:
    pytest.importorskip("lava")
    rng = np.random.default_rng(0)
    group = map_gates(random_units(rng, 6), MappingOptions(timesteps=8, neurons_per_gate=2), name="attention")
    net = MappedNetwork(variant="lif-learnable", groups={"attention": group},
                        options={"timesteps": 8, "neurons_per_gate": 2},
                        checkpoint={"path": "x.pt", "sha256": "00" * 32})
    path = save_mapped(net, tmp_path / "mapped.npz")
    r = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["bit_exact"] and out["spikes"] > 0 and not out["torch_loaded"]
    assert out["log_mel"] == [98, 80]  # features with a given basis: numpy and scipy, no librosa
    assert "needs torch" in out["emulator"]
