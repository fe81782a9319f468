"""nanoGPT-layout checkpoints: save atomically, load without executing pickled code.

A checkpoint is a `torch.save` dict:

    model        state dict (gate parameters stored raw, see model.py / liquid.py)
    model_args   EmberConfig fields (variant, vocab_size, block_size, n_layer, ...)
    iter_num     int
    best_val_loss float
    config       training config: vocab (str), data source, seed, preset, command, ...

Loading uses `torch.load(weights_only=True)`, which refuses arbitrary pickled
objects, and then checks every gate tensor's shape and finiteness before the
model sees it.  Every failure is a :class:`CheckpointError` with one line.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn as nn

from ember_neuro.atomic import atomic_write_bytes
from ember_neuro.config import EmberConfig
from ember_neuro.errors import BadInput
from ember_neuro.zoo import build_model, is_gate_param

REQUIRED_KEYS = ("model", "model_args")


class CheckpointError(BadInput):
    """A checkpoint that cannot be used; the message is one line."""


@dataclass
class Checkpoint:
    model: nn.Module
    config: EmberConfig
    iter_num: int
    best_val_loss: float
    train_config: dict
    path: str
    sha256: str

    @property
    def vocab(self) -> str | None:
        return self.train_config.get("vocab")


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(path, model: nn.Module, cfg: EmberConfig, iter_num: int,
                    best_val_loss: float, train_config: dict) -> None:
    payload = {
        "model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "model_args": cfg.to_dict(),
        "iter_num": int(iter_num),
        "best_val_loss": float(best_val_loss),
        "config": dict(train_config),
    }
    atomic_write_bytes(path, lambda tmp: torch.save(payload, tmp))


def _config_from_args(args: dict) -> EmberConfig:
    if not isinstance(args, dict):
        raise CheckpointError("model_args is not a dict")
    known = {f.name for f in fields(EmberConfig)}
    unknown = sorted(set(args) - known)
    if unknown:
        raise CheckpointError(f"model_args has unknown fields: {', '.join(unknown)}")
    if "variant" not in args:
        raise CheckpointError(
            "model_args has no 'variant' (a plain nanoGPT checkpoint?); "
            "expected one of the Ember variants"
        )
    try:
        return EmberConfig(**args)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(str(exc)) from exc


def _check_state(state: dict, model: nn.Module, variant: str) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {unexpected[0]})")
        raise CheckpointError(f"state dict does not match variant {variant!r}: " + "; ".join(parts))
    for name, ref in expected.items():
        t = state[name]
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f"{name} is not a tensor")
        if tuple(t.shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{name} has shape {tuple(t.shape)}, expected {tuple(ref.shape)} for this config"
            )
        if is_gate_param(name) and not torch.isfinite(t).all():
            raise CheckpointError(f"gate parameter {name} contains NaN or Inf")


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> Checkpoint:
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    if not p.is_file():
        raise CheckpointError(f"checkpoint is not a file: {p}")
    try:
        raw = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for bad files
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{p} is not a readable checkpoint ({reason})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{p} holds a {type(raw).__name__}, not a checkpoint dict")
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise CheckpointError(f"{p} lacks required key(s): {', '.join(missing)}")
    if not isinstance(raw["model"], dict):
        raise CheckpointError(f"{p}: 'model' is not a state dict")
    cfg = _config_from_args(raw["model_args"])
    model = build_model(cfg)
    _check_state(raw["model"], model, cfg.variant)
    model.load_state_dict(raw["model"])
    model.eval()
    best = raw.get("best_val_loss", float("nan"))
    best = float(best) if isinstance(best, (int, float)) or torch.is_tensor(best) else math.nan
    return Checkpoint(
        model=model,
        config=cfg,
        iter_num=int(raw.get("iter_num", 0)),
        best_val_loss=best,
        train_config=dict(raw.get("config") or {}),
        path=str(p),
        sha256=sha256_of(p),
    )
