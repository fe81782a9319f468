"""A paper-configuration checkpoint without training: random weights, strong gates.

Why: the paper's model (6 layers x 6 heads x 384, block 256, 10.65 M parameters) is the size
users deploy, and it trains only on a GPU.  Everything the package does at that size -- memory,
time, the window the defaults choose -- depends on the shape and on gates that switch, not on
what the weights learned, so the slow suite and the bench build this one in seconds instead of
shipping a 40 MB file.

The gates are strong, selective filters like those the design notes report for trained models
(thresholds up to 1.14 at steepness 2.8): threshold well above the typical attention
probability, steepness a few units, leak near closed, drawn per head from a seeded generator:

    theta ~ U(0.55, 0.75),  k = softplus(raw), raw ~ U(3, 8),  leak = sigmoid(-3) = 0.047

    python -m ember_neuro.models.synthetic --out paper.pt [--variant lif-learnable] [--seed 0]
"""

from __future__ import annotations

import sys
from pathlib import Path

SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints" / "lif-learnable-strong.pt"
THETA_RANGE = (0.55, 0.75)
STEEPNESS_RAW_RANGE = (3.0, 8.0)
LEAK_RAW = -3.0


def shipped_vocab() -> str:
    """The shipped checkpoints' vocabulary (the Shakespeare corpus's characters), so the default text
    calibrates and evaluates the synthetic model."""
    from ember_neuro.models.checkpoint import load_checkpoint

    return load_checkpoint(SHIPPED).vocab


def paper_model(variant: str = "lif-learnable", seed: int = 0, vocab_size: int | None = None):
    """The paper-preset model with seeded random weights and strong gates (see the module docstring)."""
    import torch

    from ember_neuro.models.build import build_model
    from ember_neuro.models.config import config_for

    torch.manual_seed(seed)
    cfg = config_for(variant, "paper", vocab_size=vocab_size or len(shipped_vocab()))
    cfg.dropout = 0.0
    model = build_model(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gate.threshold"):
                p.copy_(torch.empty(p.shape).uniform_(*THETA_RANGE, generator=g))
            elif name.endswith("gate.steepness"):
                p.copy_(torch.empty(p.shape).uniform_(*STEEPNESS_RAW_RANGE, generator=g))
            elif name.endswith("gate.leak"):
                p.fill_(LEAK_RAW)
    return model, cfg


def save_paper_checkpoint(path: str | Path, variant: str = "lif-learnable", seed: int = 0) -> Path:
    """Write the paper-configuration checkpoint (atomically) and return its path."""
    from ember_neuro.models.checkpoint import save_checkpoint

    vocab = shipped_vocab()
    model, cfg = paper_model(variant, seed, len(vocab))
    save_checkpoint(path, model, cfg, 0, float("nan"),
                    {"vocab": vocab, "data": f"synthetic: random weights, strong gates, seed {seed}"})
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    from ember_neuro import cli

    ap = cli.parser("ember_neuro.models.synthetic", __doc__)
    ap.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    ap.add_argument("--variant", default="lif-learnable", help="a transformer variant with attention gates")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    code, path = cli.run_guarded(lambda a: save_paper_checkpoint(a.out, a.variant, a.seed), args,
                                 "interrupted: nothing was written")
    if not code:
        print(f"wrote {path}")
    return code


if __name__ == "__main__":
    sys.exit(main())
