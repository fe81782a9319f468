"""Model configurations and presets (the paper's numbers live here); the variants are in
ember_neuro/kinds/registry.py."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ember_neuro.kinds import registry

SPIKES = ("soft", "hard")
# Audio Liquid Ember's front end (the notes' AudioLiquidEmberConfig, docs/keywords.md): only the
# audio family stores these, and its transformer-only fields are not stored.
AUDIO_FIELDS = ("n_mels", "n_fft", "hop_length", "audio_length", "num_classes")
TEXT_ONLY_FIELDS = ("vocab_size", "block_size", "n_head", "bias")


@dataclass
class EmberConfig:
    """Transformer Ember (nanoGPT) or Liquid Ember (CfC) hyper-parameters."""

    variant: str = "lif-learnable"
    vocab_size: int = 65
    block_size: int = 256
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.0
    bias: bool = False
    cfc_units: int = 192  # Liquid Ember only
    spike: str = "soft"  # temporal-lif's membrane: "soft" (sigmoid fire) or "hard" (the chip's LIF spike)
    # Audio Liquid Ember only: 16 kHz clips of audio_length samples -> n_mels log-mel bins per frame
    n_mels: int = 80
    n_fft: int = 400
    hop_length: int = 160
    audio_length: int = 16000
    num_classes: int = 35

    def __post_init__(self) -> None:
        if not isinstance(self.variant, str) or self.variant not in registry.VARIANTS:
            raise ValueError(
                f"unknown variant {self.variant!r}; expected one of: {', '.join(registry.names())}"
            )
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "cfc_units", *AUDIO_FIELDS):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) \
                or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if not isinstance(self.bias, bool):
            raise ValueError(f"bias must be true or false, got {self.bias!r}")
        if self.spike not in SPIKES:
            raise ValueError(f"spike must be one of {', '.join(SPIKES)}, got {self.spike!r}")
        if self.spike == "hard" and not any(k.hard_spike for k in registry.get(self.variant).kinds):
            raise ValueError(f"spike 'hard' needs a gate kind with a hard spike (temporal-lif's "
                             f"membrane); {self.variant} has none")
        if self.is_transformer and self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.is_classifier:
            from ember_neuro.audio.features import FeatureSpec

            # one gate slot per feature frame: the mapping lays out block_size slots per unit
            self.block_size, self.n_head = FeatureSpec.from_config(self).frames, 1

    @property
    def family(self) -> str:
        """The model family of the variant: "transformer" or "liquid"."""
        return registry.get(self.variant).family

    @property
    def is_transformer(self) -> bool:
        return self.family == "transformer"

    @property
    def is_classifier(self) -> bool:
        """Audio Liquid Ember: one class per clip, not a next token per position."""
        return self.family == "audio"

    @property
    def has_lif_gate(self) -> bool:
        return registry.get(self.variant).mappable

    def to_dict(self) -> dict:
        """The fields as checkpoints store them (model_args); ``spike`` only when hard, so a
        soft model's checkpoint reads as it always did."""
        d = asdict(self)
        if d["spike"] == "soft":
            del d["spike"]
        for name in TEXT_ONLY_FIELDS if self.is_classifier else AUDIO_FIELDS:
            del d[name]
        return d


@dataclass(frozen=True)
class TrainPreset:
    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    batch_size: int
    max_iters: int
    eval_interval: int
    eval_iters: int
    learning_rate: float
    min_lr: float
    warmup_iters: int
    dropout: float
    cfc_units: int


PRESETS: dict[str, TrainPreset] = {
    # seconds on a laptop CPU: for tests
    "tiny": TrainPreset(2, 2, 32, 32, 8, 30, 15, 4, 3e-3, 3e-4, 5, 0.0, 48),
    # ~0.8M parameters, minutes on 2 CPU cores
    "small": TrainPreset(4, 4, 128, 64, 12, 3000, 250, 20, 1e-3, 1e-4, 100, 0.0, 192),
    # the paper's 10.65M configuration (GPU)
    "paper": TrainPreset(6, 6, 384, 256, 64, 2000, 250, 200, 1e-3, 1e-4, 100, 0.2, 192),
}

# Liquid Ember layer sizes per preset (paper: 4 layers x 128 dim, 192 CfC units).
LIQUID_SHAPES: dict[str, tuple[int, int, int]] = {
    "tiny": (2, 16, 24),
    "small": (2, 64, 96),
    "paper": (4, 128, 192),
}


# Audio Liquid Ember (notes section 10.2): n_layer, n_embd, cfc_units of the paper's model; small
# sets for tests.
AUDIO_SHAPES: dict[str, tuple[int, int, int]] = {
    "tiny": (2, 16, 24),
    "small": (4, 128, 192),
    "paper": (4, 128, 192),
}


def config_for(variant: str, preset: str, vocab_size: int = 65, num_classes: int = 35) -> EmberConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of: {', '.join(PRESETS)}")
    p = PRESETS[preset]
    cfg = EmberConfig(
        variant=variant,
        vocab_size=vocab_size,
        block_size=p.block_size,
        n_layer=p.n_layer,
        n_head=p.n_head,
        n_embd=p.n_embd,
        dropout=p.dropout,
        cfc_units=p.cfc_units,
    )
    if cfg.is_classifier:
        n_layer, n_embd, cfc_units = AUDIO_SHAPES[preset]
        return EmberConfig(variant=variant, n_layer=n_layer, n_embd=n_embd, cfc_units=cfc_units,
                           dropout=0.0, num_classes=num_classes)
    if not cfg.is_transformer:
        cfg.n_layer, cfg.n_embd, cfg.cfc_units = LIQUID_SHAPES[preset]
        cfg.n_head = 1
    return cfg
