"""Wav in and out: every refusal is one line naming the file; long clips are cropped with one warning."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from ember_neuro.audio.features import FeatureSpec
from ember_neuro.audio.wav import AudioError, read_clip, read_wav, write_clip
from ember_neuro.errors import BadInput

pytestmark = pytest.mark.torchfree
SPEC = FeatureSpec()


def tone(n: int = 16000, level: float = 0.5) -> np.ndarray:
    return (level * np.sin(2 * np.pi * 440 * np.arange(n) / 16000)).astype(np.float32)


def raw_wav(path: Path, frames: bytes, rate: int = 16000, channels: int = 1, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


def int16(x: np.ndarray) -> bytes:
    return np.round(np.asarray(x) * 32767).astype("<i2").tobytes()


def refusal(path: Path, **kwargs) -> str:
    with pytest.raises(AudioError) as exc:
        read_clip(path, SPEC, **kwargs)
    message = str(exc.value)
    assert isinstance(exc.value, BadInput) and "\n" not in message and str(path) in message
    return message


def test_round_trip_is_within_one_step(tmp_path) -> None:
    x = tone()
    write_clip(tmp_path / "sub" / "a.wav", x, 16000)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.wav"]  # no temporary file left
    with wave.open(str(tmp_path / "sub" / "a.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 16000, 16000)
    back = read_clip(tmp_path / "sub" / "a.wav", SPEC)
    assert back.dtype == np.float32 and back.shape == (16000,)
    assert np.abs(back - x).max() <= 1 / 32767


def test_write_clips_to_full_scale_and_refuses_nan(tmp_path) -> None:
    write_clip(tmp_path / "loud.wav", np.array([2.0, -2.0, 0.5]), 16000)
    samples, rate = read_wav(tmp_path / "loud.wav")
    assert rate == 16000 and samples.min() >= -1 and samples.max() <= 1 and samples[0] > 0.999
    with pytest.raises(AudioError, match="nan.wav"):
        write_clip(tmp_path / "nan.wav", np.array([0.0, np.nan]), 16000)
    assert not (tmp_path / "nan.wav").exists()


def test_eight_and_thirty_two_bit_pcm_are_read(tmp_path) -> None:
    x = tone(16000)
    u8 = np.clip(np.round(x * 127 + 128), 0, 255).astype(np.uint8).tobytes()
    i32 = np.round(x * (2**31 - 1)).astype("<i4").tobytes()
    for name, data, width, tol in (("u8.wav", u8, 1, 1 / 64), ("i32.wav", i32, 4, 1e-6)):
        got = read_clip(raw_wav(tmp_path / name, data, width=width), SPEC)
        assert np.abs(got - x).max() < tol


def test_short_clips_are_zero_padded_silently(tmp_path, capsys) -> None:
    got = read_clip(raw_wav(tmp_path / "short.wav", int16(tone(9000))), SPEC)
    assert got.shape == (16000,) and not got[9000:].any() and got[:9000].any()
    assert capsys.readouterr().err == ""


def test_long_clips_are_cropped_with_one_warning_or_refused(tmp_path, capsys) -> None:
    path = raw_wav(tmp_path / "long.wav", int16(tone(20000)))
    got = read_clip(path, SPEC)
    assert got.shape == (16000,) and np.abs(got - tone(16000)).max() <= 1 / 32767
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "20000 samples" in err and "cropped" in err
    assert "20000 samples" in refusal(path, crop="refuse")
    with pytest.raises(ValueError, match="crop"):
        read_clip(path, SPEC, crop="trim")


def test_silent_after_cropping_is_refused(tmp_path) -> None:
    x = np.concatenate([np.zeros(16000), tone(4000)])
    assert "is silent in its first 16000 samples" in refusal(raw_wav(tmp_path / "late.wav", int16(x)))


@pytest.mark.parametrize("case, expect", [
    ("not_wav", "is not a readable wav file"),
    ("missing", "not found"),
    ("rate", "has 22050 Hz audio; the model takes 16000 Hz"),
    ("stereo", "has 2 channels"),
    ("empty", "is empty"),
    ("silent", "is silent"),
    ("width24", "24-bit samples"),
    ("truncated", "is not a readable wav file"),
])
def test_refusals_name_the_file(tmp_path, case, expect) -> None:
    path = tmp_path / f"{case}.wav"
    if case == "not_wav":
        path.write_text("hello, not audio\n")
    elif case == "rate":
        raw_wav(path, int16(tone()), rate=22050)
    elif case == "stereo":
        raw_wav(path, int16(np.repeat(tone(), 2)), channels=2)
    elif case == "empty":
        raw_wav(path, b"")
    elif case == "silent":
        raw_wav(path, np.zeros(16000, "<i2").tobytes())
    elif case == "width24":
        raw_wav(path, b"\x00\x10\x00" * 100, width=3)
    elif case == "truncated":
        path.write_bytes(raw_wav(tmp_path / "whole.wav", int16(tone())).read_bytes()[:30])
    assert expect in refusal(path)
