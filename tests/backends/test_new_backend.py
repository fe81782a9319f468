"""The extension point, proved: a backend defined only in the tests (tests/backends/stream_adapter.py,
a persistent runner stepping window by window) is one registry entry, and map, run and validate take
it up from the entry's fields -- map checks it against its twin, run keeps one runner per network
open for the whole evaluation and closes them, validate compares it with every other simulator."""

from __future__ import annotations

import json

import pytest

from ember_neuro.backends import registry

from ..helpers import run_main
from . import stream_adapter

ENTRY = registry.Backend("stream", True, "window-by-window runner (test-only adapter)",
                         "tests.backends.stream_adapter", "stream-fixed", hybrid=True, validation=6,
                         twin="emulator")


@pytest.fixture
def stream(monkeypatch):
    """The one line a new backend adds: its entry in BACKENDS."""
    monkeypatch.setitem(registry.BACKENDS, ENTRY.name, ENTRY)
    stream_adapter.OPENED.clear()
    yield ENTRY
    assert all(r.closed for r in stream_adapter.OPENED), "a runner was left open"


def test_map_checks_it_against_its_twin(stream, tiny_ckpts, vocab_text) -> None:
    r = run_main("ember_neuro.map", str(tiny_ckpts["temporal-lif"]), "--target", "stream", "-T", "8", "-N",
                 "1", "--levels", "uniform",
                 "--data", str(vocab_text), "--json")
    assert r.returncode == 0, r.stderr
    d = r.json()
    assert d["target"] == "stream" and d["emulator_bit_exact"] is True
    assert set(d["bit_exact_by_group"]) == {"attention", "membrane", "membrane_hard"}


def test_run_keeps_one_runner_per_network_and_matches_the_emulator(stream, tiny_ckpts, vocab_text) -> None:
    def evaluate(backend: str) -> dict:
        r = run_main("ember_neuro.run", str(tiny_ckpts["temporal-lif"]), "--backend", backend, "-T", "8",
                     "-N", "1", "--levels", "uniform",
                     "--temporal", "hard", "--eval", "--batches", "1", "--batch-size", "2",
                     "--data", str(vocab_text), "--json")
        assert r.returncode == 0, r.stderr
        return r.json()

    mine, emulator = evaluate("stream"), evaluate("emulator")
    assert mine["val_loss_hybrid"] == emulator["val_loss_hybrid"]
    assert mine["mlp_skip_fraction"] == emulator["mlp_skip_fraction"]
    # one network per gated layer of attention (the tiny preset has 2) and one for the hard membrane
    assert mine["lava_steps"] > 0 and len(stream_adapter.OPENED) == 2 + 1
    assert sum(r.windows for r in stream_adapter.OPENED) * 8 >= mine["lava_steps"]


@pytest.mark.lava
def test_validate_compares_it_with_every_simulator(stream, tiny_ckpts, vocab_text, tmp_path) -> None:
    r = run_main("ember_neuro.validate", str(tiny_ckpts["lif-learnable"]), "-T", "8", "-N", "1",
                 "--levels", "uniform", "--grid-only",
                 "--data", str(vocab_text), "--out", str(tmp_path / "v"), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((tmp_path / "v" / "report.json").read_text())
    group = report["groups"]["attention"]
    assert group["simulators"][-1] == "stream-fixed"
    assert group["agreement"]["lava-fixed/stream-fixed"] == 1.0
    report_md = (tmp_path / "v" / "report.md").read_text()
    assert "| emulator-fixed | snntorch | norse | stream-fixed |" in report_md  # its column, per unit
