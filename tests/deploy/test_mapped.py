"""`map --out DIR` saves a mapping that `run --mapped DIR` and `validate --mapped DIR` use instead of
mapping again -- and refuse, in one line, when it belongs to another checkpoint or other options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ember_neuro.mappers import load_mapped

from ..helpers import SHIPPED, run_main

CKPT = SHIPPED / "lif-learnable-strong.pt"
OTHER = SHIPPED / "lif-fixed-strong.pt"


@pytest.fixture(scope="module")
def mapped_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("map") / "m16"
    r = run_main("ember_neuro.map", str(CKPT), "--target", "emulator", "-T", "16", "-N", "2",
                "--grid-only", "--no-bit-exact-check", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def _eval(*args: str) -> dict:
    r = run_main("ember_neuro.run", str(CKPT), "--backend", "emulator", "--eval", "--batches", "1",
                "--batch-size", "2", "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_run_uses_the_saved_mapping(mapped_dir: Path) -> None:
    net = load_mapped(mapped_dir)
    assert net.options["timesteps"] == 16 and net.options["neurons_per_gate"] == 2
    from_file = _eval("--mapped", str(mapped_dir))
    fresh = _eval("-T", "16", "-N", "2")
    assert (from_file["timesteps"], from_file["neurons_per_gate"]) == (16, 2)
    assert from_file["mapped"] == str(mapped_dir) and fresh["mapped"] is None
    for key in ("val_loss_hybrid", "top1_agreement", "kl_float_hybrid"):
        assert from_file[key] == fresh[key]  # the same neurons, so the same spikes
    coarser = _eval("-T", "8", "-N", "1")  # N T = 8 instead of 32: other spikes, other numbers
    assert coarser["val_loss_hybrid"] != from_file["val_loss_hybrid"]


@pytest.mark.parametrize("cli", ["run", "validate"])
def test_a_mapping_of_another_checkpoint_is_refused(mapped_dir: Path, cli: str, tmp_path: Path) -> None:
    extra = ["--backend", "emulator"] if cli == "run" else ["--out", str(tmp_path / "v")]
    r = run_main(f"ember_neuro.{cli}", str(OTHER), "--mapped", str(mapped_dir), *extra)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "mapped from another checkpoint" in r.stderr and "map this checkpoint again" in r.stderr


@pytest.mark.parametrize("cli", ["run", "validate"])
def test_other_options_than_the_mapping_are_refused(mapped_dir: Path, cli: str, tmp_path: Path) -> None:
    extra = ["--backend", "emulator"] if cli == "run" else ["--out", str(tmp_path / "v")]
    r = run_main(f"ember_neuro.{cli}", str(CKPT), "--mapped", str(mapped_dir), "-T", "8", *extra)
    assert r.returncode == 2 and "mapped with timesteps = 16, not 8" in r.stderr


def test_a_missing_or_foreign_mapping_is_refused(tmp_path: Path) -> None:
    r = run_main("ember_neuro.run", str(CKPT), "--backend", "emulator", "--mapped", str(tmp_path))
    assert r.returncode == 2 and "mapped network not found" in r.stderr
    (tmp_path / "mapped.npz").write_bytes(b"PK\x03\x04 not really")
    r = run_main("ember_neuro.run", str(CKPT), "--backend", "emulator", "--mapped", str(tmp_path))
    assert r.returncode == 2 and "truncated, corrupt or foreign" in r.stderr


@pytest.mark.lava
def test_validate_runs_the_saved_mapping(mapped_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "v"
    r = run_main("ember_neuro.validate", str(CKPT), "--mapped", str(mapped_dir), "--grid-only",
                "--json", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(r.stdout)
    assert (d["timesteps"], d["neurons_per_gate"]) == (16, 2) and d["passed"]
    assert json.loads((out / "report.json").read_text())["mapped"] == str(mapped_dir)
