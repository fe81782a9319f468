"""Log-mel features: one clip at a time (training) or hop by hop (an always-on spotter).

Frames are not centre-padded (librosa's ``center=False``): frame t covers samples
``[t*hop, t*hop + n_fft)``, so a streaming front end that receives audio hop by hop computes the
very frames of the whole clip.  :func:`log_mel` and :class:`FrameStream` share
:func:`frame_features`, and every step there is element-wise or per row (no BLAS product, whose
rounding may depend on how many rows it is given), so the two are bit-identical.

numpy only once a mel basis is given: the torch-free bundle passes the basis it stored; librosa
is imported lazily in :func:`mel_basis`, the one place that builds a filterbank.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

LOG_FLOOR = 1e-6


@dataclass(frozen=True)
class FeatureSpec:
    """What the model's front end takes: sample rate, mel bands, FFT size, hop, clip length."""

    sample_rate: int = 16000
    n_mels: int = 80
    n_fft: int = 400
    hop_length: int = 160
    audio_length: int = 16000

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"FeatureSpec.{f.name} must be a positive integer, got {value!r}")
        if self.n_fft > self.audio_length:
            raise ValueError(f"FeatureSpec.n_fft ({self.n_fft}) exceeds audio_length ({self.audio_length})")
        if self.hop_length > self.n_fft:
            raise ValueError(f"FeatureSpec.hop_length ({self.hop_length}) exceeds n_fft ({self.n_fft})")

    @property
    def frames(self) -> int:
        """Feature frames per clip (98 with the defaults): no centre padding."""
        return 1 + (self.audio_length - self.n_fft) // self.hop_length

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @classmethod
    def from_config(cls, obj: Any) -> FeatureSpec:
        """The spec of a model config (any object or mapping with n_mels, n_fft, hop_length,
        audio_length and optionally sample_rate), so a checkpoint's config names its front end."""
        get = obj.get if isinstance(obj, Mapping) else lambda k, d=None: getattr(obj, k, d)
        names = ("n_mels", "n_fft", "hop_length", "audio_length")
        missing = [n for n in names if get(n) is None]
        if missing:
            raise ValueError(f"{type(obj).__name__} has no {', '.join(missing)} for a FeatureSpec")
        given = {n: int(get(n)) for n in names}
        if get("sample_rate") is not None:
            given["sample_rate"] = int(get("sample_rate"))
        return cls(**given)

    def as_dict(self) -> dict[str, int]:
        return {k: int(v) for k, v in asdict(self).items()}


DEFAULT_SPEC = FeatureSpec()


@functools.lru_cache(maxsize=16)
def mel_basis(spec: FeatureSpec) -> np.ndarray:
    """librosa's mel filterbank (slaney scale and norm), float32 (n_mels, n_fft//2 + 1), read-only
    (it is cached per spec and shared)."""
    try:
        import librosa
    except ImportError as exc:
        raise ImportError(
            f"the mel filterbank needs librosa ({exc}); pip install 'ember-neuro[audio]'"
        ) from exc
    basis = librosa.filters.mel(sr=spec.sample_rate, n_fft=spec.n_fft, n_mels=spec.n_mels)
    basis = np.ascontiguousarray(basis, dtype=np.float32)
    basis.flags.writeable = False
    return basis


@functools.lru_cache(maxsize=16)
def _window(n_fft: int) -> np.ndarray:
    from scipy.signal import get_window

    window = get_window("hann", n_fft, fftbins=True).astype(np.float32)  # periodic, as librosa's
    window.flags.writeable = False
    return window


def _banded(basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bins, weights), each (n_mels, width): filter m is sum_j power[bins[m, j]] * weights[m, j].

    A mel filter spans a few FFT bins; summing over its band with element-wise adds in a fixed
    order gives every frame the same rounding however many frames are computed at once.
    """
    nz = basis != 0
    n_bins = basis.shape[1]
    lo = np.where(nz.any(axis=1), nz.argmax(axis=1), 0)
    hi = np.where(nz.any(axis=1), n_bins - nz[:, ::-1].argmax(axis=1), 0)
    width = max(int((hi - lo).max()), 1)
    bins = np.minimum(lo[:, None] + np.arange(width), n_bins - 1)
    inside = bins < hi[:, None]
    weights = np.where(inside, np.take_along_axis(basis, bins, axis=1), 0).astype(np.float64)
    return bins, weights


def frame_features(frames: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Log-mel of raw frames (k, n_fft) -> float32 (k, n_mels): periodic Hann window, rfft,
    power |X|^2, mel filterbank, log(mel + LOG_FLOOR).  Row t depends on frame t only, bit for bit."""
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 2:
        raise ValueError(f"frames must be 2-D (k, n_fft), got shape {frames.shape}")
    n_fft = frames.shape[1]
    if basis.ndim != 2 or basis.shape[1] != n_fft // 2 + 1:
        raise ValueError(f"mel basis of shape {basis.shape} does not fit frames of {n_fft} samples")
    if len(frames) == 0:
        return np.zeros((0, basis.shape[0]), np.float32)
    spectrum = np.fft.rfft(frames * _window(n_fft), axis=1)
    power = spectrum.real * spectrum.real + spectrum.imag * spectrum.imag
    bins, weights = _banded(basis)
    mel = power[:, bins[:, 0]] * weights[:, 0]
    for j in range(1, bins.shape[1]):
        mel += power[:, bins[:, j]] * weights[:, j]
    return np.log(mel + LOG_FLOOR).astype(np.float32)


def log_mel(wave: np.ndarray, spec: FeatureSpec, basis: np.ndarray) -> np.ndarray:
    """Log-mel features float32 (spec.frames, n_mels) of one clip of exactly spec.audio_length samples."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1 or len(wave) != spec.audio_length:
        raise ValueError(f"log_mel takes a 1-D wave of {spec.audio_length} samples, got shape {wave.shape}")
    frames = sliding_window_view(wave, spec.n_fft)[::spec.hop_length]
    return frame_features(frames, basis)


class FrameStream:
    """The front end of an always-on spotter: push audio in chunks of any size, get the feature
    frames each chunk completes.  The frames of a clip pushed in pieces equal log_mel's, bit for bit."""

    def __init__(self, spec: FeatureSpec, basis: np.ndarray) -> None:
        if basis.shape != (spec.n_mels, spec.n_bins):
            raise ValueError(f"mel basis of shape {basis.shape} does not fit {spec}")
        self.spec = spec
        self.basis = basis
        self.reset()

    def reset(self) -> None:
        """Forget the carried samples and the frame count (a new stream)."""
        self._carry = np.zeros(0, np.float32)
        self.frames_out = 0

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Feature frames (k, n_mels) completed by `chunk` (k may be 0); unused samples are carried."""
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.ndim != 1:
            raise ValueError(f"FrameStream.push takes a 1-D chunk of samples, got shape {chunk.shape}")
        buf = np.concatenate([self._carry, chunk])
        n_fft, hop = self.spec.n_fft, self.spec.hop_length
        k = 0 if len(buf) < n_fft else 1 + (len(buf) - n_fft) // hop
        if k == 0:
            self._carry = buf
            return np.zeros((0, self.spec.n_mels), np.float32)
        frames = sliding_window_view(buf, n_fft)[::hop][:k]
        out = frame_features(frames, self.basis)
        self._carry = buf[k * hop:].copy()
        self.frames_out += k
        return out
