"""The paper's configuration (6 layers x 6 heads x 384, block 256, 10.65 M parameters) through every
command: map, run (evaluation and lava-sim generation), validate, export inrc and verify.py.

Random weights and strong gates (ember_neuro/models/synthetic.py), built in the fixture: the sizes,
not what the weights learned, are what these runs check.  Long (minutes): `make test-slow`.  Times
and memory peaks are the bench's (`python -m ember_neuro.bench --only paper`), not asserted here.
"""

from __future__ import annotations

import json

import pytest

from ..helpers import run_main, run_script

pytestmark = [pytest.mark.slow, pytest.mark.lava]


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    from ember_neuro.models.synthetic import save_paper_checkpoint

    return str(save_paper_checkpoint(tmp_path_factory.mktemp("paper") / "paper.pt"))


@pytest.fixture(scope="module")
def chosen(paper, tmp_path_factory) -> dict:
    """The design card's bare command at the paper's size: the window search, then the mapping."""
    out = tmp_path_factory.mktemp("paper-map") / "m"
    r = run_main("ember_neuro.map", paper, "--target", "lava-sim", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    return {**json.loads(r.stdout), "dir": str(out)}


def test_the_paper_model_has_the_papers_size(paper) -> None:
    from ember_neuro.models.build import param_counts
    from ember_neuro.models.checkpoint import load_checkpoint

    counts = param_counts(load_checkpoint(paper).model)
    assert counts["total"] == 10_654_188 and counts["gate"] == 108


def test_the_default_window_is_faithful_within_one_chip(chosen) -> None:
    choice = chosen["window_choice"]
    assert choice["measured"]["top1"] >= 0.998 and abs(choice["measured"]["rel_delta"]) <= 0.001
    assert choice["neurons"] <= 1_048_576 and chosen["emulator_bit_exact"] is True
    assert all(u["within"] for u in chosen["units"])


def test_map_at_t8_n32(paper) -> None:
    r = run_main("ember_neuro.map", paper, "--target", "lava-sim", "-T", "8", "-N", "32", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    d = json.loads(r.stdout)
    assert d["emulator_bit_exact"] is True and d["levels"] == "auto" and "window_choice" not in d


def test_run_evaluates_and_lava_generates_what_the_emulator_generates(paper, chosen) -> None:
    r = run_main("ember_neuro.run", paper, "--mapped", chosen["dir"], "--backend", "emulator", "--eval",
                 "--batches", "1", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout)["top1_agreement"] >= 0.99
    args = ("--mapped", chosen["dir"], "--tokens", "6", "--greedy", "--prompt", "ROMEO:", "--prompt", "O",
            "--json")
    lava = run_main("ember_neuro.run", paper, "--backend", "lava-sim", *args)
    assert lava.returncode == 0, lava.stderr[-3000:]
    emulator = run_main("ember_neuro.run", paper, "--backend", "emulator", *args)
    assert json.loads(lava.stdout)["texts"] == json.loads(emulator.stdout)["texts"]


def test_validate_passes(paper, chosen, tmp_path) -> None:
    r = run_main("ember_neuro.validate", paper, "--mapped", chosen["dir"], "--out", str(tmp_path / "v"),
                 "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout)["passed"] is True


def test_the_bundle_verifies_bit_exactly_without_torch(paper, chosen, tmp_path) -> None:
    out = tmp_path / "bundle"
    r = run_main("ember_neuro.export", "inrc", paper, "--out", str(out), "--no-report", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    d = json.loads(r.stdout)
    assert (d["timesteps"], d["neurons_per_gate"]) == (chosen["timesteps"], chosen["neurons_per_gate"])
    v = run_script(out, "verify.py", "--json")
    assert v.returncode == 0, v.stderr[-3000:]
    assert json.loads(v.stdout)["exact"] is True
