"""Per-layer spike statistics of the gate neurons for one prompt.

For each layer: how many gate evaluations ran (one per attention probability
p > 0), the fraction of gates that fired at all, and spikes per token.

    .venv/bin/python examples/spike_stats.py [--backend emulator] [--timesteps 32] [--prompt "ROMEO:"]
"""

import argparse
from pathlib import Path

import torch

from ember_neuro.deploy.mapping import map_checkpoint
from ember_neuro.hybrid.torch_hook import make_fire_fn
from ember_neuro.mappers import MappingOptions
from ember_neuro.models.checkpoint import load_checkpoint

CKPT = Path(__file__).resolve().parents[1] / "ember_neuro" / "checkpoints" / "lif-learnable-strong.pt"

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(CKPT))
    ap.add_argument("--backend", default="emulator")
    ap.add_argument("--timesteps", type=int, default=32)
    ap.add_argument("--prompt", default="ROMEO:\nWhat light through yonder window breaks?")
    a = ap.parse_args()
    ck = load_checkpoint(a.checkpoint)
    mapped = map_checkpoint(ck, MappingOptions(timesteps=a.timesteps)).group("attention")
    stoi = {c: i for i, c in enumerate(ck.vocab)}
    ids = torch.tensor([[stoi[c] for c in a.prompt[-ck.config.block_size:]]])
    fire_fn, path = make_fire_fn(mapped, a.backend, slots=ck.config.block_size * ids.shape[1])
    with path, torch.no_grad():
        ck.model(ids, fire_fn=fire_fn)
    n_tok = ids.shape[1]
    print(f"{a.backend}, T={a.timesteps}, {n_tok} tokens, {mapped.neurons_per_gate} neuron(s) per gate")
    print(f"{'layer':>5} {'gates':>8} {'fired':>7} {'spikes/token':>13} {'mean rate':>10}")
    for layer, s in sorted(path.stats.items()):
        rate = s["spikes"] / (s["gates"] * a.timesteps * mapped.neurons_per_gate)
        print(f"{layer:>5} {s['gates']:>8} {s['firing'] / s['gates']:>7.1%} "
              f"{s['spikes'] / n_tok:>13.1f} {rate:>10.3f}")
