"""The generation loop, independent of what computes the logits (PyTorch here, onnxruntime in the
INRC bundle), so both decode exactly alike.  Numpy only.

Modes:
  cache  one new token per step (a KV cache for the transformer, rebuilt from the last half
         block when the context reaches the block size; the recurrent state for Liquid Ember,
         never rebuilt)
  whole  the last block of context again for every token (a model whose gates are not causal:
         lif-refractory's column load averages over all queries, so a new token changes every
         earlier gate)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from ember_neuro.errors import BadInput

DECODE_MODES = ("auto", "cache", "whole")


def decode_mode(asked: str = "auto", noncausal: str = "", name: str = "this model") -> str:
    """How generation feeds the model: "cache" (KV cache or CfC state, one new token per step) or
    "whole" (the whole window again for each token).  ``noncausal`` says why a new token changes
    earlier gates ("" when it does not): such a model needs "whole" (lif-refractory's column load
    averages over all queries of the window)."""
    if asked not in DECODE_MODES:
        raise BadInput(f"unknown --decode {asked!r}; use auto, cache or whole")
    if asked == "cache" and noncausal:
        raise BadInput(f"{name} cannot decode with a KV cache: {noncausal}; use --decode whole (its default)")
    if asked == "auto":
        return "whole" if noncausal else "cache"
    return asked


class LogitSource(Protocol):
    """What the loop needs from a model: last-position logits (B, V), one row per sequence, for a
    batch of contexts or one token per sequence.  Contexts of different lengths (a ragged batch)
    only go to a source whose ``ragged`` attribute is true: it pads them and masks the padding,
    with each sequence's own positions."""

    def prefill(self, ids: list[list[int]]) -> Any: ...  # a new cache from these contexts

    def step(self, tokens: list[int]) -> Any: ...  # one token per sequence on the cache

    def window(self, ids: list[list[int]]) -> Any: ...  # no cache


def encode_prompts(vocab: str, prompts: list[str]) -> list[list[int]]:
    """Token ids of each prompt; one-line refusals for empty or foreign prompts."""
    stoi = {c: i for i, c in enumerate(vocab)}
    if not prompts or any(not p for p in prompts):
        raise BadInput("empty prompt: give at least one character with --prompt")
    bad = sorted({c for p in prompts for c in p if c not in stoi})
    if bad:
        raise BadInput(f"prompt characters not in the model's vocabulary: {''.join(bad)!r}")
    return [[stoi[c] for c in p] for p in prompts]


def check_ragged(seqs: list[list[int]], mode: str, recurrent: bool, source: Any) -> None:
    """Refuse (one line) a batch of prompts of different lengths where padding would change what a
    prompt generates, or the source cannot pad."""
    lengths = sorted({len(s) for s in seqs})
    if len(lengths) == 1:
        return
    got = f"got lengths {', '.join(map(str, lengths))}"
    if mode == "whole":
        raise BadInput("prompts of different lengths batch only with a KV cache: whole-window decoding "
                       "(lif-refractory) averages its column load over every query, so padding a shorter "
                       f"prompt would change it; give prompts of equal length ({got})")
    if recurrent:
        raise BadInput("prompts of different lengths do not batch on Liquid Ember: its CfC state would run "
                       f"through the padding; give prompts of equal length ({got})")
    if not getattr(source, "ragged", False):
        raise BadInput(f"this host runs prompts of equal length only ({got}); the package's `run` batches "
                       "ragged prompts")


def greedy(logits: Any) -> int:
    """The first index of the largest logit (numpy's and torch's argmax agree on ties)."""
    return int(np.argmax(np.asarray(logits, dtype=np.float64)))


def numpy_sampler(temperature: float, top_k: int | None, seed: int) -> Callable[[Any], int]:
    """greedy (temperature <= 0) or softmax sampling with a seeded numpy generator (the bundle's;
    the package samples with torch's generator, so only greedy output is comparable)."""
    if temperature <= 0:
        return greedy
    rng = np.random.default_rng(seed)

    def sample(logits: Any) -> int:
        z = np.asarray(logits, np.float64) / temperature
        if top_k:
            z = np.where(z < np.sort(z)[-min(top_k, z.size)], -np.inf, z)
        p = np.exp(z - z.max())
        return int(rng.choice(z.size, p=p / p.sum()))

    return sample


def decode(source: LogitSource, seqs: list[list[int]], tokens: int, block: int, mode: str, recurrent: bool,
           pick: Callable[[Any], int], emit: Callable[[list[int]], None] | None = None) -> list[list[int]]:
    """Generate `tokens` ids after each sequence of `seqs` (extended in place), all in one batch:
    every model call serves every sequence, so the gate windows on the neurons do too.  Sequences
    may differ in length where the source pads (:func:`check_ragged`).  Each sequence's cache is
    rebuilt from its last half block when *it* reaches the block size, as it would be alone; the
    others are re-read whole in the same call (their cache recomputed, not cut).  Rows are picked in
    order, so a seeded sampler gives a batch of one exactly what it gives alone.  Returns the new
    ids per sequence.
    """
    if not seqs:
        raise BadInput("batched generation needs at least one prompt")
    check_ragged(seqs, mode, recurrent, source)
    out: list[list[int]] = [[] for _ in seqs]
    cached: list[int] | None = None  # positions each sequence's cache holds; None: no cache yet
    logits = None
    for n in range(tokens):
        if mode == "whole":
            logits = source.window([s[-block:] for s in seqs])
        elif cached is None or (not recurrent and max(cached) >= block):
            # a new cache reads the last block; later, a full one is cut back to its last half block
            # and the others re-read what they hold (the last `c` ids of their row)
            ctx = [s[-block:] for s in seqs] if cached is None else \
                [s[-(block // 2):] if c >= block else s[-c:] for s, c in zip(seqs, cached, strict=True)]
            logits = source.prefill(ctx)
            cached = [len(c) for c in ctx]
        nxt = [pick(row) for row in logits]
        for s, o, t in zip(seqs, out, nxt, strict=True):
            s.append(t)
            o.append(t)
        if emit is not None:
            emit(nxt)
        if mode == "cache" and n + 1 < tokens:
            logits = source.step(nxt)
            cached = [c + 1 for c in cached]
    return out
