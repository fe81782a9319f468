"""The strong-gate training option (train --gate-lr-mult) and the swing measure (deploy/swing.py)."""

import json
import math

import pytest
import torch

from ember_neuro.deploy import swing
from ember_neuro.models.build import build_model
from ember_neuro.models.config import config_for
from ember_neuro.models.data import load_data
from ember_neuro.train import lif_gate_parameters, make_optimizer

from ..helpers import run_main


def _sig(z):
    return 1.0 / (1.0 + math.exp(-z))


def swing_of(theta: float, leak: float, k: float, lo: float, hi: float) -> float:
    """(1 - leak)(fire(hi) - fire(lo)), fire(x) = sigmoid(k (x - theta)): the definition, by hand."""
    return (1.0 - leak) * (_sig(k * (hi - theta)) - _sig(k * (lo - theta)))


def test_swing_formula():
    # identity-like init: theta 0, leak sigmoid(1), k ln 2 -> small swing
    s = swing_of(0.0, _sig(1.0), math.log(2.0), 0.0, 1.0)
    assert s == pytest.approx((1 - _sig(1.0)) * (_sig(math.log(2.0)) - 0.5))
    assert s < 0.05
    # a strong head like the notes' L0H3 (theta 1.14, k 2.82, leak 0.27)
    s = swing_of(1.14, 0.27, 2.82, 0.0, 1.0)
    assert s == pytest.approx(0.73 * (_sig(2.82 * -0.14) - _sig(2.82 * -1.14)))
    # lif-fixed (theta 1): fire(1) - fire(0) = 0.5 - sigmoid(-k) < 0.5
    assert swing_of(1.0, 0.0, 50.0, 0.0, 1.0) == pytest.approx(0.5)


@pytest.mark.parametrize("variant", ["lif-learnable", "lif-fixed", "lif-refractory",
                                     "temporal-lif"])
def test_attention_units_are_heads(variant):
    torch.manual_seed(0)
    model = build_model(config_for(variant, "tiny", vocab_size=40))
    units = swing.unit_swings(model)
    assert len(units) == 4  # 2 layers x 2 heads
    for u in units:
        assert (u["lo"], u["hi"]) == (0.0, 1.0)
        assert u["swing"] == pytest.approx(
            swing_of(u["theta"], u["leak"], u["k"], 0.0, 1.0))
    summary = swing.summarise(units)
    assert summary["strong"] == 0 and summary["units"] == 4


def test_cfc_units_use_observed_hidden_range(text_file):
    torch.manual_seed(0)
    data = load_data(text_file)
    model = build_model(config_for("cfc-lif", "tiny", vocab_size=data.vocab_size))
    ranges = swing.observed_ranges(model, "hidden", data, n_batches=2, batch_size=2)
    assert sorted(ranges) == [0, 1]
    for lo, hi in ranges.values():
        assert 0.0 <= lo < hi
    units = swing.unit_swings(model, data, n_batches=2, batch_size=2)
    assert len(units) == 2 * 16  # 2 layers x 16 neurons
    assert all((u["lo"], u["hi"]) == ranges[u["layer"]] for u in units)
    with pytest.raises(ValueError, match="validation data"):
        swing.unit_swings(model)


def test_optimizer_groups():
    model = build_model(config_for("lif-refractory", "tiny", vocab_size=40))
    default = make_optimizer(model, 1e-3)
    assert len(default.param_groups) == 1 and default.param_groups[0]["weight_decay"] == 0.1
    names = {id(p): n for n, p in model.named_parameters()}
    opt = make_optimizer(model, 1e-3, gate_lr_mult=50.0)  # default scope: "unit"
    rest, gate = opt.param_groups
    assert {names[id(p)].rsplit(".", 1)[-1] for p in gate["params"]} == {
        "threshold", "leak", "steepness"}
    assert len(gate["params"]) == 3 * 2  # threshold, leak, steepness x 2 layers
    assert gate["lr_mult"] == 50.0 and gate["weight_decay"] == 0.0
    assert rest["lr_mult"] == 1.0 and rest["weight_decay"] == 0.1
    opt = make_optimizer(model, 1e-3, gate_lr_mult=50.0, gate_group="all")
    assert {names[id(p)].rsplit(".", 1)[-1] for p in opt.param_groups[1]["params"]} == {
        "threshold", "leak", "steepness", "ref_strength", "cross_layer_weight"}
    # qwen-gate's dense matrix is an ordinary weight, not an LIF gate
    qwen = build_model(config_for("qwen-gate", "tiny", vocab_size=40))
    assert not lif_gate_parameters(qwen, "all") and not lif_gate_parameters(qwen, "unit")
    temporal = build_model(config_for("temporal-lif", "tiny", vocab_size=40))
    membrane = {n.rsplit(".", 1)[-1] for n in lif_gate_parameters(temporal, "all")}
    assert membrane >= {"decay", "threshold", "steepness"}
    assert not [n for n in lif_gate_parameters(temporal, "unit") if n.endswith("decay")]
    cfc = build_model(config_for("cfc-lif", "tiny", vocab_size=40))
    assert "layers.1.gate.leak" in lif_gate_parameters(cfc, "unit")


def test_train_records_gate_options(tmp_path, text_file):
    out = tmp_path / "strong.pt"
    r = run_main("ember_neuro.train", "--variant", "lif-learnable", "--preset", "tiny",
                "--data", str(text_file), "--quiet", "--gate-lr-mult", "30", "--out", str(out))
    assert r.returncode == 0, r.stderr
    cfg = torch.load(out, weights_only=True)["config"]
    assert cfg["gate_lr_mult"] == 30.0 and cfg["gate_weight_decay"] == 0.0
    assert cfg["threads"] == 1 and "--gate-lr-mult 30" in cfg["command"]
    assert cfg["gate_group"] == "unit" and cfg["gate_init"] == "identity"
    r = run_main("ember_neuro.swing", str(out), "--json", "--data", str(text_file))
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["units"] == 4 and 0.0 <= d["strong_fraction"] <= 1.0
    assert d["train_config"]["gate_lr_mult"] == 30.0
    r = run_main("ember_neuro.train", "--preset", "tiny", "--gate-lr-mult", "0",
                "--out", str(tmp_path / "x.pt"))
    assert r.returncode == 2 and "--gate-lr-mult" in r.stderr


@pytest.mark.parametrize("variant", ["lif-learnable", "lif-fixed", "cfc-lif"])
def test_spread_init_starts_selective(variant):
    from ember_neuro.train import SPREAD_K, SPREAD_LEAK, SPREAD_THETA, spread_gate_init

    torch.manual_seed(0)
    model = build_model(config_for(variant, "tiny", vocab_size=40))
    before = {n: p.clone() for n, p in model.named_parameters()}
    spread_gate_init(model, seed=3)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.endswith(("threshold", "leak", "steepness")) for n in changed)
    for u in swing.unit_swings(model, data=None) if variant != "cfc-lif" else []:
        assert u["leak"] == pytest.approx(SPREAD_LEAK)
        assert SPREAD_K[0] <= u["k"] <= SPREAD_K[1]
        if variant == "lif-fixed":
            assert u["theta"] == 1.0  # the fixed threshold is a buffer, untouched
        else:
            assert SPREAD_THETA[0] <= u["theta"] <= SPREAD_THETA[1]
            assert u["swing"] >= 0.25


@pytest.mark.parametrize("variant", ["lif-learnable", "cfc-lif"])
def test_inspect_json_reports_per_unit_swing(tiny_ckpts, vocab_text, variant):
    r = run_main("ember_neuro.inspect", str(tiny_ckpts[variant]), "--json", "--data", str(vocab_text))
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["gates"] and all(0.0 <= g["swing"] <= 1.0 for g in d["gates"])
    g = d["gates"][0]
    lo, hi = g.get("swing_range", (0.0, 1.0))
    assert g["swing"] == pytest.approx(swing_of(g["theta"], g["leak"], g["k"], lo, hi))
    assert d["swing"]["units"] == len(d["gates"])
    assert d["swing"]["strong"] == sum(x["swing"] >= 0.25 for x in d["gates"])
