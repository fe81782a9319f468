"""The sweep's grid: checkpoints x windows (T, N) x level sets x backends, and its cells.

A spec is a TOML or JSON file with any of these keys (the command's options override it):

    checkpoints = ["runs/seed42.pt", "runs/seed668.pt"]   # paths
    variants    = ["lif-learnable", "cfc-lif"]            # every shipped checkpoint of these
    windows     = ["1x1", "8x32"]                         # T x N
    levels      = ["uniform", "auto"]
    backends    = ["emulator"]
    batches     = 0                                       # run --eval's batches; 0: the whole split
    batch_size  = 8

With neither checkpoints nor variants the grid takes every shipped checkpoint.  Everything is
checked here, on the client, before a worker starts: an unknown key, variant or backend, a
window outside what the mapper accepts, a missing checkpoint -- each one line.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ember_neuro.errors import BadInput

SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints"
# Eight windows spanning N*T from 1 to 512; three share N*T = 256 at T = 1, 8 and 32, where only
# N*T should matter (README: T = 1 with N = 256 scores as T = 8 with N = 32).
DEFAULT_WINDOWS: tuple[tuple[int, int], ...] = ((1, 1), (1, 4), (2, 8), (4, 16), (1, 256), (8, 32), (32, 8),
                                                (8, 64))
DEFAULT_LEVELS = ("uniform", "auto")
DEFAULT_BACKENDS = ("emulator",)
SPEC_KEYS = ("checkpoints", "variants", "windows", "levels", "backends", "batches", "batch_size")


class SweepError(BadInput):
    """A sweep that cannot start (or a results file it must not touch); the message is one line."""


@dataclass(frozen=True)
class Cell:
    """One evaluation: a checkpoint at one window and level set on one backend.  Its ``id`` hashes
    what decides the numbers (the checkpoint's bytes, not its path), so a moved checkpoint keeps its
    finished cells and a retrained one gets new ones."""

    checkpoint: str  # absolute path, as the workers open it
    sha256: str
    name: str  # the file's stem, for tables and plots
    variant: str
    seed: int | None  # from the checkpoint's training config
    backend: str
    timesteps: int
    neurons_per_gate: int
    levels: str
    batches: int = 0
    batch_size: int = 8
    timeout: float = field(default=120.0, compare=False)  # per Lava run

    @property
    def id(self) -> str:
        key = {k: v for k, v in asdict(self).items() if k not in ("checkpoint", "name", "timeout")}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def nt(self) -> int:
        return self.timesteps * self.neurons_per_gate

    @property
    def cost(self) -> float:
        """Relative cost, to start the longest cells first: the emulator's work grows with N*T."""
        return float(self.nt) * (1 if self.batches == 0 else self.batches)


def parse_window(text: str) -> tuple[int, int]:
    """"8x32" -> (8, 32): T x N."""
    parts = str(text).lower().replace("*", "x").split("x")
    try:
        t, n = (int(p) for p in parts)
    except ValueError:
        raise SweepError(f"bad window {text!r}: write T x N, e.g. 8x32") from None
    return t, n


def _csv(value: Any) -> list[str]:
    """A spec value or an option: a list, or one comma-separated string."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise SweepError(f"expected a list or a comma-separated string, got {value!r}")


def read_spec(path: str | Path) -> dict[str, Any]:
    """A spec file's keys (TOML or JSON by suffix), unknown keys refused."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise SweepError(f"cannot read sweep spec {p}: {exc.strerror or exc}") from None
    try:
        if p.suffix == ".json":
            spec = json.loads(text)
        else:
            import tomllib

            spec = tomllib.loads(text)
    except ModuleNotFoundError:
        raise SweepError(f"{p}: TOML needs Python 3.11; write the spec as JSON") from None
    except ValueError as exc:
        raise SweepError(f"sweep spec {p} does not parse: {' '.join(str(exc).split())}") from None
    if not isinstance(spec, dict):
        raise SweepError(f"sweep spec {p}: expected a table of keys, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise SweepError(f"sweep spec {p}: unknown key {unknown[0]!r}; known: {', '.join(SPEC_KEYS)}")
    return spec


@dataclass
class Grid:
    """What to sweep; :meth:`cells` checks it and lists the cells."""

    checkpoints: list[str] = field(default_factory=list)
    variants: list[str] = field(default_factory=list)
    windows: list[tuple[int, int]] = field(default_factory=lambda: list(DEFAULT_WINDOWS))
    levels: list[str] = field(default_factory=lambda: list(DEFAULT_LEVELS))
    backends: list[str] = field(default_factory=lambda: list(DEFAULT_BACKENDS))
    batches: int = 0
    batch_size: int = 8
    timeout: float = 120.0

    @classmethod
    def from_spec(cls, spec: dict[str, Any], **given: Any) -> Grid:
        """A grid from a spec's keys, then the command's options (those not None)."""
        merged = {**spec, **{k: v for k, v in given.items() if v is not None}}
        grid = cls(timeout=float(merged.pop("timeout", 120.0)))
        for key in ("checkpoints", "variants", "levels", "backends"):
            if key in merged:
                setattr(grid, key, _csv(merged[key]))
        if "windows" in merged:
            grid.windows = [parse_window(w) for w in _csv(merged["windows"])]
        for key in ("batches", "batch_size"):
            if key in merged:
                try:
                    setattr(grid, key, int(merged[key]))
                except (TypeError, ValueError):
                    raise SweepError(f"{key} must be an integer, got {merged[key]!r}") from None
        return grid

    def check(self) -> None:
        """Everything that can be refused without loading a checkpoint."""
        from ember_neuro.backends import registry
        from ember_neuro.deploy.mapping import Window
        from ember_neuro.kinds.registry import names as variant_names
        from ember_neuro.mappers.gate import LEVEL_SETS

        hybrid = registry.names(spiking=True, hybrid=True)
        for b in self.backends:
            if b not in hybrid:
                raise SweepError(f"unknown backend {b!r} in the sweep; a cell's gates run on one of: "
                                 f"{', '.join(hybrid)}")
            try:
                registry.require(b)
            except Exception as exc:  # noqa: BLE001 - unavailable here: one line, refused before starting
                raise SweepError(f"backend {b!r} cannot run on this machine: {' '.join(str(exc).split())}") \
                    from None
        known = variant_names()
        for v in self.variants:
            if v not in known:
                raise SweepError(f"unknown variant {v!r} in the sweep; known: {', '.join(known)}")
        for lv in self.levels:
            if lv not in LEVEL_SETS:
                raise SweepError(f"unknown level set {lv!r}; use {', '.join(LEVEL_SETS)}")
        for t, n in self.windows:
            try:
                Window(t, n).check()
            except BadInput as exc:
                raise SweepError(f"window {t}x{n}: {exc}") from None
        if self.batches < 0 or self.batch_size < 1:
            raise SweepError(f"batches must be >= 0 (0: the whole split) and batch_size >= 1, got "
                             f"{self.batches} and {self.batch_size}")
        if not (self.windows and self.levels and self.backends):
            raise SweepError("the grid is empty: give at least one window, level set and backend")

    def loaded_checkpoints(self) -> dict[Path, Any]:
        """The checkpoints to sweep, each loaded once: those given, then the shipped ones of each
        variant named (all shipped ones when neither is given)."""
        from ember_neuro.models.checkpoint import load_checkpoint

        paths = [Path(c).expanduser().resolve() for c in self.checkpoints]
        for p in paths:
            if not p.is_file():
                raise SweepError(f"checkpoint {p} does not exist")
        loaded = {p: load_checkpoint(p) for p in dict.fromkeys(paths)}
        if self.variants or not paths:
            shipped = {p: loaded.get(p) or load_checkpoint(p) for p in sorted(SHIPPED.glob("*.pt"))}
            variants = {ck.config.variant for ck in shipped.values()}
            for v in self.variants:
                if v not in variants:
                    raise SweepError(f"no shipped checkpoint of variant {v!r} (shipped: "
                                     f"{', '.join(sorted(variants))}); give its checkpoints")
            wanted = set(self.variants) if self.variants else variants
            loaded.update({p: ck for p, ck in shipped.items()
                           if ck.config.variant in wanted and p not in loaded})
        return loaded

    def cells(self) -> list[Cell]:
        """Every cell, checked, the costliest first within each checkpoint (so a checkpoint's float
        reference is computed once per worker and the long cells do not come last)."""
        self.check()
        out: list[Cell] = []
        for path, ck in self.loaded_checkpoints().items():
            if not ck.config.has_lif_gate:
                raise SweepError(f"{path} is a {ck.config.variant!r} checkpoint: it has no LIF gate to sweep")
            seed = ck.train_config.get("seed")
            cells = [Cell(str(path), ck.sha256, path.stem, ck.config.variant,
                          None if seed is None else int(seed), b, t, n, lv, self.batches, self.batch_size,
                          self.timeout)
                     for b in self.backends for t, n in self.windows for lv in self.levels]
            out += sorted(cells, key=lambda c: -c.cost)
        return list({c.id: c for c in out}.values())
