"""The default window: faithful at the model level, chosen on calibration text.

Why: the rate code's per-gate error says little about the model -- on strong gates N = 1 at
T = 32 keeps every gate within 1/(2T) yet agrees with the float model on only 93 % of next
tokens.  What a user needs is the model's answer, so when no window is pinned ``map``, ``run``,
``validate`` and ``export inrc`` pick it from a model-level target:

    the fewest timesteps T within one Loihi 2 chip's neurons, then the fewest neurons per gate N,
    whose hybrid model agrees with the float model on >= 99.8 % of next tokens (top-1) with a
    validation-loss change |rel. delta| <= 0.1 %  (SPEC section 4's bar at T = 32)

measured on CALIBRATION_TOKENS tokens of validation text (seeded windows, not the ones ``run
--eval`` scores) with the gates on the emulator, which is bit-exact with Lava's fixed point.

The search walks power-of-two ladders and evaluates a few candidates, not a sweep: a window's
fidelity grows with its N*T levels (docs/mapping.md), so T doubles, each at the most N the chip
holds, until the target is met; then N is bisected at that T.  ``-T`` alone pins T (N chosen),
``-N`` alone pins N (T chosen), both pin the window; ``--levels`` pins the level set (default
auto).  A choice is cached per checkpoint, target and text (``EMBER_NEURO_CACHE``, default
``~/.cache/ember-neuro``), so the commands after the first reuse it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ember_neuro.errors import BadInput
from ember_neuro.mappers.gate import MAX_LEVELS, MAX_TIMESTEPS
from ember_neuro.mappers.loihi import NEURONS_PER_CHIP, NEURONS_PER_CORE

TOP1 = 0.998  # SPEC section 4, the bar at T = 32
REL_DELTA = 0.001
CALIBRATION_TOKENS = 16384  # next-token predictions scored per candidate
CALIBRATION_SEED = 4321  # windows of validation text other than run --eval's (seed 1234)
BATCH = 8
SEARCH_LEVELS = "auto"
SEARCH_VERSION = 1  # bump when the search or the mapping changes what it would choose


class TargetUnreachable(BadInput):
    """A model-level target no window within one chip meets; the message names the best reachable."""


@dataclass(frozen=True)
class ModelTarget:
    """The model-level bar a window must meet against the float model."""

    top1: float = TOP1
    rel_delta: float = REL_DELTA

    def __post_init__(self) -> None:
        if not 0 < self.top1 <= 1:
            raise BadInput(f"--min-top1 must be a percentage in (0, 100], got {self.top1 * 100:g}")
        if not 0 <= self.rel_delta < 1:
            raise BadInput(f"--max-rel-delta must be a percentage in [0, 100), got {self.rel_delta * 100:g}")

    def met(self, score: Score) -> bool:
        return score.top1 >= self.top1 and abs(score.rel_delta) <= self.rel_delta

    def describe(self) -> str:
        return f"top-1 >= {self.top1:.2%} and |rel. delta| <= {self.rel_delta:.2%}"


@dataclass(frozen=True)
class Score:
    """A candidate window's hybrid model against the float model on the calibration text."""

    timesteps: int
    neurons_per_gate: int
    top1: float
    rel_delta: float

    def describe(self) -> str:
        return (f"top-1 {self.top1:.3%}, rel. delta {self.rel_delta:+.2e} "
                f"(T={self.timesteps}, N={self.neurons_per_gate})")


def powers_of_two(upto: int) -> list[int]:
    """1, 2, 4, ... <= upto (at least [1])."""
    return [2**k for k in range(max(0, int(math.floor(math.log2(max(1, upto))))) + 1)]


def search(score: Callable[[int, int], Score], n_cap: Callable[[int], int], target: ModelTarget,
           timesteps: int | None = None, neurons_per_gate: int | None = None) -> tuple[Score, list[Score]]:
    """(the chosen window's score, every score measured), on power-of-two ladders.

    ``n_cap(T)``: the most neurons per gate one chip holds at T (>= 1).  Pinned T: the fewest N
    meeting the target at that T; pinned N: the fewest T; neither: the fewest T (each at the most N
    it holds, doubling T), then the fewest N at it.  TargetUnreachable where nothing within the
    chip meets the target.
    """
    tried: dict[tuple[int, int], Score] = {}

    def ok(t: int, n: int) -> bool:
        if (t, n) not in tried:
            tried[(t, n)] = score(t, n)
        return target.met(tried[(t, n)])

    def unreachable(where: str) -> TargetUnreachable:
        best = max(tried.values(),  # ties: the largest window
                   key=lambda s: (s.top1, -abs(s.rel_delta), s.timesteps * s.neurons_per_gate))
        return TargetUnreachable(f"the target {target.describe()} is out of reach {where}: the best "
                                 f"reachable is {best.describe()}; lower it (--min-top1, --max-rel-delta) "
                                 "or pin a window (-T, -N)")

    def fewest_t(n_of: Callable[[int], int]) -> int:
        ladder = [t for t in powers_of_two(MAX_TIMESTEPS) if n_of(t) * t <= MAX_LEVELS or t == 1]
        for t in ladder:
            if ok(t, n_of(t)):
                return t
            if n_of(t) * t * 2 > MAX_LEVELS:  # no more levels to gain
                break
        raise unreachable(f"within one Loihi 2 chip ({NEURONS_PER_CHIP:,} neurons) and N*T <= {MAX_LEVELS}")

    def fewest_n(t: int) -> int:
        ladder = powers_of_two(min(n_cap(t), MAX_LEVELS // t))
        if not ok(t, ladder[-1]):
            raise unreachable(f"at T = {t} within one Loihi 2 chip ({NEURONS_PER_CHIP:,} neurons)")
        lo, hi = -1, len(ladder) - 1  # ladder[hi] meets; ladder[lo] does not (or lo = -1)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if ok(t, ladder[mid]) else (mid, hi)
        return ladder[hi]

    if timesteps is not None and neurons_per_gate is not None:
        raise BadInput("a pinned window (-T and -N) is not searched")
    if neurons_per_gate is not None:
        if neurons_per_gate > n_cap(1):
            raise TargetUnreachable(f"-N {neurons_per_gate} does not fit one Loihi 2 chip "
                                    f"({NEURONS_PER_CHIP:,} neurons): this model holds at most "
                                    f"N = {n_cap(1)}")
        t = fewest_t(lambda _t: neurons_per_gate)
        return tried[(t, neurons_per_gate)], list(tried.values())
    if timesteps is None:
        timesteps = fewest_t(lambda t: powers_of_two(min(n_cap(t), MAX_LEVELS // t))[-1])
    n = fewest_n(timesteps)
    return tried[(timesteps, n)], list(tried.values())


@dataclass
class WindowChoice:
    """What the default search chose, and why: printed, saved in the mapping, in ``--json``."""

    timesteps: int
    neurons_per_gate: int
    levels: str
    target: dict[str, float]
    measured: dict[str, float]
    neurons: int  # Loihi 2 neurons of the generation layout (block_size slots per unit, N each)
    pinned: dict[str, Any]
    tried: list[dict[str, Any]] = field(default_factory=list)
    calibration_tokens: int = 0
    calibration_unit: str = "tokens of calibration text"  # audio: "clips of the validation split"
    seconds: float = 0.0
    cached: bool = False

    @property
    def cores(self) -> int:
        return math.ceil(self.neurons / NEURONS_PER_CORE)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cores": self.cores, "rule": self.rule()}

    def rule(self) -> str:
        free = [name for name, key in (("timesteps", "timesteps"), ("neurons per gate", "neurons_per_gate"))
                if self.pinned.get(key) is None]
        what = "the fewest " + ", then the fewest ".join(free) if free else "pinned"
        t = ModelTarget(self.target["top1"], self.target["rel_delta"])
        return (f"{what} within one Loihi 2 chip whose hybrid model meets {t.describe()} on "
                f"{self.calibration_tokens:,} {self.calibration_unit}")

    def line(self) -> str:
        how = "cached choice" if self.cached else f"{len(self.tried)} windows tried, {self.seconds:.1f} s"
        return (f"window T={self.timesteps}, N={self.neurons_per_gate}, {self.levels} levels: {self.rule()} "
                f"(measured top-1 {self.measured['top1']:.3%}, rel. delta {self.measured['rel_delta']:+.1e}; "
                f"{self.neurons:,} neurons, {self.cores} cores; {how}; pin -T/-N/--levels to override)")


def cache_dir() -> Path:
    """Where choices are kept: $EMBER_NEURO_WINDOWS, else the package cache's windows/ (beside the
    downloaded corpus, models/data.py)."""
    from ember_neuro.models.data import cache_dir as package_cache

    return Path(os.environ.get("EMBER_NEURO_WINDOWS") or package_cache() / "windows")


def cache_key(sha256: str, target: ModelTarget, pinned: dict[str, Any], text_source: str,
              temporal: str | None) -> str:
    """One file per checkpoint, target, pinned part, text and membrane mode (and search version)."""
    spec = json.dumps({"v": SEARCH_VERSION, "target": asdict(target), "pinned": pinned, "text": text_source,
                       "temporal": temporal, "tokens": CALIBRATION_TOKENS, "seed": CALIBRATION_SEED},
                      sort_keys=True)
    return f"{sha256[:16]}-{hashlib.sha256(spec.encode()).hexdigest()[:16]}"


def _read_cache(key: str) -> WindowChoice | None:
    """The cached choice, or None (absent, unreadable, or not a window: searched again)."""
    from ember_neuro.mappers.gate import check_window

    path = cache_dir() / f"{key}.json"
    try:
        choice = WindowChoice(**{k: v for k, v in json.loads(path.read_text()).items()
                                 if k in WindowChoice.__dataclass_fields__})
        check_window(choice.timesteps, choice.neurons_per_gate)
        float(choice.measured["top1"]), float(choice.measured["rel_delta"])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return choice


def _write_cache(key: str, choice: WindowChoice) -> None:
    from ember_neuro.atomic import atomic_write_bytes

    try:
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        data = json.dumps(asdict(choice), indent=1).encode()
        atomic_write_bytes(folder / f"{key}.json", lambda tmp: Path(tmp).write_bytes(data))
    except OSError as exc:  # a read-only home: the choice still holds, it is just not reused
        print(f"warning: the window choice was not cached ({exc})", file=sys.stderr)


def choose(prep: Any, pinned: dict[str, Any], target: ModelTarget | None = None,
           temporal: str | None = None, progress: bool = True) -> WindowChoice:
    """The default window for a prepared checkpoint (deploy.mapping.Prepared); see the module
    docstring.  ``pinned``: timesteps / neurons_per_gate / levels given by the user (None: free)."""
    from ember_neuro.deploy import budget
    from ember_neuro.mappers import MappingOptions

    target = target or ModelTarget()
    levels = pinned.get("levels") or SEARCH_LEVELS
    key = cache_key(prep.ck.sha256, target, pinned, prep.text.source, temporal)
    cached = _read_cache(key)
    if cached is not None:
        cached.cached = True
        return cached
    t0 = time.time()
    shape = prep.groups(MappingOptions(timesteps=1, neurons_per_gate=1, levels=levels))
    block = prep.ck.config.block_size
    per_n = budget.deployed_neurons(shape, block, 1)
    fixed = budget.deployed_neurons(shape, block, 0)  # one neuron per slot whatever N (hard membrane)

    def n_cap(_t: int) -> int:
        return max(1, (NEURONS_PER_CHIP - fixed) // max(1, per_n - fixed))

    scorer = CalibrationScorer(prep, levels, temporal)

    def score(t: int, n: int) -> Score:
        s = scorer(t, n)
        if progress:
            print(f"  window search: T={t}, N={n}: top-1 {s.top1:.3%}, rel. delta {s.rel_delta:+.1e}"
                  f"{'  meets' if target.met(s) else ''}", file=sys.stderr)
        return s

    best, tried = search(score, n_cap, target, pinned.get("timesteps"), pinned.get("neurons_per_gate"))
    choice = WindowChoice(best.timesteps, best.neurons_per_gate, levels, asdict(target),
                          {"top1": best.top1, "rel_delta": best.rel_delta},
                          budget.deployed_neurons(shape, block, best.neurons_per_gate),
                          dict(pinned), [asdict(s) for s in tried], scorer.tokens, scorer.unit,
                          round(time.time() - t0, 2))
    _write_cache(key, choice)
    return choice


class CalibrationScorer:
    """Scores windows on fixed calibration batches: the float logits computed once, the hybrid
    model's per candidate with every gate on the emulator."""

    def __init__(self, prep: Any, levels: str, temporal: str | None):
        import torch

        self.prep, self.levels, self.temporal = prep, levels, temporal
        block = prep.ck.config.block_size
        # an audio model scores one class per clip: its whole validation split (shuffled)
        clips = prep.ck.config.is_classifier
        self.unit = "clips of the validation split" if clips else "tokens of calibration text"
        per_batch = BATCH * (1 if clips else block)
        n_batches = max(1, math.ceil(CALIBRATION_TOKENS / per_batch))
        self.batches = prep.text.val_batches(n_batches, BATCH, block, seed=CALIBRATION_SEED)
        self.tokens = sum(int(y.numel()) for _, y in self.batches)
        model = prep.ck.model.cpu().eval()
        with torch.no_grad():
            self.reference = [model(x)[0] for x, _ in self.batches]

    def __call__(self, t: int, n: int) -> Score:
        import torch

        from ember_neuro.backends import registry
        from ember_neuro.hybrid.session import Deployment, Session, evaluate
        from ember_neuro.hybrid.torch_hook import TorchHook
        from ember_neuro.mappers import MappingOptions

        net = self.prep.map(MappingOptions(timesteps=t, neurons_per_gate=n, levels=self.levels))
        dep = Deployment(self.prep.ck.path, backend="emulator", temporal=self.temporal)
        session = Session(dep, self.prep, torch.device("cpu"), net, registry.require("emulator"))
        with session.paths(BATCH, whole=True) as paths:
            r = evaluate(self.prep.ck.model, self.batches, TorchHook(paths), torch.device("cpu"),
                         progress=False, reference=self.reference)
        return Score(t, n, r["top1_agreement"], r["rel_delta"])
