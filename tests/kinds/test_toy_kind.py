"""The extension point, proved: a gate kind defined only here -- a per-channel LIF gate on each
layer's MLP output -- goes through train, inspect, map, run --eval, validate and export inrc (whose
bundle verifies and generates without torch) with no change to any package module.

Everything the kind needs is in this file: its torch module (where it sits, its parameters, the host's
part around the neurons), its checkpoint keys and records, its mapper (the package's dithered
sigmoid gate on a calibrated |mlp(x)| scale), its calibration, its inspect summary; and one
registry line for the variant that uses it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from ember_neuro import gates
from ember_neuro.kinds import attention, registry
from ember_neuro.kinds.spec import GateKind, Variant
from ember_neuro.mappers import Addressing, MappingOptions, NeuronGroup
from ember_neuro.mappers.gate import layer_scales, map_gates, scaled_inputs
from ember_neuro.mappers.params import gate_units, unit_records
from ember_neuro.models.hooks import GateModule

from ..helpers import run_main, run_script

HOOK = "mlp_out"
PREFIX = "transformer.h.{layer}.mlp_gate."


class MlpOutGate(GateModule):
    """fire = sigmoid(k (|m| - theta)) per channel of m = mlp(x); the update is m (leak + (1 - leak) fire)."""

    UNIT_PARAMS = ("threshold", "leak", "steepness")

    def __init__(self, cfg, layer: int):
        super().__init__(layer)
        self.threshold = nn.Parameter(torch.zeros(cfg.n_embd))
        self.leak = nn.Parameter(torch.zeros(cfg.n_embd))
        self.steepness = nn.Parameter(torch.zeros(cfg.n_embd))

    def fire(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return gates.fire_curve(inputs["input"], self.threshold, gates.steepness_of(self.steepness))

    def forward(self, x, attn_out, mlp, hook, carry=None):
        m = mlp(x)
        return gates.apply_fire(m, hook(self, {"input": m}), gates.leak_of(self.leak)), carry


def records(params, n_layer: int) -> list[dict]:
    return unit_records(params, PREFIX, n_layer)


def map_mlp_out(params, n_layer: int, options: MappingOptions, calibration: dict | None) -> dict[str,
                                                                                                 NeuronGroup]:
    scales = layer_scales(calibration, "mlp_out_scale", n_layer, "the MLP-output gate")
    units = gate_units(records(params, n_layer), tag="C")
    scale = np.array([scales[u.layer] for u in units])
    return {HOOK: map_gates(units, options, name=HOOK, inputs=scaled_inputs(units, scale),
                            addressing=Addressing(hook=HOOK, unit_axis=-1, label="|mlp(x)|"))}


def calibrate(scales) -> dict:
    return {"mlp_out_scale": [scales[layer]["input"] for layer in sorted(scales)]}


TOY = GateKind(name=HOOK, site="mlp", attr="mlp_gate", module=MlpOutGate, records=records, map=map_mlp_out,
               calibrate=calibrate, swing_range="observed", unit_tag="C")
VARIANT = Variant("toy-mlp-gate", "transformer", (attention.KIND, TOY))


@pytest.fixture(scope="module")
def toy(tmp_path_factory, vocab_text) -> Path:
    """The variant registered (one line), and a trained tiny checkpoint whose MLP gates switch."""
    registry.register(VARIANT)
    try:
        out = tmp_path_factory.mktemp("toy") / "toy.pt"
        r = run_main("ember_neuro.train", "--variant", VARIANT.name, "--preset", "tiny", "--iters", "30",
                     "--data", str(vocab_text), "--quiet", "--out", str(out))
        assert r.returncode == 0, r.stderr
        raw = torch.load(out, weights_only=True)
        gen = torch.Generator().manual_seed(0)
        for layer in range(raw["model_args"]["n_layer"]):  # selective gates: thresholds inside |m|'s range
            key = PREFIX.format(layer=layer)
            raw["model"][key + "threshold"] = torch.rand(32, generator=gen) * 0.4
            raw["model"][key + "steepness"] = torch.full((32,), 6.0) + torch.rand(32, generator=gen) * 10
            raw["model"][key + "leak"] = torch.full((32,), -2.0)
        torch.save(raw, out)
        yield out
    finally:
        registry.VARIANTS.pop(VARIANT.name, None)


def test_inspect_shows_the_kinds_units(toy, vocab_text) -> None:
    d = run_main("ember_neuro.inspect", str(toy), "--json", "--data", str(vocab_text)).json()
    kinds = {g["kind"] for g in d["gates"]}
    assert kinds == {"attention", HOOK} and sum(g["kind"] == HOOK for g in d["gates"]) == 2 * 32
    assert d["swing"]["strong"] > 0  # the MLP gates switch over their observed |m| range


@pytest.mark.lava
def test_map_measures_every_group_and_lava_equals_the_emulator(toy, vocab_text, tmp_path) -> None:
    r = run_main("ember_neuro.map", str(toy), "--target", "lava-sim", "-T", "8", "-N", "1", "--levels",
                 "uniform", "--data", str(vocab_text),
                 "--json", "--out", str(tmp_path / "m"))
    assert r.returncode == 0, r.stderr
    d = r.json()
    assert {u["group"] for u in d["units"]} == {"attention", HOOK}
    assert d["bit_exact_by_group"] == {"attention": True, HOOK: True}
    assert d["max_exact_worst_case"] <= d["bound"] + 0.002
    assert (tmp_path / "m" / f"transfer_{HOOK}_L0.png").exists()


@pytest.mark.lava
def test_run_eval_spikes_on_lava_as_on_the_emulator(toy, vocab_text) -> None:
    args = ("--eval", "--batches", "1", "--batch-size", "2", "-T", "8", "-N", "4", "--data", str(vocab_text),
            "--json")
    emu = run_main("ember_neuro.run", str(toy), "--backend", "emulator", *args).json()
    lava = run_main("ember_neuro.run", str(toy), "--backend", "lava-sim", *args).json()
    for key in ("val_loss_hybrid", "top1_agreement", "kl_float_hybrid"):
        assert emu[key] == lava[key]
    assert set(emu["spike_stats"]) == {"attention/0", "attention/1", f"{HOOK}/0", f"{HOOK}/1"}
    assert 0.0 < emu["spike_stats"][f"{HOOK}/0"]["firing"] < emu["spike_stats"][f"{HOOK}/0"]["gates"]
    assert emu["top1_agreement"] > 0.9


@pytest.mark.lava
def test_validate_passes_every_group(toy, vocab_text, tmp_path) -> None:
    r = run_main("ember_neuro.validate", str(toy), "-T", "8", "-N", "1", "--levels", "uniform", "--data",
                 str(vocab_text), "--json",
                 "--out", str(tmp_path / "v"))
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((tmp_path / "v" / "report.json").read_text())
    assert set(report["groups"]) == {"attention", HOOK} and report["passed"]
    assert report["groups"][HOOK]["agreement"]["lava-fixed/emulator-fixed"] == 1.0
    assert (tmp_path / "v" / HOOK / "error_vs_T.png").exists()


@pytest.mark.lava
def test_the_bundle_verifies_and_generates_without_the_kinds_code(toy, vocab_text, tmp_path) -> None:
    """The bundle holds no gate-kind code: the mapped groups' addressing and the ONNX stages suffice."""
    out = tmp_path / "b"
    r = run_main("ember_neuro.export", "inrc", str(toy), "--out", str(out), "-T", "8", "-N", "1",
                 "--levels", "uniform", "--data",
                 str(vocab_text),
                 "--no-report", "--tokens", "4", "--json")
    assert r.returncode == 0, r.stderr
    assert {name.split("/")[0] for name in r.json()["golden_windows"]} == {"attention", HOOK}
    v = run_script(out, "verify.py", "--json")
    assert v.returncode == 0 and json.loads(v.stdout)["exact"], v.stderr
    g = run_script(out, "generate.py", "--prompt", "ROMEO", "--tokens", "6", "--greedy", "--json")
    assert g.returncode == 0, g.stderr
    package = run_main("ember_neuro.run", str(toy), "--backend", "lava-sim", "-T", "8", "-N", "1",
                       "--levels", "uniform", "--data",
                       str(vocab_text),
                       "--prompt", "ROMEO", "--tokens", "6", "--greedy", "--json").json()
    assert json.loads(g.stdout)["text"] == package["text"]
