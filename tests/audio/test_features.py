"""Log-mel features: librosa's numbers, the streaming front end bit-identical with the whole clip,
the spec's checks, and the package importable without torch (or librosa)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ember_neuro.audio.features import (
    LOG_FLOOR,
    FeatureSpec,
    FrameStream,
    frame_features,
    log_mel,
    mel_basis,
)

pytestmark = pytest.mark.torchfree
SPEC = FeatureSpec()


def triangles(spec: FeatureSpec = SPEC) -> np.ndarray:
    """A banded, triangular stand-in for the mel basis where librosa is absent (the 3.10 suite)."""
    centres = np.linspace(2, spec.n_bins - 3, spec.n_mels)
    bins = np.arange(spec.n_bins)
    width = max((spec.n_bins - 5) / spec.n_mels * 2, 1.5)
    return np.maximum(0, 1 - np.abs(bins[None] - centres[:, None]) / width).astype(np.float32)


def chirp_and_noise(n: int = SPEC.audio_length, seed: int = 0) -> np.ndarray:
    t = np.arange(n) / SPEC.sample_rate
    rng = np.random.default_rng(seed)
    x = 0.5 * np.sin(2 * np.pi * (100 * t + 3000 * t * t)) + 0.05 * rng.standard_normal(n)
    return x.astype(np.float32)


def test_spec_defaults_and_frames() -> None:
    assert SPEC.frames == 98 and SPEC.n_bins == 201
    assert FeatureSpec(audio_length=8000, n_fft=512, hop_length=128).frames == 1 + (8000 - 512) // 128
    assert FeatureSpec(**SPEC.as_dict()) == SPEC


@pytest.mark.parametrize("kwargs", [{"n_mels": 0}, {"n_fft": -1}, {"hop_length": 1.5}, {"sample_rate": True},
                                    {"n_fft": 20000}, {"hop_length": 401}])
def test_spec_refuses_bad_values_in_one_line(kwargs) -> None:
    with pytest.raises(ValueError) as exc:
        FeatureSpec(**kwargs)
    assert "\n" not in str(exc.value) and "FeatureSpec" in str(exc.value)


def test_spec_from_config_of_any_object() -> None:
    cfg = SimpleNamespace(n_mels=40, n_fft=512, hop_length=256, audio_length=16000, d_model=64)
    assert FeatureSpec.from_config(cfg) == FeatureSpec(n_mels=40, n_fft=512, hop_length=256)
    assert FeatureSpec.from_config({**vars(cfg), "sample_rate": 8000}).sample_rate == 8000
    with pytest.raises(ValueError, match="hop_length"):
        FeatureSpec.from_config(SimpleNamespace(n_mels=40, n_fft=512, audio_length=16000))


def test_mel_basis_is_librosas_cached_and_read_only() -> None:
    librosa = pytest.importorskip("librosa")
    basis = mel_basis(SPEC)
    assert basis.shape == (80, 201) and basis.dtype == np.float32
    assert mel_basis(FeatureSpec()) is basis and not basis.flags.writeable
    assert np.array_equal(basis, librosa.filters.mel(sr=16000, n_fft=400, n_mels=80))


def test_mel_basis_without_librosa_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "librosa", None)
    with pytest.raises(ImportError, match=r"pip install 'ember-neuro\[audio\]'"):
        mel_basis.__wrapped__(FeatureSpec(n_mels=40))


def _espeak_clip() -> np.ndarray | None:
    """A real spoken word at 16 kHz, or None without espeak-ng."""
    if shutil.which("espeak-ng") is None:
        return None
    from ember_neuro.audio.keywords import _espeak, _to_16k

    with tempfile.TemporaryDirectory() as tmp:
        said = _to_16k(_espeak("marvin", "en-gb", 50, 170, 100, Path(tmp)))[: SPEC.audio_length]
    clip = np.zeros(SPEC.audio_length, np.float32)
    clip[: len(said)] = said
    return clip + np.float32(1e-3) * np.random.default_rng(1).standard_normal(len(clip)).astype(np.float32)


@pytest.mark.parametrize("source", ["chirp", "espeak"])
def test_log_mel_is_librosas_melspectrogram(source) -> None:
    librosa = pytest.importorskip("librosa")
    wave = chirp_and_noise() if source == "chirp" else _espeak_clip()
    if wave is None:
        pytest.skip("espeak-ng is not installed")
    ours = log_mel(wave, SPEC, mel_basis(SPEC))
    theirs = librosa.feature.melspectrogram(y=wave, sr=16000, n_fft=400, hop_length=160, n_mels=80,
                                            center=False, power=2.0)
    assert ours.shape == (98, 80) and ours.dtype == np.float32
    assert np.abs(ours - np.log(theirs.T + LOG_FLOOR)).max() < 1e-3


def test_log_mel_refuses_a_wave_of_the_wrong_shape() -> None:
    basis = triangles()
    for bad in (np.zeros(15999, np.float32), np.zeros(16001, np.float32), np.zeros((2, 16000), np.float32)):
        with pytest.raises(ValueError, match="16000 samples"):
            log_mel(bad, SPEC, basis)
    with pytest.raises(ValueError, match="does not fit"):
        log_mel(chirp_and_noise(), SPEC, basis[:, :200])


def test_silence_is_the_log_floor() -> None:
    out = log_mel(np.zeros(SPEC.audio_length, np.float32), SPEC, triangles())
    assert np.array_equal(out, np.full((98, 80), np.log(LOG_FLOOR), np.float32))


def test_frame_features_row_t_depends_on_frame_t_only() -> None:
    frames = np.lib.stride_tricks.sliding_window_view(chirp_and_noise(), 400)[::160]
    basis = triangles()
    whole = frame_features(frames, basis)
    for t in (0, 1, 50, 97):
        assert np.array_equal(frame_features(frames[t:t + 1], basis)[0], whole[t])
    assert frame_features(frames[:0], basis).shape == (0, 80)


def _stream(wave: np.ndarray, cuts: list[int], basis: np.ndarray) -> tuple[np.ndarray, FrameStream]:
    stream = FrameStream(SPEC, basis)
    edges = [0, *sorted(c % (len(wave) + 1) for c in cuts), len(wave)]
    out = [stream.push(wave[a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    for o in out:
        assert o.dtype == np.float32 and o.shape[1] == SPEC.n_mels
    return np.concatenate(out), stream


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 16000), max_size=60), st.integers(0, 2**16))
def test_stream_in_any_chunks_is_log_mel_bit_for_bit(cuts, seed) -> None:
    wave, basis = chirp_and_noise(seed=seed), triangles()
    got, stream = _stream(wave, cuts, basis)
    assert np.array_equal(got, log_mel(wave, SPEC, basis)) and stream.frames_out == 98


def test_stream_with_librosas_basis_and_hop_sized_chunks() -> None:
    pytest.importorskip("librosa")
    wave, basis = chirp_and_noise(seed=3), mel_basis(SPEC)
    for cuts in (list(range(160, 16000, 160)), list(range(1, 16000, 1)), [400, 401, 559, 560]):
        assert np.array_equal(_stream(wave, cuts, basis)[0], log_mel(wave, SPEC, basis))


def test_stream_carries_across_clips_and_resets() -> None:
    basis = triangles()
    a, b = chirp_and_noise(seed=1), chirp_and_noise(seed=2)
    stream = FrameStream(SPEC, basis)
    first = stream.push(a)
    assert np.array_equal(first, log_mel(a, SPEC, basis))
    joined = np.concatenate([a, b])
    second = stream.push(b)  # frames straddling the two clips come out too: an always-on stream
    assert len(second) == (len(joined) - 400) // 160 + 1 - 98
    assert np.array_equal(second[-1], log_mel(joined[-16000:], SPEC, basis)[-1])
    stream.reset()
    assert stream.frames_out == 0 and len(stream.push(a[:399])) == 0 and len(stream.push(a[399:400])) == 1
    with pytest.raises(ValueError, match="1-D"):
        stream.push(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="does not fit"):
        FrameStream(SPEC, basis[:40])


def test_the_audio_package_imports_without_torch_or_librosa() -> None:
    child = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None
        import ember_neuro.audio.features, ember_neuro.audio.wav, ember_neuro.audio.speech_commands
        import ember_neuro.audio.keywords
        assert "librosa" not in sys.modules and sys.modules.get("torch") is None
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
