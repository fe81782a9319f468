"""`python -m ember_neuro.bench --quick`: a smoke test on tiny sizes (timing itself is never asserted)."""

from __future__ import annotations

import json

import pytest

from .helpers import run_main

pytest.importorskip("lava")


@pytest.mark.lava
@pytest.mark.slow  # a minute of Lava runs: `make test-slow`
def test_bench_quick_writes_every_ratio(tmp_path):
    out = tmp_path / "bench"
    r = run_main("ember_neuro.bench", "--quick", "--json", "--out", str(out))
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    for key in ("emulator_gen_vs_float", "emulator_eval_vs_float", "lava_steps_vs_ceiling"):
        assert d["ratios"][key] > 0, key
    assert any(k.startswith("lava_batch") for k in d["ratios"])
    files = {p.name for p in out.iterdir()}
    assert {"results.json", "results.md", "width_scaling.png", "generation.png"} <= files
    assert "| ratio | measured | goal | met |" in (out / "results.md").read_text()
    assert 0 <= d["counts"]["activation_sparsity"] <= 1 and d["counts"]["synops_per_token"] > 0
    h = d["hard_spikes"]  # the shipped hard-spike model: it skips MLPs, and the host times all three forms
    assert 0 < h["mlp_skip_fraction"] < 1 and min(h["skip"], h["masked"], h["soft_baseline"]) > 0
    assert d["ratios"]["host_masked_vs_skip"] > 0 and "Hard spikes" in (out / "results.md").read_text()


def test_bench_only_hard_spikes(tmp_path):
    r = run_main("ember_neuro.bench", "--quick", "--only", "hard-spikes", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert set(d["ratios"]) == {"host_masked_vs_skip", "host_soft_baseline_vs_skip"}
    assert "generation" not in d and d["hard_spikes"]["flops_saved_fraction"] > 0


def test_bench_refuses_an_existing_output_folder(tmp_path):
    r = run_main("ember_neuro.bench", "--quick", "--out", str(tmp_path))
    assert r.returncode == 2 and "exists" in r.stderr and len(r.stderr.strip().splitlines()) == 1
