"""Shared fixtures: tiny checkpoints built once per session, a local corpus, CLI runner.

Nothing here imports torch at module level: tests/core runs on the torch-free
Python 3.10 environment with this conftest loaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ROOT

# One OpenMP thread for torch (read when torch is first imported, after this file): on a
# 2-core machine with another busy process, intra-op threads made small ops up to 100x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

VOCAB = "".join(chr(c) for c in range(32, 32 + 65))
VARIANTS = ["standard", "lif-fixed", "lif-learnable", "lif-refractory", "temporal-lif", "qwen-gate", "cfc",
            "cfc-lif"]


def run_cli(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """Run `python -m ...` in a subprocess; returns the completed process."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **kw.get("env", {}))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=kw.get("cwd", ROOT))


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


def make_ckpt(path: Path, variant: str, seed: int = 0, perturb: bool = True) -> Path:
    """An untrained tiny checkpoint; `perturb` spreads gate parameters like training does."""
    import torch

    from ember_neuro.models.build import build_model
    from ember_neuro.models.checkpoint import save_checkpoint
    from ember_neuro.models.config import config_for

    torch.manual_seed(seed)
    cfg = config_for(variant, "tiny", vocab_size=len(VOCAB))
    model = build_model(cfg)
    if perturb:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "gate.threshold" in name:
                    p.copy_(torch.empty_like(p).uniform_(-0.3, 1.1))
                elif "gate.steepness" in name:
                    p.copy_(torch.empty_like(p).uniform_(-1.0, 2.5))
    save_checkpoint(path, model, cfg, 0, 3.0, {"vocab": VOCAB, "data": "synthetic"})
    return path


@pytest.fixture(scope="session")
def tiny_ckpts(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ckpts")
    return {v: make_ckpt(d / f"{v}.pt", v) for v in VARIANTS}
