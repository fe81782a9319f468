"""Wav files in and out with the stdlib ``wave`` module: PCM mono at the model's rate, or a refusal.

A clip the model cannot take is refused with one line naming the file (:class:`AudioError`, exit 2)
rather than resampled or down-mixed behind the user's back.  Short clips are zero-padded at the
end, as every Speech Commands pipeline pads the set's short clips; long ones are cropped to the
first second with a warning, or refused with ``crop="refuse"``.
"""

from __future__ import annotations

import os
import sys
import wave as wavefile
from pathlib import Path

import numpy as np

from ember_neuro.atomic import atomic_write_bytes
from ember_neuro.audio.features import DEFAULT_SPEC, FeatureSpec
from ember_neuro.errors import BadInput

SILENT_PEAK = 1e-4
_SCALE = {1: 128.0, 2: 32768.0, 4: 2147483648.0}
_DTYPE = {1: np.uint8, 2: "<i2", 4: "<i4"}


class AudioError(BadInput):
    """An audio file (or folder of them) that cannot be used; the one-line message names it."""


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """(samples float32 in [-1, 1], sample rate) of a mono 8/16/32-bit PCM wav, whatever its length."""
    path = Path(path)
    try:
        with wavefile.open(str(path), "rb") as w:
            channels, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            if channels != 1:
                raise AudioError(f"{path} has {channels} channels; the model takes mono audio")
            if width not in _SCALE:
                raise AudioError(f"{path} has {8 * width}-bit samples; 8-, 16- or 32-bit PCM is read")
            raw = w.readframes(n)
    except AudioError:
        raise
    except FileNotFoundError as exc:
        raise AudioError(f"{path} not found") from exc
    except (wavefile.Error, EOFError, OSError) as exc:
        raise AudioError(f"{path} is not a readable wav file ({' '.join(str(exc).split())})") from exc
    ints = np.frombuffer(raw[: len(raw) // width * width], dtype=_DTYPE[width])
    if width == 1:
        samples = (ints.astype(np.float32) - 128.0) / 128.0
    else:
        samples = (ints.astype(np.float64) / _SCALE[width]).astype(np.float32)
    return samples, rate


def read_clip(path: str | os.PathLike, spec: FeatureSpec = DEFAULT_SPEC, crop: str = "warn") -> np.ndarray:
    """One clip float32 of exactly spec.audio_length samples in [-1, 1], or AudioError.

    crop="warn" crops a longer file to its first spec.audio_length samples with one warning line on
    stderr; crop="refuse" refuses it.  Shorter files are zero-padded at the end, silently.
    """
    if crop not in ("warn", "refuse"):
        raise ValueError(f"crop must be 'warn' or 'refuse', got {crop!r}")
    path = Path(path)
    samples, rate = read_wav(path)
    if rate != spec.sample_rate:
        raise AudioError(f"{path} has {rate} Hz audio; the model takes {spec.sample_rate} Hz")
    if len(samples) == 0:
        raise AudioError(f"{path} is empty (no samples)")
    n, want = len(samples), spec.audio_length
    cropped = ""
    if n > want:
        what = f"{path} has {n} samples ({n / rate:.3f} s), more than the model's {want} ({want / rate:g} s)"
        if crop == "refuse":
            raise AudioError(f"{what}; crop it to {want / rate:g} s")
        print(f"warning: {what}; cropped to the first {want}", file=sys.stderr)
        samples = samples[:want]
        cropped = f" in its first {want} samples"
    elif n < want:
        samples = np.concatenate([samples, np.zeros(want - n, np.float32)])
    peak = float(np.abs(samples).max())
    if peak < SILENT_PEAK:
        raise AudioError(f"{path} is silent{cropped} (peak {peak:.1e} < {SILENT_PEAK:g})")
    return samples


def write_clip(path: str | os.PathLike, wave: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM mono (values clipped to [-1, 1]) to a temporary file, then rename it into place."""
    path = Path(path)
    x = np.asarray(wave, dtype=np.float64)
    if x.ndim != 1:
        raise AudioError(f"cannot write {path}: a clip is 1-D, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise AudioError(f"cannot write {path}: the wave has NaN or infinite samples")
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2").tobytes()

    def write(tmp: str) -> None:
        with wavefile.open(tmp, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(int(sample_rate))
            w.writeframes(pcm)

    atomic_write_bytes(path, write)
