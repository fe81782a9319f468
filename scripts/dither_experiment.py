"""Experiment: do phase-shifted dither levels beat single-gate rounding at the model level?

Today every gate faces the same N*T levels l_m = logit((m + 1/2)/(NT)), so keys of a row with
similar p round the same way.  Phase-shifted tables give slot s the levels
logit((m + phi_p)/(NT)), p = s mod P, phi_p = (p + 1/2)/P (P = 1 is today's scheme):

  shifted    decode n/(NT) unchanged: phase p carries a bias (1/2 - phi_p)/(NT) that averages
             to zero over P consecutive keys; the per-gate worst case grows to
             max(phi, 1 - phi)/(NT) (up to 1/(NT) - 1/(2PNT)).
  corrected  decode (n + phi_p - 1/2)/(NT), clipped: the per-gate worst case stays 1/(2NT),
             only the rounding points move from key to key.

Evaluated on the float emulator (the rounding scheme, not fixed-point detail), same batches,
equal N*T:

    .venv/bin/python scripts/dither_experiment.py ember_neuro/checkpoints/lif-learnable-strong.pt \
        --timesteps 8 --neurons 1 --phases 1 2 4 8 --batches 8
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import numpy as np
import torch

from ember_neuro.deploy.mapping import prepare
from ember_neuro.hybrid.paths import GatePaths
from ember_neuro.hybrid.session import EVAL_SEED, evaluate
from ember_neuro.hybrid.torch_hook import TorchHook
from ember_neuro.kinds import attention
from ember_neuro.mappers import MappingOptions, NeuronGroup


def phases_of(p: int) -> np.ndarray:
    return (np.arange(p) + 0.5) / p


def warp(eps: float | None):
    """(w^-1) of the level space: identity (uniform in q) or uniform in log(q + eps)."""
    if eps is None:
        return lambda w: np.asarray(w, np.float64)
    lo, hi = np.log(eps), np.log(1.0 + eps)
    return lambda w: np.exp(lo + np.asarray(w, np.float64) * (hi - lo)) - eps


@dataclasses.dataclass(frozen=True)
class SchemeGroup(NeuronGroup):
    """A neuron group whose decode depends on the scheme (and, with phases, on the input slot)."""

    def decode(self, counts):
        counts = np.asarray(counts, np.float64)
        p, eps, corrected = self._scheme  # type: ignore[attr-defined]
        nt = self.timesteps * self.neurons_per_gate
        phi = phases_of(p)[np.arange(counts.shape[-1]) % p] if corrected else 0.5
        return np.clip(warp(eps)((counts + phi - 0.5) / nt), 0.0, 1.0)


def scheme_group(g: NeuronGroup, p: int, eps: float | None, corrected: bool) -> NeuronGroup:
    """The float arithmetic of `g` with P phase-shifted dither columns per channel, levels
    uniform in q (eps None) or in log(q + eps); decode corrected per phase or not."""
    t, n = g.timesteps, g.neurons_per_gate
    nt = t * n
    inv = warp(eps)
    cols = []
    for phi in phases_of(p):
        q = np.clip(inv((np.arange(nt) + phi) / nt), 1e-12, 1 - 1e-12)
        cols.append(-np.log(q / (1 - q)).reshape(t, n))
    table = np.concatenate(cols, axis=1)  # column (phase * N + channel), as layout() reads it
    fp = g.float_params
    conns = tuple(dataclasses.replace(c, table=table) if c.table is not None else c for c in fp.connections)
    kept = {f.name: getattr(g, f.name) for f in dataclasses.fields(NeuronGroup) if f.name != "float_params"}
    new = SchemeGroup(**kept, float_params=dataclasses.replace(fp, connections=conns))
    object.__setattr__(new, "_scheme", (p, eps, corrected))
    return new


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--timesteps", type=int, default=8)
    ap.add_argument("--neurons", type=int, default=1)
    ap.add_argument("--phases", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--warp", type=float, nargs="*", default=[], help="eps of log(q + eps)-uniform levels")
    ap.add_argument("--batches", type=int, default=8, help="0 = the whole validation split")
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)
    prep = prepare(args.checkpoint)
    ck, data = prep.ck, prep.text
    net = prep.map(MappingOptions(timesteps=args.timesteps, neurons_per_gate=args.neurons))
    block = ck.config.block_size
    batches = (data.val_sequential(args.batch_size, block) if args.batches == 0 else
               data.val_batches(args.batches, args.batch_size, block, seed=EVAL_SEED))
    rows = []
    schemes = [(p, c, eps) for eps in [None, *args.warp] for p in args.phases
               for c in ((False,) if p == 1 else (False, True))]
    for p, corrected, eps in schemes:
        g = scheme_group(net.group("attention"), p, eps, corrected)
        n2 = dataclasses.replace(net, groups={**net.groups, "attention": g})
        with GatePaths(n2, "emulator-float", slots=attention.slots(args.batch_size, block, True)) as paths:
            r = evaluate(ck.model, batches, TorchHook(paths), "cpu", progress=False)
        row = {"phases": p, "warp": eps, "decode": "corrected" if corrected else "plain",
               "T": args.timesteps,
               "N": args.neurons, "rel_delta": r["rel_delta"], "top1": r["top1_agreement"],
               "kl": r["kl_float_hybrid"], "tokens": r["tokens"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("| levels | P | decode | rel. delta | top-1 | KL |\n|---|---|---|---|---|---|")
    for r in rows:
        lv = "uniform" if r["warp"] is None else f"log(q + {r['warp']})"
        print(f"| {lv} | {r['phases']} | {r['decode']} | {r['rel_delta']:+.2e} | {r['top1']:.4%} "
              f"| {r['kl']:.2e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
