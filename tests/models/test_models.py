"""Paper parameter counts and model behaviour for every variant."""

import pytest
import torch

from ember_neuro.kinds import registry
from ember_neuro.kinds.registry import names
from ember_neuro.models.build import build_model, param_counts
from ember_neuro.models.config import EmberConfig, config_for

VARIANTS = names()

PAPER_GATE_COUNTS = {
    "standard": 0,
    "lif-fixed": 72,
    "lif-learnable": 108,
    "lif-refractory": 180,
    "temporal-lif": 126,
    "qwen-gate": 884_736,
    "cfc": 0,
    "cfc-lif": 1_536,
    "audio-cfc": 0,
    "audio-cfc-lif": 1_536,  # the notes' section 10.2: 4 layers x 128 neurons x (theta, leak, k)
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_paper_gate_counts(variant):
    counts = param_counts(build_model(config_for(variant, "paper")))
    assert counts["gate"] == PAPER_GATE_COUNTS[variant]


def test_paper_total_is_10_65M():
    counts = param_counts(build_model(config_for("lif-learnable", "paper")))
    assert round(counts["total"] / 1e6, 2) == 10.65
    assert param_counts(build_model(config_for("standard", "paper")))["total"] == 10_646_784


def test_small_preset_is_about_0_8M():
    total = param_counts(build_model(config_for("lif-learnable", "small")))["total"]
    assert 0.7e6 < total < 0.9e6


def example_batch(model, batch: int = 2, length: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """(input, target) for any family: tokens and next tokens, or log-mel frames and classes."""
    cfg = model.config
    if cfg.is_classifier:
        return torch.randn(batch, cfg.block_size, cfg.n_mels), torch.randint(0, cfg.num_classes, (batch,))
    x = torch.randint(0, 65, (batch, length))
    return x, x


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_and_backward_every_variant(variant):
    torch.manual_seed(0)
    model = build_model(config_for(variant, "tiny"))
    x, y = example_batch(model)
    logits, loss = model(x, y)
    want = (2, model.config.num_classes) if model.config.is_classifier else (2, 12, 65)
    assert logits.shape == want and torch.isfinite(loss)
    loss.backward()
    # layer 0 has no previous layer, so its cross-layer weight gets no gradient (notes: "stuck at init")
    gate_grads = [p.grad for n, p in model.named_parameters()
                  if ("gate" in n or "temporal" in n) and not n.startswith("transformer.h.0.attn.gate.cross")]
    assert gate_grads or variant in ("standard", "cfc", "audio-cfc")
    assert all(g is not None and torch.isfinite(g).all() for g in gate_grads)


@pytest.mark.parametrize("variant", ["lif-learnable", "lif-refractory", "temporal-lif", "cfc-lif",
                                     "audio-cfc-lif"])
def test_the_hook_supplies_every_gates_fire(variant):
    """The model calls its hook once per gate and layer, in forward order, and uses the fire it
    returns: the trained fire reproduces the model, another fire changes it."""
    torch.manual_seed(0)
    model = build_model(config_for(variant, "tiny")).eval()
    x, _ = example_batch(model, 1, 10)
    calls = []

    def sigmoid_fire(gate, inputs):
        calls.append((gate.hook, gate.layer, tuple(inputs)))
        return gate.fire(inputs)

    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(x, hook=sigmoid_fire)
        c, _ = model(x, hook=lambda gate, inputs: torch.ones_like(inputs["input"]))
    hooks = [k.hook for k in registry.get(variant).kinds]
    assert [h for h, _, _ in calls] == [h for _ in range(model.config.n_layer) for h in hooks]
    assert [layer for _, layer, _ in calls] == [i for i in range(model.config.n_layer) for _ in hooks]
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-6


def test_unknown_variant_rejected():
    with pytest.raises(ValueError, match="unknown variant"):
        EmberConfig(variant="spiky")


def test_audio_liquid_ember_is_the_notes_architecture():
    """80 log-mel bins -> 128 -> 4 x (CfC 192 units + per-neuron LIF gate) -> LayerNorm -> mean
    pool -> 35 classes, with the notes' config keys; 98 frames per 1-s clip (not centre-padded)."""
    cfg = config_for("audio-cfc-lif", "paper")
    model = build_model(cfg)
    front = (cfg.n_mels, cfg.n_fft, cfg.hop_length, cfg.audio_length, cfg.num_classes)
    assert front == (80, 400, 160, 16000, 35)
    assert (cfg.n_layer, cfg.n_embd, cfg.cfc_units, cfg.block_size) == (4, 128, 192, 98)
    assert tuple(model.proj.weight.shape) == (128, 80) and tuple(model.head.weight.shape) == (35, 128)
    stored = cfg.to_dict()
    assert "vocab_size" not in stored and stored["num_classes"] == 35
    assert "n_mels" not in config_for("cfc-lif", "paper").to_dict()  # text checkpoints read as before
    assert EmberConfig(**stored) == cfg


def test_a_streamed_clip_decides_what_the_whole_clip_does():
    """step() carries every CfC state and the pooled sum: frame by frame (or a few at a time) the
    logits are the whole clip's, with the trained gates and with any other fire."""
    torch.manual_seed(0)
    model = build_model(config_for("audio-cfc-lif", "tiny")).eval()
    x = torch.randn(5, model.config.block_size, model.config.n_mels) * 3
    signed = lambda gate, inputs: (inputs["input"] > 0).to(inputs["input"].dtype)  # noqa: E731 - a 0/1 fire
    with torch.no_grad():
        for hook in (None, signed):
            whole, _ = model(x, hook=hook)
            for per in (1, 7):
                caches = model.new_caches()
                for f in range(0, x.shape[1], per):
                    streamed = model.step(x[:, f:f + per], caches, hook=hook)
                assert torch.allclose(streamed, whole, atol=1e-5)
                assert torch.equal(streamed.argmax(-1), whole.argmax(-1))
        assert not torch.allclose(model(x, hook=signed)[0], model(x)[0], atol=1e-3)


def test_a_bad_audio_front_end_is_refused():
    with pytest.raises(ValueError):
        EmberConfig(variant="audio-cfc-lif", n_fft=20000)
    with pytest.raises(ValueError, match="num_classes"):
        EmberConfig(variant="audio-cfc-lif", num_classes=0)
