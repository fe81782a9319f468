"""Checkpoint round-trip and every bad input (one-line error, non-zero exit)."""

import math
from pathlib import Path

import pytest
import torch

from ember_neuro.models.build import build_model
from ember_neuro.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ember_neuro.models.config import config_for

from ..conftest import VOCAB
from ..helpers import run_main


def test_round_trip(tmp_path):
    torch.manual_seed(3)
    cfg = config_for("lif-refractory", "tiny", vocab_size=len(VOCAB))
    model = build_model(cfg)
    with torch.no_grad():
        model.transformer.h[1].attn.gate.threshold.fill_(0.42)
    path = tmp_path / "ck.pt"
    save_checkpoint(path, model, cfg, 17, 1.234, {"vocab": VOCAB, "seed": 1})
    ck = load_checkpoint(path)
    assert ck.config == cfg and ck.iter_num == 17 and ck.best_val_loss == pytest.approx(1.234)
    assert ck.vocab == VOCAB and len(ck.sha256) == 64
    for (n1, a), (n2, b) in zip(model.state_dict().items(), ck.model.state_dict().items(), strict=True):
        assert n1 == n2 and torch.equal(a, b)
    assert not list(tmp_path.glob("*.tmp"))  # atomic write left nothing behind


def _raw(path):
    return torch.load(path, weights_only=True)


def _expect_error(path, fragment):
    with pytest.raises(CheckpointError, match=fragment) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path):
    _expect_error(tmp_path / "nope.pt", "not found")


def test_truncated_file(tmp_path, tiny_ckpts):
    data = Path(tiny_ckpts["lif-learnable"]).read_bytes()
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(data[: len(data) // 2])
    _expect_error(bad, "not a readable checkpoint")


def test_non_checkpoint_files(tmp_path):
    txt = tmp_path / "notes.pt"
    txt.write_text("hello, I am not a checkpoint")
    _expect_error(txt, "not a readable checkpoint")
    lst = tmp_path / "list.pt"
    torch.save([1, 2, 3], lst)
    _expect_error(lst, "not a checkpoint dict")
    nokeys = tmp_path / "nokeys.pt"
    torch.save({"weights": torch.zeros(2)}, nokeys)
    _expect_error(nokeys, "lacks required key")


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/ember_neuro_pwned"),))


def test_pickled_code_is_never_executed(tmp_path):
    marker = Path("/tmp/ember_neuro_pwned")
    marker.unlink(missing_ok=True)
    bad = tmp_path / "evil.pt"
    torch.save({"model": {}, "model_args": {"variant": "lif-learnable"}, "x": _Evil()}, bad)
    _expect_error(bad, "not a readable checkpoint")
    assert not marker.exists()


def _drop_steepness(raw):
    del raw["model"]["transformer.h.0.attn.gate.steepness"]


def _misshape_threshold(raw):
    raw["model"]["transformer.h.1.attn.gate.threshold"] = torch.zeros(5)


def _rename_variant(raw):
    raw["model_args"]["variant"] = "lif-quantum"


def _drop_variant(raw):
    del raw["model_args"]["variant"]


@pytest.mark.parametrize(("variant", "mutate", "fragment"), [
    ("lif-learnable", _drop_steepness, "does not match variant 'lif-learnable'.*missing 1 keys"),
    ("lif-learnable", _misshape_threshold, r"gate.threshold has shape \(5,\), expected \(2,\)"),
    ("lif-learnable", _rename_variant, "unknown variant 'lif-quantum'"),
    ("standard", _drop_variant, "no 'variant'"),  # plain nanoGPT args
])
def test_a_mismatched_checkpoint_is_refused_in_one_line(tmp_path, tiny_ckpts, variant, mutate, fragment):
    raw = _raw(tiny_ckpts[variant])
    mutate(raw)
    bad = tmp_path / "bad.pt"
    torch.save(raw, bad)
    _expect_error(bad, fragment)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_nonfinite_gate_params(tmp_path, tiny_ckpts, value):
    raw = _raw(tiny_ckpts["lif-learnable"])
    raw["model"]["transformer.h.0.attn.gate.leak"][1] = value
    bad = tmp_path / "nan.pt"
    torch.save(raw, bad)
    _expect_error(bad, "contains NaN or Inf")


def test_inspect_cli_bad_input_exits_nonzero(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("garbage")
    r = run_main("ember_neuro.inspect", str(bad))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "not a readable checkpoint" in r.stderr
