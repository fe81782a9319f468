"""Hybrid text generation from this bundle, without torch: the host graphs in onnxruntime, every
gate on spiking neurons in Lava (or the numpy reference of the same fixed-point arithmetic).

    python generate.py --prompt "ROMEO:" --tokens 100 --greedy
    python generate.py --prompt "ROMEO:" --tokens 100 --temperature 0.8 --seed 1337 --json

With --greedy the tokens equal those of `python -m ember_neuro.run CKPT --backend lava-sim
--greedy` for the same prompt (T and N are the bundle's).  Sampling uses numpy's
generator, so sampled text differs from the package's (torch's generator).  The
window T and the neurons per gate N were fixed when the bundle was made (bundle.json).
lif-refractory decodes whole windows (its column load averages over all queries);
the others use a KV cache (transformer) or the CfC state.

Exit status: 0 done; 2 bad input (e.g. a prompt character outside the vocabulary);
3 Lava or onnxruntime is not installed; 4 a Lava run failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python generate.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompt", default="ROMEO:")
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--greedy", action="store_true", help="always the most likely token (temperature 0)")
    ap.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (0 = greedy)")
    ap.add_argument("--top-k", type=int, default=None)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--backend", default="lava-sim", choices=("lava-sim", "numpy", "loihi2"),
                    help="where the gates run: Lava's bit-accurate simulation (default), the numpy "
                         "reference, or Loihi 2 (INRC)")
    ap.add_argument("--temporal", default=None, choices=("rate", "hard"),
                    help="which group answers a hook with alternatives (temporal-lif's membrane: rate or "
                         "hard; default: the mode the golden trace was recorded in)")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds before a stalled Lava exchange fails")
    ap.add_argument("--json", action="store_true", help="print one JSON object with a `text` key")
    args = ap.parse_args(argv)
    if args.tokens < 1:
        ap.error("--tokens must be >= 1")
    sys.path.insert(0, str(HERE / "lib"))
    from ember_neuro.cli import bundle_runtime_missing

    missing = bundle_runtime_missing(args.backend)
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 3
    from ember_neuro.cli import run_and_report
    from ember_neuro.hybrid import decoding
    from ember_neuro.hybrid.onnx_host import OnnxHost
    from ember_neuro.hybrid.paths import GatePaths
    from ember_neuro.mappers import load_mapped

    def generate(a: argparse.Namespace) -> dict:
        vocab = json.loads((HERE / "model" / "vocab.json").read_text())
        info = json.loads((HERE / "bundle.json").read_text())
        chars, block = vocab["chars"], vocab["block_size"]
        seqs = decoding.encode_prompts(chars, [a.prompt])  # one-line refusals before Lava starts
        net = load_mapped(HERE / "model" / "mapped.npz")
        temporal = a.temporal or info.get("temporal", "rate")
        emit = None if a.json else (lambda new: (sys.stdout.write(chars[new[0]]), sys.stdout.flush()))
        if not a.json:
            sys.stdout.write(a.prompt)
        pick = decoding.greedy if a.greedy else decoding.numpy_sampler(a.temperature, a.top_k, a.seed)
        bridge = info.get("bridge") if a.backend != "numpy" else None  # the network the bundle recorded
        with GatePaths(net, a.backend, slots=block, timeout_s=a.timeout, mode=temporal,
                       bridge=bridge) as gates:
            host = OnnxHost(HERE / "model" / "onnx", gates)
            mode, recurrent = host.decode_settings()  # whole windows where the gates are not causal
            t0 = time.perf_counter()
            out = decoding.decode(host, seqs, a.tokens, block, mode, recurrent, pick, emit)[0]
            secs = time.perf_counter() - t0
        if not a.json:
            sys.stdout.write("\n")
        return {"prompt": a.prompt, "text": "".join(chars[i] for i in out), "token_ids": out,
                "tokens": a.tokens, "greedy": a.greedy or a.temperature <= 0, "backend": a.backend,
                "variant": net.variant, "timesteps": info["timesteps"],
                "neurons_per_gate": info["neurons_per_gate"],
                "temporal": temporal if net.alternatives else None,
                "tokens_per_s": a.tokens / secs if secs else None}

    def report(result: dict) -> None:
        print(f"[{result['backend']} T={result['timesteps']} N={result['neurons_per_gate']}: {args.tokens} "
              f"tokens, {result['tokens_per_s']:.1f} tokens/s]", file=sys.stderr)

    return run_and_report(generate, args, "\ninterrupted: Lava stopped", report)


if __name__ == "__main__":
    sys.exit(main())
