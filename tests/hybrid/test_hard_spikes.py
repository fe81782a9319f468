"""Hard spikes that save compute: a temporal-lif model trained with the chip's 0/1 membrane spike.

What is checked: the training neuron is the chip's (one shared leak at its 12-bit decay, one
threshold, snnTorch's surrogate gradient), a silent token's MLP is not computed -- in PyTorch and
in the exported ONNX graphs, counted by the rows the MLP's first matmul receives -- decoding with
the KV cache gives what whole windows give, and the bad inputs of the issue end in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ember_neuro.gates import sigmoid
from ember_neuro.hybrid.paths import GatePaths
from ember_neuro.hybrid.session import generate
from ember_neuro.hybrid.torch_hook import TorchHook
from ember_neuro.mappers import MappingOptions, loihi
from ember_neuro.models.checkpoint import load_checkpoint
from ember_neuro.models.hooks import gate_modules

from ..helpers import run_main


def _membranes(model) -> list:
    return [m for _, m in gate_modules(model) if m.hook == "membrane"]


def _spiking(model, x: torch.Tensor) -> tuple[list[int], list[int]]:
    """Per layer: the tokens whose membrane spiked, and the rows the MLP's first matmul received."""
    spikes, rows = [], []

    def record(gate, inputs):
        fire = gate.fire(inputs)
        if gate.hook == "membrane":
            spikes.append(int((fire != 0).sum()))
        return fire

    handles = [b.mlp.c_fc.register_forward_pre_hook(lambda mod, args: rows.append(args[0][..., 0].numel()))
               for b in model.transformer.h]
    try:
        with torch.no_grad():
            model(x, hook=record)
    finally:
        for h in handles:
            h.remove()
    return spikes, rows


def test_the_training_neuron_is_the_chips(tiny_ckpts) -> None:
    model = load_checkpoint(tiny_ckpts["temporal-lif-hard"]).model
    gates = _membranes(model)
    assert len(gates) == model.config.n_layer > 1
    assert all(g.threshold is gates[0].threshold and g.decay is gates[0].decay for g in gates)
    lam = float(gates[0].leak().detach())
    assert lam == loihi.kept_fraction(loihi.decay_constant(float(sigmoid(float(gates[0].decay.detach())))))
    v = torch.linspace(0.0, 2.0, 41, requires_grad=True)
    fire = gates[0].fire({"input": v})
    assert set(fire.tolist()) == {0.0, 1.0}  # a 0/1 spike forward ...
    fire.sum().backward()
    assert float(v.grad.abs().sum()) > 0  # ... and a surrogate gradient backward


def test_a_silent_token_does_not_compute_its_mlp(tiny_ckpts) -> None:
    model = load_checkpoint(tiny_ckpts["temporal-lif-hard"]).model
    x = torch.randint(0, model.config.vocab_size, (3, model.config.block_size))
    spikes, rows = _spiking(model, x)
    total = x.numel()
    assert rows == spikes  # each layer's MLP ran on exactly the tokens that spiked
    assert 0 < sum(spikes) < total * model.config.n_layer  # some skip, some do not
    # the same numbers as computing every MLP and masking it
    model.train()
    with torch.no_grad():
        masked, _ = model(x)
    model.eval()
    with torch.no_grad():
        skipped, _ = model(x)
    assert torch.allclose(masked, skipped, atol=1e-5)


def test_the_onnx_host_graphs_skip_silent_tokens(tiny_ckpts, vocab_text, tmp_path) -> None:
    """onnxruntime's profile of the exported stages: the MLP's first MatMul gets one row per spike."""
    ort = pytest.importorskip("onnxruntime")
    from ember_neuro.export.onnx import TorchGates, export_onnx
    from ember_neuro.hybrid.onnx_host import OnnxHost

    ckpt = tiny_ckpts["temporal-lif-hard"]
    r = export_onnx(str(ckpt), str(tmp_path / "onnx"), data=str(vocab_text))
    assert r["max_abs_logit_diff"] <= 1e-4, r
    model = load_checkpoint(ckpt).model
    host = OnnxHost(tmp_path / "onnx", TorchGates(model))
    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = str(tmp_path / "prof")
    host.sessions = {name: ort.InferenceSession(str(tmp_path / "onnx" / name), opts,
                                                providers=["CPUExecutionProvider"]) for name in host.sessions}
    x = torch.randint(0, model.config.vocab_size, (2, model.config.block_size))
    host.forward(x.numpy(), None)
    spikes, _ = _spiking(model, x)
    rows = []
    for name in sorted(host.sessions, key=lambda n: int(n[5:-5])):
        events = json.loads(Path(host.sessions[name].end_profiling()).read_text())
        for e in events:
            name_ = e["name"]
            if e.get("cat") == "Node" and "mlp/c_fc/MatMul" in name_ and name_.endswith("kernel_time"):
                rows.append(e["args"]["input_type_shape"][0]["float"][0])
    assert rows == spikes and sum(spikes) < x.numel() * model.config.n_layer


def test_kv_cache_decoding_stays_causal_with_hard_spikes(tiny_ckpts, vocab_text) -> None:
    from ember_neuro.deploy.mapping import prepare

    ck = load_checkpoint(tiny_ckpts["temporal-lif-hard"])
    net = prepare(ck, str(vocab_text)).map(MappingOptions(timesteps=8))
    hook = TorchHook(GatePaths(net, "emulator", mode="hard"))
    (a,), _ = generate(ck.model, ck.vocab, "ROMEO ", 10, hook, 0.0, 1, "cpu", decode_as="cache")
    (b,), _ = generate(ck.model, ck.vocab, "ROMEO ", 10, hook, 0.0, 1, "cpu", decode_as="whole")
    assert a == b


def test_a_hard_checkpoint_runs_hard_by_default_and_refuses_rate(tiny_ckpts, vocab_text) -> None:
    ckpt = str(tiny_ckpts["temporal-lif-hard"])
    r = run_main("ember_neuro.run", ckpt, "--backend", "emulator", "-T", "8", "-N", "1", "--levels",
                 "uniform", "--eval", "--batches", "1",
                 "--batch-size", "2", "--data", str(vocab_text), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["temporal"] == "hard" and 0 < d["mlp_skip_fraction"] < 1
    r = run_main("ember_neuro.run", ckpt, "--backend", "emulator", "--temporal", "rate", "--tokens", "2")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "trained with hard spikes" in r.stderr


def test_temporal_hard_on_a_checkpoint_without_a_membrane(tiny_ckpts) -> None:
    r = run_main("ember_neuro.run", str(tiny_ckpts["lif-learnable"]), "--backend", "emulator",
                 "--temporal", "hard", "--tokens", "2")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "temporal-lif" in r.stderr


@pytest.mark.parametrize(("args", "needle"), [
    (("--spike", "hard", "--skip-target", "1.0"), "--skip-target must be in (0, 1)"),
    (("--spike", "hard", "--skip-target", "0"), "--skip-target must be in (0, 1)"),
    (("--spike", "hard", "--variant", "lif-learnable"), "needs a gate kind with a hard spike"),
    (("--spike", "hard", "--surrogate-slope", "0"), "--surrogate-slope must be a positive number"),
])
def test_train_refusals(args, needle, tmp_path, text_file) -> None:
    r = run_main("ember_neuro.train", "--preset", "tiny", "--iters", "1", "--data", str(text_file),
                 "--out", str(tmp_path / "x.pt"), *args)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and needle in r.stderr, r.stderr
    assert not (tmp_path / "x.pt").exists()


def test_a_fine_tune_keeps_its_variant(tiny_ckpts, tmp_path, text_file) -> None:
    r = run_main("ember_neuro.train", "--variant", "temporal-lif", "--init-from",
                 str(tiny_ckpts["lif-learnable"]), "--spike", "hard", "--iters", "1",
                 "--data", str(text_file), "--out", str(tmp_path / "x.pt"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "keeps its variant" in r.stderr


def test_a_hard_fine_tune_reaches_its_skip_target(tiny_ckpts, tmp_path, vocab_text) -> None:
    """A short fine-tune of the tiny soft model with hard spikes: the compute term moves the skip up."""
    out = tmp_path / "hard.pt"
    r = run_main("ember_neuro.train", "--init-from", str(tiny_ckpts["temporal-lif"]), "--spike", "hard",
                 "--skip-target", "0.6", "--skip-weight", "20", "--iters", "60", "--data", str(vocab_text),
                 "--out", str(out), "--quiet", "--json")
    assert r.returncode == 0, r.stderr
    ck = load_checkpoint(out)
    assert ck.config.spike == "hard" and ck.train_config["skip_target"] == 0.6
    x = torch.tensor(np.random.default_rng(0).integers(0, ck.config.vocab_size, (4, ck.config.block_size)))
    spikes, _ = _spiking(ck.model, x)
    assert sum(spikes) / (x.numel() * ck.config.n_layer) < 0.6  # fewer than 1 - 0.4 fire
