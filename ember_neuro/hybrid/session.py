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
from ember_neuro.cli import torch_threads
from ember_neuro.errors import BadInput
from ember_neuro.hybrid import decoding
from ember_neuro.hybrid.decoding import decode, encode_prompts, greedy
from ember_neuro.hybrid.torch_hook import Hooks, make_hooks

EVAL_SEED = 1234
TEMPORAL_MODES = ("rate", "hard")


class RunError(BadInput):
    """A request that cannot run, with a one-line reason."""


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError("--device cuda requested but CUDA is not available on this machine")
    if name not in ("cpu", "cuda"):
        raise RunError(f"unknown device {name!r}; use cpu or cuda")
    return torch.device(name)


def decode_mode(model: torch.nn.Module, asked: str) -> str:
    """decoding.decode_mode for a loaded model ("cache" or "whole")."""
    return decoding.decode_mode(model.config.variant, asked)


class _TorchSource:
    """Last-position logits of the PyTorch model with its hooks (decoding.LogitSource)."""

    def __init__(self, model, device, kw: dict):
        self.model, self.device, self.kw, self.caches = model, device, kw, None

    def _run(self, ids: list[list[int]], caches=None):
        logits, _ = self.model(torch.tensor(ids, device=self.device), caches=caches, **self.kw)
        return logits[:, -1].float().cpu()

    def prefill(self, ids: list[list[int]]):
        self.caches = [{} for _ in range(self.model.config.n_layer)]
        return self._run(ids, self.caches)

    def step(self, tokens: list[int]):
        return self._run([[t] for t in tokens], self.caches)

    def window(self, ids: list[list[int]]):
        return self._run(ids)


def _sampler(temperature: float, top_k: int | None, seed: int):
    """greedy (temperature <= 0) or softmax sampling with a seeded torch generator."""
    if temperature <= 0:
        return greedy
    g = torch.Generator(device="cpu").manual_seed(seed)

    def sample(logits: torch.Tensor) -> int:
        logits = logits / temperature
        if top_k:
            kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
            logits = logits.masked_fill(logits < kth, -math.inf)
        return int(torch.multinomial(F.softmax(logits, dim=-1), 1, generator=g))

    return sample


@torch.no_grad()
def generate(model, vocab: str, prompts: str | list[str], tokens: int, hooks: Hooks | None,
             temperature: float, seed: int, device, stream=None, top_k: int | None = None,
             decode_as: str = "auto") -> tuple[list[str], float]:
    """Sample `tokens` characters after each prompt, all prompts in one batch (ember_neuro.hybrid.decoding);
    returns (texts, seconds).  A stream gets the text of a single prompt as it is generated."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    seqs = encode_prompts(vocab, prompts)
    mode = decode_mode(model, decode_as)
    source = _TorchSource(model, device, hooks.model_kwargs() if hooks is not None else {})

    def emit(new: list[int]) -> None:
        if stream is not None and len(new) == 1:
            stream.write(vocab[new[0]])
            stream.flush()

    t0 = time.perf_counter()
    out = decode(source, seqs, tokens, model.config.block_size, mode, not model.config.is_transformer,
                 _sampler(temperature, top_k, seed), emit)
    return ["".join(vocab[i] for i in o) for o in out], time.perf_counter() - t0


def mlp_flops(config) -> dict[str, float]:
    """Per token: FLOPs of one layer's MLP and of the whole forward pass at full context.

    Multiply-adds count 2; the MLP is 2 matmuls n -> 4n -> n (16 n^2); attention is the
    QKV and output projections (8 n^2) plus scores and weighted values at a full block
    (4 n T); the head 2 n V.  Only matrix products are counted (NeuroBench-style).
    """
    n, t, v, layers = config.n_embd, config.block_size, config.vocab_size, config.n_layer
    mlp = 16.0 * n * n
    total = layers * (mlp + 8.0 * n * n + 4.0 * n * t) + 2.0 * n * v
    return {"mlp_per_layer": mlp, "forward": total}


@torch.no_grad()
def evaluate(model, batches, hooks: Hooks | None, device, progress: bool = True) -> dict:
    """Float vs hybrid on the same batches: losses, KL, top-1 agreement (+ MLP skips, hard mode)."""
    n_tok = 0
    loss_f = loss_h = kl = agree = 0.0
    hybrid_s = 0.0
    stats: dict = {}
    kw = hooks.model_kwargs(stats) if hooks is not None else {}
    for x, y in tqdm(batches, desc="eval", disable=not progress, dynamic_ncols=True):
        x, y = x.to(device), y.to(device)
        lf, _ = model(x)
        t0 = time.perf_counter()
        lh, _ = model(x, **kw)
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
    out = {"val_loss_float": vf, "val_loss_hybrid": vh, "rel_delta": (vh - vf) / vf,
           "kl_float_hybrid": kl / n_tok, "top1_agreement": agree / n_tok,
           "tokens": n_tok, "tokens_per_s": n_tok / hybrid_s if hybrid_s else None,
           "hybrid_seconds": hybrid_s}
    if stats.get("mlp_total"):
        skip = 1.0 - stats["mlp_run"] / stats["mlp_total"]
        flops = mlp_flops(model.config)
        saved = skip * model.config.n_layer * flops["mlp_per_layer"]
        out.update(mlp_skip_fraction=skip, mlp_flops_saved_per_token=saved,
                   flops_saved_fraction=saved / flops["forward"])
    return out


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
    levels: str | None = None  # the dither's level set (None: uniform, or the saved mapping's)
    mapped: str | None = None  # a folder or file written by `map --out`
    eval: bool = False
    prompt: str | list[str] = "ROMEO:"  # several: one batch (equal lengths), one gate window per layer
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
    decode: str = "auto"  # auto | cache | whole
    temporal: str = "rate"  # temporal-lif's membrane: rate (faithful) | hard (a spike runs the MLP)
    stream: Any = None  # where generated text is streamed (None: not streamed)
    progress: bool = True


def run_hybrid(req: HybridRequest) -> dict[str, Any]:
    """Generate or evaluate with the gate on `req.backend`; returns the result record."""
    from ember_neuro.deploy.mapping import check_window, mapping_for
    from ember_neuro.models.checkpoint import load_checkpoint

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
    if req.batches < 0:
        raise RunError(f"--batches must be >= 0 (0 = the whole validation split), got {req.batches}")
    device = resolve_device(req.device)
    torch_threads(req.threads)
    if req.temporal not in TEMPORAL_MODES:
        raise RunError(f"unknown --temporal mode {req.temporal!r}; use {' or '.join(TEMPORAL_MODES)}")
    ck = load_checkpoint(req.checkpoint)
    if not backend.spiking and not ck.config.has_lif_gate:
        raise RunError(f"no LIF gate to run: {ck.path} is a {ck.config.variant!r} checkpoint")
    model = ck.model.to(device)
    decode_as = decode_mode(model, req.decode)
    net = None
    result: dict[str, Any] = {"backend": req.backend, "variant": ck.config.variant}
    if backend.spiking:
        net = mapping_for(ck, req.mapped, req.timesteps, req.neurons_per_gate, data=req.data,
                          levels=req.levels)
        group = next(iter(net.groups.values()))
        result.update(timesteps=group.timesteps, neurons_per_gate=group.neurons_per_gate,
                      levels=net.options.get("levels", "uniform"),
                      mapped=str(req.mapped) if req.mapped else None)
    else:
        result.update(timesteps=req.timesteps or 32)
    if ck.config.variant == "temporal-lif":
        result["temporal"] = req.temporal
    if not req.eval:
        result["decode"] = decode_as
    block = ck.config.block_size
    if req.eval:
        from ember_neuro.models.data import load_data

        data = load_data(req.data, vocab=ck.vocab)
        if req.batches == 0:
            batches = data.val_sequential(req.batch_size, block)
        else:
            batches = data.val_batches(req.batches, req.batch_size, block, seed=EVAL_SEED)
        slots, token_slots = eval_slots(req.batch_size, block), req.batch_size * block
    else:
        prompts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
        encode_prompts(ck.vocab, prompts)  # refuse before Lava starts
        slots = token_slots = len(prompts) * block  # every prompt's row of a layer in one window
    if net is not None and "hidden" in net.groups:
        slots = token_slots  # one CfC value per neuron per token
    hooks = make_hooks(net, req.backend, slots=slots, timeout_s=req.timeout, membrane=req.temporal,
                       membrane_slots=token_slots)
    with contextlib.ExitStack() as stack:
        t0 = time.perf_counter()
        stack.enter_context(hooks)
        startup = time.perf_counter() - t0
        if req.eval:
            result.update(evaluate(model, batches, hooks, device, progress=req.progress))
            result["batches"] = len(batches)
            result["batch_size"] = req.batch_size
        else:
            stream = req.stream if len(prompts) == 1 else None
            if stream is not None:
                stream.write(prompts[0])
                stream.flush()
            texts, secs = generate(model, ck.vocab, prompts, req.tokens, hooks, req.temperature,
                                   req.seed, device, stream, req.top_k, decode_as)
            if stream is not None:
                stream.write("\n")
            elif req.stream is not None:
                for p, t in zip(prompts, texts, strict=True):
                    req.stream.write(f"{p}{t}\n---\n")
            result.update({"prompt": prompts[0] if len(prompts) == 1 else prompts, "text": texts[0],
                           "tokens": req.tokens, "batch": len(prompts),
                           "tokens_per_s": len(prompts) * req.tokens / secs if secs else None})
            if len(prompts) > 1:
                result["texts"] = texts
        if hooks.persistent:
            result["lava_steps"] = hooks.lava_steps
            result["lava_steps_per_s"] = hooks.lava_steps / hooks.lava_seconds if hooks.lava_seconds else None
        if hooks.paths:
            result["spike_stats"] = hooks.stats()
            result["saturated_inputs"] = sum(p.saturated for p in hooks.paths)
        result["startup_seconds"] = round(startup, 3)
    result["seconds"] = round(time.time() - t_start, 3)
    return result
