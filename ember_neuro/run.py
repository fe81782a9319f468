"""Hybrid inference with the spiking gate in the loop: generate text or evaluate.

    python -m ember_neuro.run ckpt.pt --backend lava-sim --timesteps 32 --prompt "ROMEO:" --tokens 200
    python -m ember_neuro.run ckpt.pt --backend emulator --timesteps 8 --eval --batches 8 --json

Dense attention, MLPs and embeddings run in PyTorch (--device cpu|cuda); every
attention probability's gate `fire` runs as spiking neurons on --backend
(float | emulator | lava-sim | lava-sim-float | loihi2) and is decoded from its
spike count (docs/mapping.md).  The Lava network is compiled and started once
per run and always stopped, also on errors and Ctrl-C.

Generation uses a KV cache (one query row per new token); when the context
reaches the model's block size the cache is rebuilt from the last half block.
Evaluation uses a fixed set of validation batches (seeded), the same for every
backend and every run, and compares against the float model on the same batches.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ember_neuro import backends
from ember_neuro.checkpoint import CheckpointError, load_checkpoint
from ember_neuro.cli import run_guarded
from ember_neuro.hybrid import BACKENDS, make_fire_fn
from ember_neuro.map import MapError, mappable_units
from ember_neuro.mappers import MappingOptions, map_gates

EVAL_SEED = 1234


class RunError(RuntimeError):
    """A request that cannot run, with a one-line reason."""


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError("--device cuda requested but CUDA is not available on this machine")
    if name not in ("cpu", "cuda"):
        raise RunError(f"unknown device {name!r}; use cpu or cuda")
    return torch.device(name)


@torch.no_grad()
def generate(model, vocab: str, prompt: str, tokens: int, fire_fn, temperature: float,
             seed: int, device, stream=None, top_k: int | None = None) -> tuple[str, float]:
    """Sample `tokens` characters after `prompt` with a KV cache; returns (text, seconds)."""
    if not prompt:
        raise RunError("empty prompt: give at least one character with --prompt")
    stoi = {c: i for i, c in enumerate(vocab)}
    bad = sorted({c for c in prompt if c not in stoi})
    if bad:
        raise RunError(f"prompt characters not in the model's vocabulary: {''.join(bad)!r}")
    block = model.config.block_size
    ids = [stoi[c] for c in prompt]
    g = torch.Generator(device="cpu").manual_seed(seed)
    caches = None
    t0 = time.perf_counter()
    out = []
    for _ in range(tokens):
        if caches is None or caches[0]["k"].size(2) >= block:
            # (re)build the cache from the most recent context: whole prompt, or half a block
            ctx = ids[-block:] if caches is None else ids[-(block // 2):]
            caches = [{} for _ in range(model.config.n_layer)]
            logits, _ = model(torch.tensor([ctx], device=device), fire_fn=fire_fn, caches=caches)
        logits = logits[0, -1].float().cpu()
        if temperature <= 0:
            nxt = int(torch.argmax(logits))
        else:
            logits = logits / temperature
            if top_k:
                kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
                logits[logits < kth] = -math.inf
            nxt = int(torch.multinomial(F.softmax(logits, dim=-1), 1, generator=g))
        ids.append(nxt)
        out.append(vocab[nxt])
        if stream is not None:
            stream.write(vocab[nxt])
            stream.flush()
        if len(out) < tokens:
            logits, _ = model(torch.tensor([[nxt]], device=device), fire_fn=fire_fn, caches=caches)
    return "".join(out), time.perf_counter() - t0


@torch.no_grad()
def evaluate(model, batches, fire_fn, device, progress: bool = True) -> dict:
    """Float vs hybrid on the same batches: losses, KL, top-1 agreement."""
    n_tok = 0
    loss_f = loss_h = kl = agree = 0.0
    hybrid_s = 0.0
    for x, y in tqdm(batches, desc="eval", disable=not progress, dynamic_ncols=True):
        x, y = x.to(device), y.to(device)
        lf, _ = model(x)
        t0 = time.perf_counter()
        lh, _ = model(x, fire_fn=fire_fn)
        hybrid_s += time.perf_counter() - t0
        lf, lh = lf.double().flatten(0, 1), lh.double().flatten(0, 1)
        yy = y.flatten()
        loss_f += float(F.cross_entropy(lf, yy, reduction="sum"))
        loss_h += float(F.cross_entropy(lh, yy, reduction="sum"))
        lpf, lph = F.log_softmax(lf, -1), F.log_softmax(lh, -1)
        kl += float((lpf.exp() * (lpf - lph)).sum())
        agree += float((lf.argmax(-1) == lh.argmax(-1)).sum())
        n_tok += yy.numel()
    vf, vh = loss_f / n_tok, loss_h / n_tok
    return {"val_loss_float": vf, "val_loss_hybrid": vh, "rel_delta": (vh - vf) / vf,
            "kl_float_hybrid": kl / n_tok, "top1_agreement": agree / n_tok,
            "tokens": n_tok, "tokens_per_s": n_tok / hybrid_s if hybrid_s else None,
            "hybrid_seconds": hybrid_s}


def eval_slots(batch_size: int, block: int) -> int:
    """Neurons per gate unit on Lava for evaluation: a whole batch's causal row set, capped."""
    return int(min(8192, batch_size * block * (block + 1) // 2))


def run(args) -> dict:
    t_start = time.time()
    if args.backend not in BACKENDS:
        raise RunError(f"unknown backend {args.backend!r}; expected one of: {', '.join(BACKENDS)}")
    if args.timesteps < 1 or args.timesteps > 4096:
        raise RunError(f"--timesteps must be within 1..4096, got {args.timesteps}")
    if args.tokens < 1:
        raise RunError(f"--tokens must be >= 1, got {args.tokens}")
    device = resolve_device(args.device)
    if args.threads < 1:
        raise RunError(f"--threads must be >= 1, got {args.threads}")
    # One intra-op thread: the per-token tensors are tiny, and on a 2-core machine
    # OpenMP workers spinning against Lava's processes (or any other load) made
    # each op up to 100x slower.
    torch.set_num_threads(args.threads)
    if args.backend != "float":
        backends.check_target(args.backend)
    ck = load_checkpoint(args.checkpoint)
    model = ck.model.to(device)
    if not ck.config.is_transformer:
        raise RunError(f"{ck.config.variant!r} is Liquid Ember; hybrid runs cover Transformer Ember")
    mapped = None
    if args.backend != "float":
        mapped = map_gates(mappable_units(ck), MappingOptions(timesteps=args.timesteps))
    elif not ck.config.has_lif_gate:
        raise RunError(f"no LIF gate to run: {ck.path} is a {ck.config.variant!r} checkpoint")
    result: dict = {"backend": args.backend, "timesteps": args.timesteps}
    if args.eval:
        from ember_neuro.data import load_data

        data = load_data(args.data, vocab=ck.vocab)
        if args.batches < 0:
            raise RunError(f"--batches must be >= 0 (0 = the whole validation split), got {args.batches}")
        if args.batches == 0:
            batches = data.val_sequential(args.batch_size, ck.config.block_size)
        else:
            batches = data.val_batches(args.batches, args.batch_size, ck.config.block_size,
                                       seed=EVAL_SEED)
        slots = eval_slots(args.batch_size, ck.config.block_size)
    else:
        slots = ck.config.block_size
    fire_fn, path = make_fire_fn(mapped, args.backend, slots=slots, timeout_s=args.timeout)
    with contextlib.ExitStack() as stack:
        startup = 0.0
        if path is not None:
            t0 = time.perf_counter()
            stack.enter_context(path)
            startup = time.perf_counter() - t0
        if args.eval:
            result.update(evaluate(model, batches, fire_fn, device, progress=not args.json))
            result["batches"] = len(batches)
            result["batch_size"] = args.batch_size
        else:
            stream = None if args.json else sys.stdout
            if stream is not None:
                stream.write(args.prompt)
                stream.flush()
            text, secs = generate(model, ck.vocab, args.prompt, args.tokens, fire_fn,
                                  args.temperature, args.seed, device, stream, args.top_k)
            if stream is not None:
                stream.write("\n")
            result.update({"prompt": args.prompt, "text": text, "tokens": args.tokens,
                           "tokens_per_s": args.tokens / secs if secs else None})
        if path is not None and path.runner is not None:
            result["lava_steps"] = path.lava_steps
            result["lava_steps_per_s"] = path.lava_steps / path.lava_seconds if path.lava_seconds else None
        if path is not None:
            result["spike_stats"] = {str(k): v for k, v in path.stats.items()}
        result["startup_seconds"] = round(startup, 3)
    result["seconds"] = round(time.time() - t_start, 3)
    return result


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m ember_neuro.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--backend", default="lava-sim", help=f"one of {', '.join(BACKENDS)} (default lava-sim)")
    ap.add_argument("--timesteps", "-T", type=int, default=32)
    ap.add_argument("--prompt", default="ROMEO:")
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    ap.add_argument("--top-k", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--eval", action="store_true", help="evaluate on fixed validation batches")
    ap.add_argument("--batches", type=int, default=8,
                    help="random fixed validation batches; 0 = the whole validation split, in order")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--data", help="validation text (default: Shakespeare)")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds before a stalled Lava exchange fails")
    ap.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads (default 1)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of streaming")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code, result = run_guarded(run, args, (CheckpointError, MapError, RunError, ValueError, TimeoutError),
                               "\ninterrupted: Lava stopped")
    if code:
        return code
    if args.json:
        print(json.dumps(result, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))
    elif args.eval:
        print(f"{args.backend} T={args.timesteps}: val loss float {result['val_loss_float']:.5f} "
              f"hybrid {result['val_loss_hybrid']:.5f} (rel {result['rel_delta']:+.2e}), "
              f"top-1 agreement {result['top1_agreement']:.4%}, KL {result['kl_float_hybrid']:.2e}")
    else:
        rate = result.get("tokens_per_s")
        print(f"[{args.backend} T={args.timesteps}: {args.tokens} tokens, "
              f"{rate:.1f} tokens/s]", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
