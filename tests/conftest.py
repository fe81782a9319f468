"""Shared fixtures: tiny trained checkpoints built once per session."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ember_neuro.checkpoint import save_checkpoint
from ember_neuro.config import config_for
from ember_neuro.zoo import build_model

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "ember_neuro" / "checkpoints"
VOCAB = "".join(chr(c) for c in range(32, 32 + 65))


def run_lava_isolated(fn, *args, timeout_s: float = 60.0):
    """fn(*args) -- which starts Lava itself -- in a forked child with its own process group.

    On timeout (or anything left behind) the whole group is killed: Lava's own
    stop() hangs on a stuck run.  Returns fn's result; raises TimeoutError or
    RuntimeError (with the child's exception) otherwise.
    """
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)

    def child() -> None:
        os.setsid()
        try:
            send.send(("ok", fn(*args)))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            send.send(("error", repr(exc)))

    proc = ctx.Process(target=child)
    proc.start()
    try:
        if not recv.poll(timeout_s):
            raise TimeoutError(f"Lava run exceeded {timeout_s} s; its processes were killed")
        status, value = recv.recv()
        proc.join(10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.join(5)
    if status != "ok":
        raise RuntimeError(f"Lava run failed: {value}")
    return value


def run_cli(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """Run `python -m ...` in a subprocess; returns the completed process."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=kw.get("cwd", ROOT))


@pytest.fixture(scope="session")
def text_file(tmp_path_factory) -> Path:
    """A small local corpus (no network needed)."""
    p = tmp_path_factory.mktemp("data") / "corpus.txt"
    lines = [f"ROMEO: line {i} of the play, with words and more words.\n" for i in range(400)]
    p.write_text("".join(lines), encoding="utf-8")
    return p


def make_ckpt(path: Path, variant: str, seed: int = 0, perturb: bool = True) -> Path:
    """An untrained tiny checkpoint; `perturb` spreads gate parameters like training does."""
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
    variants = ["standard", "lif-fixed", "lif-learnable", "lif-refractory", "temporal-lif",
                "qwen-gate", "cfc", "cfc-lif"]
    return {v: make_ckpt(d / f"{v}.pt", v) for v in variants}
