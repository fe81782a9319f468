"""Hybrid inference: the hook reproduces the float model, whole-sequence equals incremental, the
gate paths on the emulator and on real Lava give the same fire, the run CLI and its bad inputs."""

import multiprocessing as mp

import numpy as np
import pytest
import torch

from ember_neuro.hybrid.paths import GatePaths
from ember_neuro.hybrid.session import generate
from ember_neuro.hybrid.torch_hook import TorchHook
from ember_neuro.models.checkpoint import load_checkpoint

from ..helpers import SHIPPED, run_main

CKPT = SHIPPED / "lif-learnable-strong.pt"


@pytest.fixture(scope="module")
def ck(shipped):
    return shipped.prep("lif-learnable").ck


def _incremental_logits(model, x, hook, split):
    caches = [{} for _ in range(model.config.n_layer)]
    outs = [model(x[:, :split], hook=hook, caches=caches)[0]]
    for i in range(split, x.shape[1]):
        outs.append(model(x[:, i:i + 1], hook=hook, caches=caches)[0])
    return torch.cat(outs, dim=1)


@torch.no_grad()
def test_the_trained_hook_equals_the_plain_model(ck):
    x = torch.randint(0, len(ck.vocab), (2, 30))
    a, _ = ck.model(x)
    b, _ = ck.model(x, hook=lambda gate, inputs: torch.sigmoid(gate.per_head(gate.transformed()[2])
                                                               * (inputs["input"].abs()
                                                                  - gate.per_head(gate.transformed()[0]))))
    assert torch.equal(a, b)


@torch.no_grad()
@pytest.mark.parametrize("variant", ["lif-learnable", "temporal-lif", "qwen-gate", "lif-fixed"])
def test_whole_sequence_equals_incremental(tiny_ckpts, variant):
    model = load_checkpoint(tiny_ckpts[variant]).model
    x = torch.randint(0, 65, (1, 24))
    full, _ = model(x)
    inc = _incremental_logits(model, x, None, 5)
    assert torch.allclose(full, inc, atol=1e-5)


@torch.no_grad()
def test_whole_sequence_equals_incremental_with_spiking_gates(shipped, ck):
    paths = GatePaths(shipped.net("lif-learnable", 16), "emulator")
    hook = TorchHook(paths)
    x = torch.randint(0, len(ck.vocab), (1, 40))
    full, _ = ck.model(x, hook=hook)
    inc = _incremental_logits(ck.model, x, hook, 10)
    # every gate sees the same p up to float rounding; a p that sits exactly on a
    # level boundary may flip one spike, so compare with a tolerance of one level
    assert torch.allclose(full, inc, atol=2e-3)
    assert (full.argmax(-1) == inc.argmax(-1)).float().mean() > 0.97


def _causal_probs(seed=0, b=1, h=4, t=8):
    g = torch.Generator().manual_seed(seed)
    att = torch.randn(b, h, t, t, generator=g) * 2
    att = att.masked_fill(~torch.tril(torch.ones(t, t, dtype=torch.bool)), float("-inf"))
    return torch.softmax(att, dim=-1)


@torch.no_grad()
def test_emulator_gate_close_to_sigmoid(shipped, ck):
    paths = GatePaths(shipped.net("lif-learnable", 64), "emulator")
    p = torch.softmax(torch.randn(2, 4, 6, 6) * 2, dim=-1)
    gate = ck.model.transformer.h[1].attn.gate
    fire = TorchHook(paths)(gate, {"input": p})
    assert (fire - gate.fire({"input": p})).abs().max() <= 1 / 128 + 0.002
    assert paths.paths["attention"].stats[1]["gates"] == p.numel()


def test_refractory_incremental_refused(tiny_ckpts):
    model = load_checkpoint(tiny_ckpts["lif-refractory"]).model
    with pytest.raises(ValueError, match="not causal"):
        model(torch.zeros(1, 2, dtype=torch.long), caches=[{} for _ in range(2)])


def test_generate_slides_past_block_size(ck):
    (text,), _ = generate(ck.model, ck.vocab, "ROMEO:", ck.config.block_size + 40, None, 0.8, 1, "cpu")
    assert len(text) == ck.config.block_size + 40


def test_generate_is_deterministic_per_seed(ck):
    a, _ = generate(ck.model, ck.vocab, "To be", 30, None, 0.8, 7, "cpu")
    b, _ = generate(ck.model, ck.vocab, "To be", 30, None, 0.8, 7, "cpu")
    assert a == b


RAGGED = ["ROMEO:", "JULIET, my love", "O", "To be, or not to be, that is the question:"]


def test_a_batch_generates_what_each_prompt_generates_alone(shipped, ck):
    """Greedy, the float gates and the spiking gates of the emulator: batching prompts of any length
    changes no token.  Padding is masked and each prompt has its own positions; 70 tokens pass the
    block size (64), so each prompt's cache is cut back at its own step while the others' are not."""
    for hook in (None, TorchHook(GatePaths(shipped.net("lif-learnable", 8, 2, "auto"), "emulator"))):
        batch, _ = generate(ck.model, ck.vocab, RAGGED, 70, hook, 0.0, 1, "cpu")
        alone = [generate(ck.model, ck.vocab, p, 70, hook, 0.0, 1, "cpu")[0][0] for p in RAGGED]
        assert batch == alone
        assert len(set(batch)) == len(RAGGED)  # four different texts: the rows did not leak into each other


def test_ragged_prompts_batch_from_the_cli_and_refuse_where_padding_would_change_them(tiny_ckpts):
    args = ("--backend", "emulator", "-T", "8", "-N", "2", "--tokens", "12", "--greedy", "--json")
    r = run_main("ember_neuro.run", str(CKPT), *args, *sum((["--prompt", p] for p in RAGGED[:3]), []))
    assert r.returncode == 0, r.stderr
    texts = r.json()["texts"]
    assert texts == [run_main("ember_neuro.run", str(CKPT), *args, "--prompt", p).json()["text"]
                     for p in RAGGED[:3]]
    for variant, says in (("lif-refractory", "column load"), ("cfc-lif", "CfC state")):
        r = run_main("ember_neuro.run", str(tiny_ckpts[variant]), "--backend", "float", "--tokens", "2",
                     "--prompt", "AB", "--prompt", "ABC")
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.lava
def test_batched_generation_on_lava_uses_one_window_per_layer():
    pytest.importorskip("lava")
    args = ("--backend", "lava-sim", "-T", "8", "-N", "1", "--levels", "uniform", "--tokens", "6", "--greedy",
            "--json")
    one = run_main("ember_neuro.run", str(CKPT), *args).json()
    r = run_main("ember_neuro.run", str(CKPT), *args, *sum((["--prompt", p] for p in ("ROMEO:", "JULIET, my",
                                                                                      "To")), []))
    assert r.returncode == 0, r.stderr
    three = r.json()
    assert three["batch"] == 3 and len(three["texts"]) == 3 and three["texts"][0] == one["text"]
    assert three["lava_steps"] == one["lava_steps"]  # three prompts of three lengths, the same windows


def test_run_cli_generation_json():
    r = run_main("ember_neuro.run", str(CKPT), "--backend", "emulator", "-T", "8", "-N", "1", "--levels",
                 "uniform", "--prompt", "ROMEO:",
                 "--tokens", "20", "--json")
    assert r.returncode == 0, r.stderr
    d = r.json()
    assert {"backend", "timesteps", "text", "tokens", "tokens_per_s", "seconds"} <= set(d)
    assert d["tokens"] == 20 and len(d["text"]) == 20


def test_run_cli_eval_json_emulator():
    r = run_main("ember_neuro.run", str(CKPT), "--backend", "emulator", "-T", "32", "-N", "4", "--levels",
                 "log",
                 "--eval", "--batches", "1", "--batch-size", "2", "--json")
    assert r.returncode == 0, r.stderr
    d = r.json()
    for key in ("backend", "timesteps", "val_loss_float", "val_loss_hybrid", "rel_delta",
                "kl_float_hybrid", "top1_agreement", "tokens_per_s", "seconds"):
        assert key in d
    assert d["neurons_per_gate"] == 4 and d["levels"] == "log"
    assert abs(d["rel_delta"]) < 0.002 and d["top1_agreement"] > 0.98
    assert np.isclose(d["rel_delta"], (d["val_loss_hybrid"] - d["val_loss_float"]) / d["val_loss_float"])


@pytest.mark.parametrize("args,match", [
    (["--prompt", "ROMEO~"], "not in the model's vocabulary"),
    (["--prompt", ""], "empty prompt"),
    (["--device", "cuda"], "CUDA is not available"),
    (["--backend", "truenorth"], "unknown backend"),
    (["--backend", "snntorch"], "cannot run hybrid inference"),
    (["--tokens", "0"], "--tokens must be"),
    (["-T", "0"], "out of range"),
])
def test_run_cli_bad_inputs(args, match):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("machine has CUDA")
    r = run_main("ember_neuro.run", str(CKPT), "--backend", "emulator", "--tokens", "5", *args)
    assert r.returncode == 2 and match in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_run_cli_no_lif_gate(tiny_ckpts):
    r = run_main("ember_neuro.run", str(tiny_ckpts["standard"]), "--backend", "emulator")
    assert r.returncode == 2 and "no LIF gate to map" in r.stderr


def test_run_cli_loihi2_message():
    r = run_main("ember_neuro.run", str(CKPT), "--backend", "loihi2")
    assert r.returncode == 3 and "INRC" in r.stderr


@pytest.mark.lava
@torch.no_grad()
def test_lava_sim_gate_path_equals_emulator(shipped, ck):
    """Real Lava (fixed point, channels) and the emulator give the same fire, and the same model output."""
    net = shipped.net("lif-learnable", 16)
    p = _causal_probs()
    x = torch.randint(0, len(ck.vocab), (1, 12))
    gate = ck.model.transformer.h[2].attn.gate
    emu = TorchHook(GatePaths(net, "emulator"))
    with GatePaths(net, "lava-sim", slots=48) as paths:
        lava = TorchHook(paths)
        f_lava = lava(gate, {"input": p})
        logits_lava, _ = ck.model(x, hook=lava)
        assert paths.lava_steps > 0
    assert torch.equal(f_lava, emu(gate, {"input": p}))
    assert torch.equal(logits_lava, ck.model(x, hook=emu)[0])


@pytest.mark.lava
def test_exception_inside_hybrid_run_stops_lava(shipped, ck):
    before = set(mp.active_children())
    with pytest.raises(RuntimeError, match="boom"):
        with GatePaths(shipped.net("lif-learnable", 8), "lava-sim", slots=16) as paths:
            paths.fire("attention", 0, {"input": _causal_probs(t=4).numpy()})
            raise RuntimeError("boom")
    assert paths.paths["attention"].runner is None
    assert set(mp.active_children()) <= before


def test_with_no_bridge_asked_a_run_picks_the_network_one_chip_holds(shipped):
    """The chip-side window where every layer's window fits one Loihi 2 chip; the per-step network
    where it would not (the reason said), and at T = 1 (one step per window either way)."""
    pytest.importorskip("lava")
    from ember_neuro.hybrid.paths import GatePaths

    cases = (((32, 8), None, "chip-side"), ((64, 64), "more than one Loihi 2 chip", "per-step"),
             ((1, 16), "T = 1", "per-step"))
    for (t, n), says, bridge in cases:
        gates = GatePaths(shipped.net("lif-learnable", t, n, "auto"), "lava-sim", slots=64)
        picked, why = gates.fit_bridge()
        assert picked == bridge and ((why is None) if says is None else (says in why)), (t, n, why)
        assert {p.bridge for p in gates.paths.values()} == {bridge}
