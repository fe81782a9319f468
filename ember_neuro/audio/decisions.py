"""A keyword spotter's answer per clip, from its class logits (numpy only: the package's
``run --wav`` and the bundle's classify.py report the same records)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def decisions(logits: Any, labels: Sequence[str], paths: Sequence[str]) -> list[dict[str, Any]]:
    """One record per clip: its file, the class chosen and its softmax probability (float64)."""
    z = np.asarray(logits, np.float64)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return [{"wav": str(path), "label": labels[int(q.argmax())], "class": int(q.argmax()),
             "probability": float(q.max())} for path, q in zip(paths, p, strict=True)]
