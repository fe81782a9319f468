"""Every gate-bearing variant end to end on the host side: hybrid evaluation and generation on the
emulator and on real Lava (the same spikes), map and validate, and each variant's bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ember_neuro.deploy.mapping import prepare
from ember_neuro.hybrid.paths import GatePaths
from ember_neuro.hybrid.session import Deployment, Evaluation, Generation, generate, run_hybrid
from ember_neuro.hybrid.torch_hook import TorchHook
from ember_neuro.mappers import MappingError, MappingOptions
from ember_neuro.models.checkpoint import load_checkpoint, save_checkpoint

from ..helpers import run_main

pytest.importorskip("lava")


def _eval(ckpt: Path, data: Path, backend: str, **kw) -> dict:
    return run_hybrid(Deployment(str(ckpt), backend=backend, timesteps=8, data=str(data), **kw),
                      ev=Evaluation(batches=1, batch_size=2), progress=False)


@pytest.mark.lava
@pytest.mark.parametrize(("variant", "extra"), [("lif-refractory", {}), ("cfc-lif", {}),
                                                ("temporal-lif", {"temporal": "rate"}),
                                                ("temporal-lif", {"temporal": "hard"}),
                                                ("temporal-lif-hard", {})])
def test_lava_and_the_emulator_give_the_same_model(tiny_ckpts, vocab_text, variant, extra) -> None:
    emu = _eval(tiny_ckpts[variant], vocab_text, "emulator", **extra)
    lava = _eval(tiny_ckpts[variant], vocab_text, "lava-sim", **extra)
    for key in ("val_loss_float", "val_loss_hybrid", "top1_agreement", "kl_float_hybrid"):
        assert emu[key] == lava[key], key  # the gate path is bit-exact, so the model is too
    assert lava["lava_steps"] > 0 and emu["variant"] == variant.removesuffix("-hard")
    if variant.startswith("temporal-lif"):  # the MLPs a silent membrane skipped, rate-coded or hard
        assert 0.0 <= lava["mlp_skip_fraction"] <= 1.0 and "flops_saved_fraction" in lava
        assert lava["mlp_skip_fraction"] == emu["mlp_skip_fraction"]
        assert lava["temporal"] == extra.get("temporal", "hard")  # a hard-spike model runs hard
        if variant == "temporal-lif-hard":  # its spikes skip MLPs, the same ones on both
            assert 0.0 < lava["mlp_skip_fraction"] < 1.0
    else:
        assert "mlp_skip_fraction" not in lava


@pytest.mark.parametrize("variant", ["lif-refractory", "cfc-lif", "temporal-lif"])
def test_generation_on_the_emulator(tiny_ckpts, vocab_text, variant) -> None:
    r = run_hybrid(Deployment(str(tiny_ckpts[variant]), backend="emulator", timesteps=8,
                              data=str(vocab_text)),
                   gen=Generation(prompts=("ROMEO",), tokens=12))
    assert len(r["text"]) == 12
    assert r["decode"] == ("whole" if variant == "lif-refractory" else "cache")


def test_cfc_state_decoding_equals_whole_sequence_with_spiking_gates(tiny_ckpts, vocab_text) -> None:
    ck = load_checkpoint(tiny_ckpts["cfc-lif"])
    net = prepare(ck, str(vocab_text)).map(MappingOptions(timesteps=16))
    hook = TorchHook(GatePaths(net, "emulator"))
    (a,), _ = generate(ck.model, ck.vocab, "ROMEO ", 10, hook, 0.0, 1, "cpu", decode_as="cache")
    (b,), _ = generate(ck.model, ck.vocab, "ROMEO ", 10, hook, 0.0, 1, "cpu", decode_as="whole")
    assert a == b  # greedy: the recurrent state carries exactly what the whole window recomputes


def test_refractory_refuses_kv_cache_decoding(tiny_ckpts) -> None:
    r = run_main("ember_neuro.run", str(tiny_ckpts["lif-refractory"]), "--backend", "float",
                "--decode", "cache", "--tokens", "3")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "column load" in r.stderr


def test_unknown_temporal_mode_is_one_line(tiny_ckpts) -> None:
    r = run_main("ember_neuro.run", str(tiny_ckpts["temporal-lif"]), "--backend", "emulator",
                "--temporal", "soft", "--tokens", "3")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--temporal mode 'soft'" in r.stderr


def test_a_cfc_whose_outputs_are_zero_cannot_be_calibrated(tiny_ckpts, vocab_text, tmp_path) -> None:
    ck = load_checkpoint(tiny_ckpts["cfc-lif"])
    with torch.no_grad():
        for layer in ck.model.layers:
            layer.cfc.fc.weight.zero_()
            layer.cfc.fc.bias.zero_()
    dead = tmp_path / "dead-cfc.pt"
    save_checkpoint(dead, ck.model, ck.config, 0, 3.0, ck.train_config)
    with pytest.raises(MappingError, match="cannot be calibrated"):
        prepare(str(dead), str(vocab_text)).map(MappingOptions(timesteps=8))
    r = run_main("ember_neuro.map", str(dead), "--target", "emulator", "--data", str(vocab_text))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "cannot be calibrated" in r.stderr


@pytest.mark.lava
@pytest.mark.parametrize("variant", ["lif-refractory", "cfc-lif", "temporal-lif"])
def test_map_every_variant_twin_bit_exact(tiny_ckpts, vocab_text, variant, tmp_path) -> None:
    r = run_main("ember_neuro.map", str(tiny_ckpts[variant]), "--target", "lava-sim", "-T", "8", "-N", "1",
                 "--levels", "uniform",
                "--data", str(vocab_text), "--json", "--out", str(tmp_path / "m"))
    assert r.returncode in (0, 1), r.stderr
    d = json.loads(r.stdout)
    assert d["emulator_bit_exact"] is True and all(d["bit_exact_by_group"].values())
    groups = {u["group"] for u in d["units"]}
    assert groups == {"lif-refractory": {"attention"}, "cfc-lif": {"hidden"},
                      "temporal-lif": {"attention", "membrane"}}[variant]
    assert d["max_exact_worst_case"] <= d["bound"] + 0.002
    assert all(u["max_abs_error"] <= u["fixed_worst_case_error"] + 1e-12 for u in d["units"])


@pytest.mark.lava
def test_validate_temporal_lif_every_group_and_the_hard_neuron(tiny_ckpts, vocab_text, tmp_path) -> None:
    r = run_main("ember_neuro.validate", str(tiny_ckpts["temporal-lif"]), "-T", "8", "-N", "1", "--levels",
                 "uniform", "--json",
                "--data", str(vocab_text), "--out", str(tmp_path / "v"))
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((tmp_path / "v" / "report.json").read_text())
    assert set(report["groups"]) == {"attention", "membrane", "membrane_hard"}
    for name in ("attention", "membrane"):
        g = report["groups"][name]
        assert g["agreement"]["lava-fixed/emulator-fixed"] == 1.0 and g["nir_roundtrip"]["norse"] == 1.0
    hard = report["groups"]["membrane_hard"]["pairs"]
    assert hard["lava-fixed/emulator-fixed"]["mismatches"] == 0
    assert hard["lava-float/snntorch"]["mismatches"] == 0 and hard["lava-float/norse"]["mismatches"] == 0
    assert (tmp_path / "v" / "membrane" / "error_vs_T.png").exists()
    assert "## Group `membrane`" in (tmp_path / "v" / "report.md").read_text()
