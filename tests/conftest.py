"""Shared fixtures, each built once per session: tiny checkpoints of every variant, local corpora,
the shipped strong-gate checkpoints prepared (loaded, calibrated) and mapped per window.

Nothing here imports torch at module level: the torch-free subset (``-m torchfree``) runs on
Python 3.10 without torch with this conftest loaded.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

import pytest

from .helpers import SHIPPED

# One OpenMP thread for torch (read when torch is first imported, after this file): on a
# 2-core machine with another busy process, intra-op threads made small ops up to 100x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The default window's choices (deploy/faithful.py) are cached per session, not in ~/.cache: a test
# sees what this code chooses, never what an older checkout cached.
os.environ["EMBER_NEURO_WINDOWS"] = tempfile.mkdtemp(prefix="ember-neuro-windows-")

HAVE_TORCH = importlib.util.find_spec("torch") is not None
VOCAB = "".join(chr(c) for c in range(32, 32 + 65))
VARIANTS = ["standard", "lif-fixed", "lif-learnable", "lif-refractory", "temporal-lif", "qwen-gate", "cfc",
            "cfc-lif"]


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    """Without torch (the Python 3.10 suite), collect only the modules marked torchfree: the others
    import torch-side modules at import time, so they are not even collected there."""
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_") or HAVE_TORCH:
        return None
    return "pytest.mark.torchfree" not in collection_path.read_text()


@pytest.fixture(scope="session")
def text_file(tmp_path_factory) -> Path:
    """A small local corpus (no network needed)."""
    p = tmp_path_factory.mktemp("data") / "corpus.txt"
    lines = [f"ROMEO: line {i} of the play, with words and more words.\n" for i in range(400)]
    p.write_text("".join(lines), encoding="utf-8")
    return p


@pytest.fixture(scope="session")
def vocab_text(tmp_path_factory) -> Path:
    """Text in the tiny checkpoints' vocabulary (for calibration and observed inputs)."""
    import random

    rng = random.Random(0)
    words = ["ROMEO", "JULIET", "THE", "AND", "LOVE", "NIGHT", "O", "MY", "HERE", "WHAT"]
    text = " ".join(rng.choice(words) + rng.choice([",", ".", "!", "?", ""]) for _ in range(6000))
    p = tmp_path_factory.mktemp("vocab-data") / "corpus.txt"
    p.write_text(text, encoding="utf-8")
    return p


def make_ckpt(path: Path, variant: str, seed: int = 0, perturb: bool = True, spike: str = "soft") -> Path:
    """An untrained tiny checkpoint; `perturb` spreads gate parameters like training does.  ``spike
    "hard"`` (temporal-lif): the membrane's threshold is set at the median ||attn_out|| of a random
    batch, so about half the tokens of a layer spike and the rest skip their MLP."""
    import dataclasses

    import torch

    from ember_neuro.models.build import build_model
    from ember_neuro.models.checkpoint import save_checkpoint
    from ember_neuro.models.config import config_for

    torch.manual_seed(seed)
    cfg = dataclasses.replace(config_for(variant, "tiny", vocab_size=len(VOCAB)), spike=spike)
    model = build_model(cfg)
    if perturb:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "gate.threshold" in name:
                    p.copy_(torch.empty_like(p).uniform_(-0.3, 1.1))
                elif "gate.steepness" in name:
                    p.copy_(torch.empty_like(p).uniform_(-1.0, 2.5))
    if spike == "hard":
        _median_threshold(model, cfg)
    save_checkpoint(path, model, cfg, 0, 3.0, {"vocab": VOCAB, "data": "synthetic"})
    return path


def _median_threshold(model, cfg) -> None:
    import torch

    from ember_neuro.gates import softplus_inverse

    seen = []

    def record(gate, inputs):
        if gate.hook == "membrane":
            seen.append(inputs["importance"].flatten())
        return gate.fire(inputs)

    with torch.no_grad():
        model(torch.randint(0, cfg.vocab_size, (4, cfg.block_size)), hook=record)
        theta = float(torch.cat(seen).median())
        model.transformer.h[0].temporal.threshold.fill_(softplus_inverse(theta))


@pytest.fixture(scope="session")
def tiny_ckpts(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ckpts")
    made = {v: make_ckpt(d / f"{v}.pt", v) for v in VARIANTS}
    made["temporal-lif-hard"] = make_ckpt(d / "temporal-lif-hard.pt", "temporal-lif", spike="hard")
    return made


class Shipped:
    """The shipped strong-gate checkpoints, each loaded and calibrated once, each mapping made once."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self._prep: dict = {}
        self._nets: dict = {}
        self._dirs: dict = {}

    def prep(self, variant: str):
        from ember_neuro.deploy.mapping import prepare

        if variant not in self._prep:
            self._prep[variant] = prepare(str(SHIPPED / f"{variant}-strong.pt"))
        return self._prep[variant]

    def net(self, variant: str, t: int = 8, n: int = 1, levels: str = "uniform"):
        from ember_neuro.mappers import MappingOptions

        key = (variant, t, n, levels)
        if key not in self._nets:
            options = MappingOptions(timesteps=t, neurons_per_gate=n, levels=levels)
            self._nets[key] = self.prep(variant).map(options)
        return self._nets[key]

    def mapped(self, variant: str, t: int = 8, n: int = 1, levels: str = "uniform") -> Path:
        """A saved mapping (what `map --out` writes) of that window, for `--mapped`."""
        from ember_neuro.mappers import save_mapped

        key = (variant, t, n, levels)
        if key not in self._dirs:
            self._dirs[key] = save_mapped(self.net(*key), self.tmp / f"{variant}-T{t}-N{n}-{levels}.npz")
        return self._dirs[key]


@pytest.fixture(scope="session")
def shipped(tmp_path_factory) -> Shipped:
    return Shipped(tmp_path_factory.mktemp("shipped"))
