"""Hybrid inference with the spiking gates in the loop: generation and evaluation (library).

The host model runs in PyTorch; every gate's fire runs on a spiking backend through the
model's hook (hybrid/torch_hook.py over hybrid/paths.py).  This is what ``python -m
ember_neuro.run`` calls; the benchmarks and examples call it too.  One run is three steps:

    prepare(Deployment)                 checks, the checkpoint and its mapping (each once)
    generate(...) / evaluate(...)       with the gate paths open on the backend
    run_hybrid(...)                     both, and the record ``run --json`` prints

Generation uses a KV cache (one query row per new token; Liquid Ember carries its CfC state);
when the context reaches the model's block size the cache is rebuilt from the last half block.
A variant whose gates are not causal (lif-refractory) decodes whole windows instead.
Evaluation uses a fixed set of validation batches (seeded), the same for every backend and
every run, and compares against the float model on the same batches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ember_neuro.backends import registry
from ember_neuro.cli import torch_threads
from ember_neuro.deploy.mapping import Prepared, Window, mapping_for, model_target, prepare
from ember_neuro.errors import BadInput
from ember_neuro.hybrid import decoding
from ember_neuro.hybrid.decoding import decode, encode_prompts, greedy
from ember_neuro.hybrid.paths import GatePaths
from ember_neuro.hybrid.torch_hook import TorchHook
from ember_neuro.kinds import registry as kinds
from ember_neuro.mappers import MappedNetwork
from ember_neuro.models.build import resolve_device

EVAL_SEED = 1234
TEMPORAL_MODES = ("rate", "hard")


class RunError(BadInput):
    """A request that cannot run, with a one-line reason."""


def temporal_mode(asked: str | None, config: Any = None) -> str | None:
    """The ``--temporal`` mode for a checkpoint: as asked, or by default its membrane's trained form
    (a hard-spike model: "hard"; otherwise "rate"); a one-line RunError where it cannot be."""
    if asked is not None and asked not in TEMPORAL_MODES:
        raise RunError(f"unknown --temporal mode {asked!r}; use {' or '.join(TEMPORAL_MODES)}")
    if config is None:  # only the name checked (before anything loads)
        return asked
    hard = getattr(config, "spike", "soft") == "hard"
    if asked is None:
        return "hard" if hard else "rate"
    if asked == "hard" and not any(k.hard_spike for k in kinds.get(config.variant).kinds):
        raise RunError(f"--temporal hard needs a temporal-lif checkpoint (a membrane whose spike gates "
                       f"the MLP); this one is {config.variant}")
    if asked == "rate" and hard:
        raise RunError("--temporal rate: this checkpoint's membrane was trained with hard spikes "
                       "(spike 'hard'), so its fire has no rate form; use --temporal hard")
    return asked


@dataclass(frozen=True)
class Deployment:
    """Where the gates run and how they were mapped (run's options; validate and export share them)."""

    checkpoint: str
    backend: str = "lava-sim"
    timesteps: int | None = None  # None: chosen (deploy/faithful.py), or the saved mapping's
    neurons_per_gate: int | None = None  # None: chosen, or the saved mapping's
    levels: str | None = None  # the dither's level set (None: auto, or the saved mapping's)
    min_top1: float | None = None  # percent: the model-level target of the window search (None: 99.8)
    max_rel_delta: float | None = None  # percent (None: 0.1)
    mapped: str | None = None  # a folder or file written by `map --out`
    data: str | None = None
    device: str = "cpu"
    timeout: float = 60.0
    threads: int = 1
    temporal: str | None = None  # temporal-lif's membrane: rate | hard (None: the checkpoint's trained form)
    bridge: str | None = None  # Lava's network: None / "chip-side" (default) or "per-step" (for comparison)

    @property
    def window(self) -> Window:
        return Window(self.timesteps, self.neurons_per_gate, self.levels)


@dataclass(frozen=True)
class Generation:
    prompts: tuple[str, ...] = ("ROMEO:",)  # several: one batch (any lengths), one gate window per layer
    tokens: int = 200
    seed: int = 1337
    temperature: float = 0.8
    top_k: int | None = None
    decode: str = "auto"  # auto | cache | whole


@dataclass(frozen=True)
class Evaluation:
    batches: int = 8  # 0: the whole validation split, in order
    batch_size: int = 8


@dataclass
class Session:
    """A prepared run: the model on its device, and the mapping when the backend spikes."""

    dep: Deployment
    prep: Prepared
    device: torch.device
    net: MappedNetwork | None
    backend: registry.Backend  # checked once, in prepare_session

    @property
    def model(self) -> torch.nn.Module:
        return self.prep.ck.model

    def paths(self, batch: int, whole: bool) -> GatePaths | None:
        """Gate paths for batches of `batch` sequences (``whole``: full windows, as in evaluation)."""
        if self.net is None:
            return None
        block = self.prep.ck.config.block_size
        slots = {k.hook: (k.slots or (lambda b, t, w: b * t))(batch, block,
                                                              whole) for k in self.prep.variant.kinds}
        return GatePaths.for_run(self.net, self.backend, slots, self.dep.timeout, self.dep.temporal,
                                 self.dep.bridge)


def prepare_session(dep: Deployment, check: Any = None) -> Session:
    """Every check first (one-line refusals before anything starts), then the checkpoint and mapping.
    ``check(prep)``: a caller's refusals that need the checkpoint (its vocabulary), made before the
    mapping (which may search windows)."""
    usable = registry.names(hybrid=True)
    backend = registry.require(dep.backend)
    if backend.name not in usable:
        raise RunError(f"backend {dep.backend!r} cannot run hybrid inference; choose one of "
                       f"{', '.join(usable)}")
    temporal_mode(dep.temporal)  # an unknown mode is refused before anything loads
    dep.window.check()  # refuse a bad window before loading anything
    target = model_target(dep.min_top1, dep.max_rel_delta)
    device = resolve_device(dep.device)
    torch_threads(dep.threads)
    prep = prepare(dep.checkpoint, dep.data)
    dep = dataclasses.replace(dep, temporal=temporal_mode(dep.temporal, prep.ck.config))
    if check is not None:
        check(prep)
    net = mapping_for(prep, dep.window, dep.mapped, target) if backend.spiking else None
    prep.ck.model.to(device)
    return Session(dep, prep, device, net, backend)


def decode_mode(model: torch.nn.Module, asked: str) -> str:
    """decoding.decode_mode for a loaded model ("cache" or "whole")."""
    variant = kinds.get(model.config.variant)
    return decoding.decode_mode(asked, variant.noncausal, variant.name)


class _TorchSource:
    """Last-position logits of the PyTorch model with its hook (decoding.LogitSource).  A ragged
    batch is left-padded (token 0) and masked, each row with its own positions (transformers)."""

    def __init__(self, model, device, hook):
        self.model, self.device, self.hook, self.caches, self.pad = model, device, hook, None, None
        self.ragged = model.config.is_transformer

    def _run(self, ids: list[list[int]], caches=None):
        logits, _ = self.model(torch.tensor(ids, device=self.device), hook=self.hook, caches=caches,
                               **({} if self.pad is None else {"pad": self.pad}))
        return logits[:, -1].float().cpu()

    def prefill(self, ids: list[list[int]]):
        self.caches = [{} for _ in range(self.model.config.n_layer)]
        width = max(len(s) for s in ids)
        pad = [width - len(s) for s in ids]
        self.pad = torch.tensor(pad, device=self.device) if any(pad) else None
        return self._run([[0] * p + list(s) for p, s in zip(pad, ids, strict=True)], self.caches)

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
def generate(model, vocab: str, prompts: str | list[str], tokens: int, hook, temperature: float, seed: int,
             device, stream=None, top_k: int | None = None,
             decode_as: str = "auto") -> tuple[list[str], float]:
    """Sample `tokens` characters after each prompt, all prompts in one batch (hybrid/decoding.py);
    returns (texts, seconds).  ``hook``: the model's gate hook (None: the trained gates).  A stream
    gets the text of a single prompt as it is generated."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    seqs = encode_prompts(vocab, prompts)
    mode = decode_mode(model, decode_as)
    source = _TorchSource(model, device, hook)

    def emit(new: list[int]) -> None:
        if stream is not None and len(new) == 1:
            stream.write(vocab[new[0]])
            stream.flush()

    t0 = time.perf_counter()
    out = decode(source, seqs, tokens, model.config.block_size, mode, not model.config.is_transformer,
                 _sampler(temperature, top_k, seed), emit)
    return ["".join(vocab[i] for i in o) for o in out], time.perf_counter() - t0


@torch.no_grad()
def evaluate(model, batches, hook, device, progress: bool = True, reference: list | None = None) -> dict:
    """Float vs hybrid on the same batches: losses, KL, top-1 agreement.  ``reference``: the float
    model's logits of each batch, if already computed (the window search scores several windows)."""
    n_tok = 0
    loss_f = loss_h = kl = agree = right_f = right_h = 0.0
    hybrid_s = 0.0
    for i, (x, y) in enumerate(tqdm(batches, desc="eval", disable=not progress, dynamic_ncols=True)):
        x, y = x.to(device), y.to(device)
        lf = model(x)[0] if reference is None else reference[i].to(device)
        t0 = time.perf_counter()
        lh, _ = model(x, hook=hook)
        hybrid_s += time.perf_counter() - t0
        lf, lh = lf.double().reshape(-1, lf.size(-1)), lh.double().reshape(-1, lh.size(-1))
        yy = y.flatten()  # next tokens, or an audio model's clip classes
        loss_f += float(F.cross_entropy(lf, yy, reduction="sum"))
        loss_h += float(F.cross_entropy(lh, yy, reduction="sum"))
        lpf, lph = F.log_softmax(lf, -1), F.log_softmax(lh, -1)
        kl += float((lpf.exp() * (lpf - lph)).sum())
        agree += float((lf.argmax(-1) == lh.argmax(-1)).sum())
        right_f += float((lf.argmax(-1) == yy).sum())
        right_h += float((lh.argmax(-1) == yy).sum())
        n_tok += yy.numel()
    vf, vh = loss_f / n_tok, loss_h / n_tok
    return {"val_loss_float": vf, "val_loss_hybrid": vh, "rel_delta": (vh - vf) / vf,
            "kl_float_hybrid": kl / n_tok, "top1_agreement": agree / n_tok,
            "accuracy_float": right_f / n_tok, "accuracy_hybrid": right_h / n_tok,
            "tokens": n_tok, "tokens_per_s": n_tok / hybrid_s if hybrid_s else None,
            "hybrid_seconds": hybrid_s}


def _spike_report(session: Session, paths: GatePaths | None) -> dict[str, Any]:
    """What the gate paths did: Lava steps, spikes per layer, clipped inputs, each kind's metrics."""
    if paths is None:
        return {}
    out: dict[str, Any] = {}
    if paths.persistent:
        out["lava_steps"] = paths.lava_steps
        out["lava_steps_per_s"] = paths.lava_steps / paths.lava_seconds if paths.lava_seconds else None
        out["designs"] = sorted({p.design(k) for p in paths.paths.values() for k in p.runners})
        out["exchanges"] = paths.exchanges()  # counted at the bridge processes, whole run
        out["exchanges_per_token"] = paths.exchanges_per_call()
    out["spike_stats"] = paths.stats()
    out["saturated_inputs"] = paths.saturated
    for kind in session.prep.variant.kinds:
        if kind.metrics is not None and kind.hook in paths.paths:
            out.update(kind.metrics(paths.paths[kind.hook].stats, session.prep.ck.config))
    return out


def run_hybrid(dep: Deployment, gen: Generation | None = None, ev: Evaluation | None = None,
               stream: Any = None, progress: bool = True, cls: Any = None) -> dict[str, Any]:
    """Generate (``gen``), evaluate (``ev``) or, for an audio model, classify wav files (``cls``, a
    hybrid.keyword.Classification) with the gates on ``dep.backend``; the result record."""
    t_start = time.time()
    if ev is None and gen is None and cls is None:
        gen = Generation()
    if gen is not None and gen.tokens < 1:
        raise RunError(f"--tokens must be >= 1, got {gen.tokens}")
    if ev is not None and ev.batches < 0:
        raise RunError(f"--batches must be >= 0 (0 = the whole validation split), got {ev.batches}")
    def refuse_early(prep: Prepared) -> None:
        if prep.ck.config.is_classifier and gen is not None:
            raise RunError(f"{prep.ck.path} is a keyword spotter ({prep.ck.config.variant}): it classifies "
                           "clips, it does not generate; give --wav FILE or --eval")
        if cls is not None and not prep.ck.config.is_classifier:
            raise RunError(f"--wav needs an audio model; {prep.ck.path} is a {prep.ck.config.variant} "
                           "checkpoint (a text model)")
        if cls is not None:
            from ember_neuro.hybrid.keyword import read_clips

            clips.append(read_clips(cls.wavs, prep.ck.config))  # every file checked before Lava starts
        if gen is not None:
            decode_mode(prep.ck.model, gen.decode)
            encode_prompts(prep.ck.vocab, list(gen.prompts))

    clips: list = []
    session = prepare_session(dep, refuse_early)
    ck, model = session.prep.ck, session.model
    if session.net is None and not ck.config.has_lif_gate:
        raise RunError(f"no LIF gate to run: {ck.path} is a {ck.config.variant!r} checkpoint")
    result: dict[str, Any] = {"backend": dep.backend, "variant": ck.config.variant}
    if session.net is not None:
        o = session.net.mapping_options
        result.update(timesteps=o.timesteps, neurons_per_gate=o.neurons_per_gate, levels=o.levels,
                      mapped=dep.mapped)
        if "window_choice" in session.net.options:
            result["window_choice"] = session.net.options["window_choice"]
    else:
        result["timesteps"] = dep.timesteps
    if session.net is not None and session.net.alternatives:
        result["temporal"] = session.dep.temporal
    if ev is not None:
        result.update(evaluate_session(session, ev, progress=progress))
        result["seconds"] = round(time.time() - t_start, 3)
        return result
    if cls is not None:
        if cls.batch_size < 1:
            raise RunError(f"--batch-size must be >= 1, got {cls.batch_size}")
        paths = session.paths(min(len(cls.wavs), cls.batch_size), whole=not cls.stream)
    else:
        result["decode"] = decode_mode(model, gen.decode)
        encode_prompts(ck.vocab, list(gen.prompts))  # refuse before Lava starts
        paths = session.paths(len(gen.prompts), whole=False)
    hook = TorchHook(paths) if paths is not None else None
    with _opened(paths) as startup:
        if cls is not None:
            result.update(_classify(session, cls, clips[0], hook))
        else:
            result.update(_generate(session, gen, hook, stream))
        result.update(_spike_report(session, paths))
    result["startup_seconds"] = round(startup[0], 3)
    result["seconds"] = round(time.time() - t_start, 3)
    return result


@contextlib.contextmanager
def _opened(paths: GatePaths | None) -> Iterator[list[float]]:
    """The gate paths open (their backend started, stopped on leaving); yields [seconds it took]."""
    with contextlib.ExitStack() as stack:
        t0 = time.perf_counter()
        if paths is not None:
            stack.enter_context(paths)
        yield [time.perf_counter() - t0]


def evaluate_session(session: Session, ev: Evaluation, progress: bool = True,
                     reference: list | None = None) -> dict[str, Any]:
    """``run --eval``'s record for a prepared session: float vs hybrid on the fixed evaluation batches
    (an audio model: the testing split's clips) with the gate paths open, and what the paths did.
    ``reference``: the float model's logits of those batches, if already computed -- the sweep's
    workers keep them per checkpoint, since every cell of a checkpoint scores the same batches."""
    ck = session.prep.ck
    batches = session.prep.text.evaluation(ev.batches, ev.batch_size, ck.config.block_size, seed=EVAL_SEED)
    paths = session.paths(ev.batch_size, whole=True)
    with _opened(paths) as startup:
        out = evaluate(session.model, batches, TorchHook(paths) if paths is not None else None,
                       session.device, progress=progress, reference=reference)
        out.update(batches=len(batches), batch_size=ev.batch_size)
        if ck.config.is_classifier:
            out.update(clips=out["tokens"], split="testing", data=session.prep.text.source)
        out.update(_spike_report(session, paths))
    out["startup_seconds"] = round(startup[0], 3)
    return out


def _classify(session: Session, cls: Any, waves: Any, hook: Any) -> dict[str, Any]:
    """Each wav file's class from the hybrid model, whole or streamed (then also whole, to compare)."""
    from ember_neuro.audio.decisions import decisions
    from ember_neuro.hybrid import keyword

    labels, model = session.prep.ck.labels, session.model
    t0 = time.perf_counter()
    if not cls.stream:
        logits = torch.cat([keyword.classify(model, w, hook) for w in cls.batches(waves)])
        return {"clips": decisions(logits, labels, cls.wavs), "mode": "whole",
                "clips_per_s": len(waves) / (time.perf_counter() - t0)}
    streamed = torch.cat([keyword.stream(model, w, hook, cls.chunk) for w in cls.batches(waves)])
    secs = time.perf_counter() - t0
    whole = torch.cat([keyword.classify(model, w, hook) for w in cls.batches(waves)]).argmax(-1)
    out = decisions(streamed, labels, cls.wavs)
    for record, k in zip(out, whole.tolist(), strict=True):
        record["whole_clip_label"] = labels[k]
    return {"clips": out, "mode": "stream", "chunk_samples": cls.chunk, "stream_seconds": round(secs, 3),
            "stream_equals_whole": all(r["label"] == r["whole_clip_label"] for r in out)}


def _generate(session: Session, gen: Generation, hook: Any, stream: Any) -> dict[str, Any]:
    ck, prompts = session.prep.ck, list(gen.prompts)
    live = stream if len(prompts) == 1 else None
    if live is not None:
        live.write(prompts[0])
        live.flush()
    texts, secs = generate(session.model, ck.vocab, prompts, gen.tokens, hook, gen.temperature, gen.seed,
                           session.device, live, gen.top_k, gen.decode)
    if live is not None:
        live.write("\n")
    elif stream is not None:
        for p, t in zip(prompts, texts, strict=True):
            stream.write(f"{p}{t}\n---\n")
    out = {"prompt": prompts[0] if len(prompts) == 1 else prompts, "text": texts[0], "tokens": gen.tokens,
           "batch": len(prompts), "tokens_per_s": len(prompts) * gen.tokens / secs if secs else None}
    if len(prompts) > 1:
        out["texts"] = texts
    return out
