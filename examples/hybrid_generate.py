"""Hybrid text generation: attention in PyTorch, the LIF gates as spiking neurons on Lava.

    .venv/bin/python examples/hybrid_generate.py [--backend lava-sim] [--timesteps 32] [--tokens 120]
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
    ap.add_argument("--tokens", type=int, default=120)
    ap.add_argument("--prompt", default="ROMEO:")
    a = ap.parse_args()
    result = run_hybrid(Deployment(a.checkpoint, backend=a.backend, timesteps=a.timesteps),
                        gen=Generation(prompts=(a.prompt,), tokens=a.tokens), stream=sys.stdout)
    keys = ("backend", "timesteps", "tokens_per_s", "lava_steps_per_s")
    print(json.dumps({k: result.get(k) for k in keys}))
