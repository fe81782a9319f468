"""Per-layer spike statistics of the gate neurons for one prompt.

For each gate path and layer: how many gate evaluations ran (attention: one per probability
p > 0), the fraction of gates that fired at all, and spikes per token.

    .venv/bin/python examples/spike_stats.py [--backend emulator] [--timesteps 32] [--prompt "ROMEO:"]
"""

import argparse
from pathlib import Path

import torch

from ember_neuro.deploy.mapping import prepare
from ember_neuro.hybrid.paths import GatePaths
from ember_neuro.hybrid.torch_hook import TorchHook
from ember_neuro.mappers import MappingOptions

CKPT = Path(__file__).resolve().parents[1] / "ember_neuro" / "checkpoints" / "lif-learnable-strong.pt"

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(CKPT))
    ap.add_argument("--backend", default="emulator")
    ap.add_argument("--timesteps", type=int, default=32)
    ap.add_argument("--prompt", default="ROMEO:\nWhat light through yonder window breaks?")
    a = ap.parse_args()
    prep = prepare(a.checkpoint)
    ck = prep.ck
    net = prep.map(MappingOptions(timesteps=a.timesteps))
    stoi = {c: i for i, c in enumerate(ck.vocab)}
    ids = torch.tensor([[stoi[c] for c in a.prompt[-ck.config.block_size:]]])
    with GatePaths(net, a.backend, slots=ck.config.block_size * ids.shape[1]) as paths, torch.no_grad():
        ck.model(ids, hook=TorchHook(paths))
    n_tok = ids.shape[1]
    print(f"{a.backend}, T={a.timesteps}, {n_tok} tokens, {net.options['neurons_per_gate']} neuron(s) per "
          "gate")
    print(f"{'path':>10} {'layer':>5} {'gates':>8} {'fired':>7} {'spikes/token':>13} {'mean rate':>10}")
    for hook, path in paths.paths.items():
        per = path.group.timesteps * path.group.neurons_per_gate
        for layer, s in sorted(path.stats.items()):
            print(f"{hook:>10} {layer:>5} {s['gates']:>8} {s['firing'] / s['gates']:>7.1%} "
                  f"{s['spikes'] / n_tok:>13.1f} {s['spikes'] / (s['gates'] * per):>10.3f}")
