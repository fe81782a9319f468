"""Hybrid text generation: attention in PyTorch, the LIF gates as spiking neurons on Lava.

    .venv/bin/python examples/hybrid_generate.py [--backend lava-sim] [--timesteps 32] [-N N] [--levels auto]
        [--tokens 120]

Without -N the neurons per gate are chosen by the model-level search at that T; -N pins them.
"""

import argparse
import json
import sys
from pathlib import Path

from ember_neuro.hybrid.session import Deployment, Generation, run_hybrid

CKPT = Path(__file__).resolve().parents[1] / "ember_neuro" / "checkpoints" / "lif-learnable-strong.pt"

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint", default=str(CKPT))
    ap.add_argument("--backend", default="lava-sim")
    ap.add_argument("--timesteps", type=int, default=32)
    ap.add_argument("--neurons-per-gate", "-N", type=int, default=None, help="default: chosen")
    ap.add_argument("--levels", choices=("uniform", "log", "auto"), default=None, help="default: auto")
    ap.add_argument("--tokens", type=int, default=120)
    ap.add_argument("--prompt", default="ROMEO:")
    a = ap.parse_args()
    result = run_hybrid(Deployment(a.checkpoint, backend=a.backend, timesteps=a.timesteps,
                                   neurons_per_gate=a.neurons_per_gate, levels=a.levels),
                        gen=Generation(prompts=(a.prompt,), tokens=a.tokens), stream=sys.stdout)
    keys = ("backend", "timesteps", "tokens_per_s", "lava_steps_per_s")
    print(json.dumps({k: result.get(k) for k in keys}))
