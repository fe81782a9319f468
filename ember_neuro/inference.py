"""Hybrid inference with the spiking gate in the loop: generation and evaluation (library).

The host model runs in PyTorch; every attention probability's gate `fire` runs
on a spiking backend through ember_neuro.hybrid.SpikingGatePath.  This is what
``python -m ember_neuro.run`` calls; the benchmarks and examples call it too.

Generation uses a KV cache (one query row per new token); when the context
reaches the model's block size the cache is rebuilt from the last half block.
Evaluation uses a fixed set of validation batches (seeded), the same for every
backend and every run, and compares against the float model on the same batches.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ember_neuro.backends import registry
from ember_neuro.errors import BadInput
from ember_neuro.hybrid import make_fire_fn

EVAL_SEED = 1234


class RunError(BadInput):
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




@dataclass
class HybridRequest:
    """What ``run`` was asked to do (the CLI's options, validated by :func:`run_hybrid`)."""

    checkpoint: str
    backend: str = "lava-sim"
    timesteps: int | None = None  # None: 32, or the saved mapping's
    neurons_per_gate: int | None = None  # None: 1, or the saved mapping's
    mapped: str | None = None  # a folder or file written by `map --out`
    eval: bool = False
    prompt: str = "ROMEO:"
    tokens: int = 200
    seed: int = 1337
    temperature: float = 0.8
    top_k: int | None = None
    device: str = "cpu"
    batches: int = 8
    batch_size: int = 8
    data: str | None = None
    timeout: float = 60.0
    threads: int = 1
    stream: Any = None  # where generated text is streamed (None: not streamed)
    progress: bool = True


def run_hybrid(req: HybridRequest) -> dict[str, Any]:
    """Generate or evaluate with the gate on `req.backend`; returns the result record."""
    from ember_neuro.checkpoint import load_checkpoint
    from ember_neuro.mapping import check_window, mapping_for

    t_start = time.time()
    usable = ("float", *registry.names(spiking=True, hybrid=True))
    backend = registry.require(req.backend)
    if backend.name not in usable:
        raise RunError(f"backend {req.backend!r} cannot run hybrid inference; choose one of "
                       f"{', '.join(usable)}")
    check_window(32 if req.timesteps is None else req.timesteps,
                 1 if req.neurons_per_gate is None else req.neurons_per_gate)
    if req.tokens < 1:
        raise RunError(f"--tokens must be >= 1, got {req.tokens}")
    if req.threads < 1:
        raise RunError(f"--threads must be >= 1, got {req.threads}")
    if req.batches < 0:
        raise RunError(f"--batches must be >= 0 (0 = the whole validation split), got {req.batches}")
    device = resolve_device(req.device)
    # One intra-op thread: the per-token tensors are tiny, and on a 2-core machine
    # OpenMP workers spinning against Lava's processes (or any other load) made
    # each op up to 100x slower.
    torch.set_num_threads(req.threads)
    ck = load_checkpoint(req.checkpoint)
    if not ck.config.is_transformer:
        raise RunError(f"{ck.config.variant!r} is Liquid Ember; hybrid runs cover Transformer Ember")
    if not backend.spiking and not ck.config.has_lif_gate:
        raise RunError(f"no LIF gate to run: {ck.path} is a {ck.config.variant!r} checkpoint")
    model = ck.model.to(device)
    group = None
    result: dict[str, Any] = {"backend": req.backend}
    if backend.spiking:
        net = mapping_for(ck, req.mapped, req.timesteps, req.neurons_per_gate)
        group = net.group("attention")
        result.update(timesteps=group.timesteps, neurons_per_gate=group.neurons_per_gate,
                      mapped=str(req.mapped) if req.mapped else None)
    else:
        result.update(timesteps=req.timesteps or 32)
    if req.eval:
        from ember_neuro.data import load_data

        data = load_data(req.data, vocab=ck.vocab)
        if req.batches == 0:
            batches = data.val_sequential(req.batch_size, ck.config.block_size)
        else:
            batches = data.val_batches(req.batches, req.batch_size, ck.config.block_size, seed=EVAL_SEED)
        slots = eval_slots(req.batch_size, ck.config.block_size)
    else:
        slots = ck.config.block_size
    fire_fn, path = make_fire_fn(group, req.backend, slots=slots, timeout_s=req.timeout)
    with contextlib.ExitStack() as stack:
        startup = 0.0
        if path is not None:
            t0 = time.perf_counter()
            stack.enter_context(path)
            startup = time.perf_counter() - t0
        if req.eval:
            result.update(evaluate(model, batches, fire_fn, device, progress=req.progress))
            result["batches"] = len(batches)
            result["batch_size"] = req.batch_size
        else:
            if req.stream is not None:
                req.stream.write(req.prompt)
                req.stream.flush()
            text, secs = generate(model, ck.vocab, req.prompt, req.tokens, fire_fn, req.temperature,
                                  req.seed, device, req.stream, req.top_k)
            if req.stream is not None:
                req.stream.write("\n")
            result.update({"prompt": req.prompt, "text": text, "tokens": req.tokens,
                           "tokens_per_s": req.tokens / secs if secs else None})
        if path is not None and path.runner is not None:
            result["lava_steps"] = path.lava_steps
            result["lava_steps_per_s"] = path.lava_steps / path.lava_seconds if path.lava_seconds else None
        if path is not None:
            result["spike_stats"] = {str(k): v for k, v in path.stats.items()}
        result["startup_seconds"] = round(startup, 3)
    result["seconds"] = round(time.time() - t_start, 3)
    return result
