"""Data loading, the training command and the inspect command, end to end (tiny preset)."""

import json

import pytest
import torch

from ember_neuro.models.data import DataError, load_data

from ..helpers import run_main


def test_local_text_split_is_deterministic(text_file):
    a, b = load_data(text_file), load_data(text_file)
    assert a.vocab == b.vocab and torch.equal(a.val, b.val)
    n = len(a.train) + len(a.val)
    assert len(a.train) == int(0.9 * n)
    assert a.decode(a.encode("ROMEO")) == "ROMEO"
    with pytest.raises(ValueError, match="not in the model's vocabulary"):
        a.encode("ROMEO~")


def test_missing_and_unreadable_data(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_data(tmp_path / "nope.txt")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"caf\xe9 " * 100)
    with pytest.raises(DataError, match="UTF-8"):
        load_data(bad)


def test_train_tiny_then_inspect(tmp_path, text_file):
    out = tmp_path / "tiny.pt"
    r = run_main("ember_neuro.train", "--variant", "lif-learnable", "--preset", "tiny",
                "--seed", "1", "--data", str(text_file), "--quiet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.exists()
    r = run_main("ember_neuro.inspect", str(out), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["variant"] == "lif-learnable" and d["n_layer"] == 2 and d["n_head"] == 2
    assert d["gate_param_count"] == 12 and d["val_loss"] < 4.5
    assert len(d["gates"]) == 4
    assert set(d["gates"][0]) >= {"layer", "head", "theta", "leak", "k"}
    r = run_main("ember_neuro.inspect", str(out))
    assert "L1H1" in r.stdout and "val loss" in r.stdout


def test_train_missing_data_is_clear(tmp_path):
    r = run_main("ember_neuro.train", "--preset", "tiny", "--data", str(tmp_path / "x.txt"),
                "--out", str(tmp_path / "o.pt"))
    assert r.returncode == 2 and "data file not found" in r.stderr
    assert not (tmp_path / "o.pt").exists()


def test_inspect_untrained_preset_json():
    r = run_main("ember_neuro.inspect", "--preset", "paper", "--variant", "temporal-lif",
                "--json")
    d = json.loads(r.stdout)
    assert d["gate_param_count"] == 126 and len(d["temporal"]) == 6 and d["val_loss"] is None


def test_train_cuda_without_cuda_is_clear(tmp_path, text_file):
    if torch.cuda.is_available():
        pytest.skip("machine has CUDA")
    r = run_main("ember_neuro.train", "--preset", "tiny", "--data", str(text_file),
                "--device", "cuda", "--out", str(tmp_path / "o.pt"))
    assert r.returncode != 0 and "CUDA is not available" in r.stderr


def test_val_sequential_covers_the_split_once(text_file):
    d = load_data(text_file)
    batches = d.val_sequential(batch_size=3, block_size=16)
    xs = torch.cat([x for x, _ in batches])
    ys = torch.cat([y for _, y in batches])
    n = (len(d.val) - 1) // 16
    assert xs.shape == (n, 16)
    assert torch.equal(xs.reshape(-1), d.val[:n * 16])
    assert torch.equal(ys.reshape(-1), d.val[1:n * 16 + 1])
