"""Hybrid inference with the spiking gate in the loop: generate text or evaluate.

    python -m ember_neuro.run ckpt.pt --backend lava-sim --prompt "ROMEO:" --tokens 200
    python -m ember_neuro.run ckpt.pt --backend emulator --timesteps 8 --eval --batches 8 --json
    python -m ember_neuro.run ckpt.pt --mapped runs/demo-map --backend lava-sim --tokens 100

Dense attention, MLPs and embeddings run in PyTorch (--device cpu|cuda); every
attention probability's gate `fire` runs as spiking neurons on --backend and is
decoded from its spike count (docs/mapping.md).  On Lava each layer's gates run as a
chip-side window (--bridge chip-side, the default): the host sends each layer's gate values
once and gets each value's spike count back once, so a token costs one host<->chip message
each way per gated layer; --bridge per-step runs the network that feeds every window step
from the host instead (for comparison; float Lava and the hard membrane always use it).
--json reports the messages, values and bytes counted at the bridge processes.  --mapped DIR
uses the mapping
`map --out DIR` saved (refused if it was made from another checkpoint) instead
of mapping again.  The Lava network is compiled and started once per run and
always stopped, also on errors and Ctrl-C.

Generation uses a KV cache (one query row per new token; Liquid Ember carries its
CfC state); when the context reaches the model's block size the cache is rebuilt
from the last half block.  lif-refractory decodes whole-sequence instead: its
threshold depends on the column load, a mean over *all* queries of the window,
so each new token runs the whole window again (--decode cache is refused).
temporal-lif's membrane runs in --temporal rate mode (faithful) or hard mode
(one LIF neuron per token; its spike decides whether the MLP runs).
Evaluation uses a fixed set of validation batches (seeded), the same for every
backend and every run, and compares against the float model on the same batches.

Audio Liquid Ember (a keyword spotter, docs/keywords.md) classifies clips instead:

    python -m ember_neuro.run kws.pt --wav yes.wav --wav no.wav          # whole clips
    python -m ember_neuro.run kws.pt --wav yes.wav --stream              # 10 ms at a time
    python -m ember_neuro.run kws.pt --eval --batches 0 --json           # the whole testing split

--stream feeds each clip hop by hop, as an always-on spotter hears it: a frame is computed when
its samples have arrived and goes through the layers with the CfC state carried; the decision
after the last frame is reported beside the whole clip's.  --eval scores the testing split
(never used to choose the window): float and spiking accuracy and their class agreement.

Exit status: 0 done; 2 bad input; 3 backend not available here; 4 a runtime
fault (a Lava process died, a timeout); 130 Ctrl-C.
"""

from __future__ import annotations

import sys

from ember_neuro import cli
from ember_neuro.backends import registry
from ember_neuro.backends.chip_window import BRIDGES
from ember_neuro.hybrid.keyword import Classification
from ember_neuro.hybrid.session import Deployment, Evaluation, Generation, run_hybrid


def _backends() -> str:
    names = registry.names(hybrid=True)
    return "\n".join(f"  {n:<15} {registry.get(n).description}" for n in names)


def build_parser():
    ap = cli.parser("ember_neuro.run", __doc__, cli.WINDOW_EPILOG + "\nbackends:\n" + _backends())
    ap.add_argument("checkpoint")
    ap.add_argument("--backend", default="lava-sim", metavar="NAME", help="default lava-sim (list above)")
    cli.add_window_options(ap, ", or the --mapped mapping's")
    ap.add_argument("--mapped", metavar="DIR", help="use the mapping saved by `map --out DIR`")
    ap.add_argument("--temporal", default=None, metavar="MODE",
                    help="temporal-lif's membrane: rate (the trained soft fire, rate-coded on spiking "
                         "neurons) or hard (one LIF neuron per token whose spike decides whether the MLP "
                         "runs; a silent token's MLP is not computed).  Default: the checkpoint's trained "
                         "form -- hard for a model trained with `train --spike hard`, rate otherwise.  The "
                         "MLPs skipped and the FLOPs saved are reported either way")
    ap.add_argument("--bridge", default=None, choices=BRIDGES,
                    help="Lava's gate network: chip-side (one message each way per layer and token, "
                         "counts summed on chip) or per-step (the host feeds every window step and takes "
                         "every step's spikes).  Default: chip-side where every layer's window fits one "
                         "Loihi 2 chip, else per-step (N instead of N*T + R + 1 neurons per value; "
                         "stderr says why); at T = 1 per-step, one step per window too")
    ap.add_argument("--decode", default="auto", metavar="MODE",
                    help="generation: cache (KV cache / CfC state: one new token per step), whole "
                         "(the whole window again per token), or auto (default: whole for "
                         "lif-refractory, whose column load is not causal; cache otherwise)")
    ap.add_argument("--prompt", action="append", default=None,
                    help="prompt text (default ROMEO:); give it several times to generate for all of them "
                         "in one batch -- one Lava network, one gate window per layer serving every "
                         "prompt.  Prompts may differ in length (transformers: padded and masked, each "
                         "with its own positions, so each generates what it generates alone)")
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (0 = greedy)")
    ap.add_argument("--greedy", action="store_true",
                    help="always take the most likely token (same as --temperature 0); the INRC bundle's "
                         "generate.py --greedy gives the same tokens")
    ap.add_argument("--top-k", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--eval", action="store_true", help="evaluate on fixed validation batches")
    ap.add_argument("--batches", type=int, default=8,
                    help="random fixed validation batches; 0 = the whole validation split, in order")
    ap.add_argument("--batch-size", type=int, default=8,
                    help="sequences per evaluation batch; with --wav, clips per gate window (default 8)")
    ap.add_argument("--data", help="validation text (default: Shakespeare); an audio model: a Speech "
                                   "Commands v2 folder (default: the project's keyword set)")
    ap.add_argument("--wav", action="append", default=None, metavar="FILE",
                    help="audio model: classify this 16 kHz mono wav file (give it several times for a "
                         "batch); a clip longer than the model's is cropped with a warning")
    ap.add_argument("--stream", action="store_true",
                    help="with --wav: stream each clip --chunk samples at a time, state carried, and "
                         "report the decision beside the whole clip's")
    ap.add_argument("--chunk", type=int, default=160,
                    help="with --stream: samples per arrival (default 160, one hop: 10 ms at 16 kHz)")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds before a stalled Lava exchange fails")
    cli.add_threads_option(ap)
    cli.add_json_option(ap, "print one JSON object instead of streaming")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.stream and not args.wav:
        ap.error("--stream needs --wav FILE")
    if args.wav and args.eval:
        ap.error("give --wav or --eval, not both")

    def run(a) -> dict:
        dep = cli.from_args(Deployment, a)
        if a.wav:
            return run_hybrid(dep, cls=Classification(tuple(a.wav), a.stream, a.chunk, a.batch_size))
        if a.eval:
            return run_hybrid(dep, ev=cli.from_args(Evaluation, a),
                              progress=not a.json and sys.stderr.isatty())
        gen = cli.from_args(Generation, a, prompts=tuple(a.prompt or ["ROMEO:"]),
                            temperature=0.0 if a.greedy else a.temperature)
        return run_hybrid(dep, gen=gen, stream=None if a.json else sys.stdout)

    def report(result: dict) -> None:
        if args.wav:
            for r in result["clips"]:
                same = "" if "whole_clip_label" not in r else (
                    "  (= whole clip)" if r["label"] == r["whole_clip_label"]
                    else f"  (whole clip: {r['whole_clip_label']})")
                print(f"{r['wav']}: {r['label']} ({r['probability']:.1%}){same}")
        elif args.eval and "clips" in result:
            print(f"{args.backend} T={result['timesteps']} N={result.get('neurons_per_gate', 1)} on "
                  f"{result['clips']} test clips: accuracy float {result['accuracy_float']:.2%} spiking "
                  f"{result['accuracy_hybrid']:.2%}, class agreement {result['top1_agreement']:.2%}, "
                  f"loss rel {result['rel_delta']:+.2e}")
        elif args.eval:
            print(f"{args.backend} T={result['timesteps']} N={result.get('neurons_per_gate', 1)} "
                  f"{result.get('levels', 'uniform')} levels: val loss float {result['val_loss_float']:.5f} "
                  f"hybrid {result['val_loss_hybrid']:.5f} (rel {result['rel_delta']:+.2e}), "
                  f"top-1 agreement {result['top1_agreement']:.4%}, KL {result['kl_float_hybrid']:.2e}")
        else:
            crossed = result.get("exchanges_per_token", {}).get("total")
            extra = (f", {crossed['to_chip_messages'] + crossed['from_chip_messages']:.0f} host<->chip "
                     f"messages per token" if crossed else "")
            print(f"[{args.backend} T={result['timesteps']}: {args.tokens} tokens, "
                  f"{result['tokens_per_s']:.1f} tokens/s{extra}]", file=sys.stderr)

    return cli.run_and_report(run, args, "\ninterrupted: Lava stopped", report)


if __name__ == "__main__":
    sys.exit(main())
