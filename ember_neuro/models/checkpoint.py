"""nanoGPT-layout checkpoints: save atomically, load without executing pickled code.

A checkpoint is a `torch.save` dict:

    model        state dict (gate parameters stored raw; each gate kind documents its keys)
    model_args   EmberConfig fields (variant, vocab_size, block_size, n_layer, ...; ``spike``
                 only for a hard-spike temporal-lif model)
    iter_num     int
    best_val_loss float
    config       training config: vocab (str; audio: labels, the class names), data source, seed,
                 preset, command, ...

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
from ember_neuro.errors import BadInput
from ember_neuro.models.build import build_model, family_class
from ember_neuro.models.config import EmberConfig
from ember_neuro.models.hooks import part_state

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

    @property
    def labels(self) -> tuple[str, ...] | None:
        """An audio checkpoint's class names (config.labels), in class order."""
        labels = self.train_config.get("labels")
        return None if labels is None else tuple(labels)


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
        raise CheckpointError(f"model_args: {exc}") from exc


def _layer_indices(state: dict, prefix: str) -> set[int]:
    out = set()
    for key in state:
        if isinstance(key, str) and key.startswith(prefix):
            head = key[len(prefix):].split(".", 1)[0]
            if head.isdigit():
                out.add(int(head))
    return out


def _check_claimed_sizes(state: dict, cfg: EmberConfig) -> None:
    """model_args against the tensors the checkpoint really holds, before anything is allocated.

    A checkpoint that claims n_layer = 10**6 (or a huge vocabulary, embedding or CfC
    width) over a small state dict is refused here, instead of building the model it
    describes first.
    """
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"state dict entry {bad[0]!r} is not a named tensor")
    prefix, claims = family_class(cfg).claimed_shapes(cfg)
    layers = _layer_indices(state, prefix)
    if layers != set(range(cfg.n_layer)):
        raise CheckpointError(f"model_args claims n_layer = {cfg.n_layer} but the state dict holds "
                              f"{len(layers)} layer(s)")
    for key, want in claims.items():
        if key not in state:
            raise CheckpointError(f"state dict lacks {key}")
        got = tuple(state[key].shape)
        if len(got) != len(want) or any(w is not None and g != w for g, w in zip(got, want, strict=True)):
            raise CheckpointError(f"model_args does not match the tensors: {key} has shape {got}, "
                                  f"the claimed sizes need {tuple('*' if w is None else w for w in want)}")


def _check_state(state: dict, model: nn.Module, variant: str) -> None:
    expected = model.state_dict()
    gate_keys = set(part_state(model, gates_only=False))
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
        if ref.is_floating_point() and not t.is_floating_point():
            raise CheckpointError(f"{name} has dtype {t.dtype}, expected a floating-point tensor")
        if name in gate_keys and not torch.isfinite(t).all():
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
    _check_claimed_sizes(raw["model"], cfg)
    model = build_model(cfg)
    _check_state(raw["model"], model, cfg.variant)
    train_config = raw.get("config") or {}
    if not isinstance(train_config, dict):
        raise CheckpointError(f"{p}: 'config' is a {type(train_config).__name__}, not a dict")
    vocab = train_config.get("vocab")
    if vocab is not None and (not isinstance(vocab, str) or len(vocab) != cfg.vocab_size):
        size = len(vocab) if isinstance(vocab, str) else type(vocab).__name__
        raise CheckpointError(f"{p}: config.vocab ({size}) does not match vocab_size {cfg.vocab_size}")
    labels = train_config.get("labels")
    if cfg.is_classifier and (not isinstance(labels, (list, tuple)) or len(labels) != cfg.num_classes
                              or not all(isinstance(x, str) for x in labels)):
        raise CheckpointError(f"{p}: config.labels must name the {cfg.num_classes} classes of this "
                              "audio model")
    model.load_state_dict(raw["model"])
    model.eval()
    return Checkpoint(
        model=model,
        config=cfg,
        iter_num=int(_scalar(raw.get("iter_num"), 0)),
        best_val_loss=float(_scalar(raw.get("best_val_loss"), math.nan)),
        train_config=dict(train_config),
        path=str(p),
        sha256=sha256_of(p),
    )


def _scalar(value: object, default: float) -> float:
    """A number stored as int, float or one-element tensor; `default` for anything else."""
    if torch.is_tensor(value) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return default
    return value
