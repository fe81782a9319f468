"""The Speech Commands v2 layout on a small set written in tmp_path: splits, the 12-class mapping,
the _silence_ crops, the README's split rule and every refusal of a broken layout."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from ember_neuro.audio.features import FeatureSpec
from ember_neuro.audio.speech_commands import (
    BACKGROUND,
    KEYWORDS_10,
    SILENCE,
    UNKNOWN,
    WORDS_35,
    SpeechCommands,
    task_labels,
    which_set,
)
from ember_neuro.audio.wav import AudioError, read_wav, write_clip
from ember_neuro.errors import BadInput

pytestmark = pytest.mark.torchfree
SPEAKERS = {"aaaa0001": "training", "aaaa0002": "validation", "aaaa0003": "testing"}
BASIS = np.abs(np.random.default_rng(0).standard_normal((80, 201))).astype(np.float32)


def make_layout(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for w, word in enumerate(WORDS_35):
        for s, speaker in enumerate(SPEAKERS):
            n = 16000 if (w + s) % 4 else 9000  # some short clips, as in the real set
            t = np.arange(n) / 16000
            write_clip(root / word / f"{speaker}_nohash_0.wav", 0.3 * np.sin(2 * np.pi * (200 + 20 * w) * t)
                       + 0.01 * rng.standard_normal(n), 16000)
    for split in ("validation", "testing"):
        rows = [f"{w}/{s}_nohash_0.wav" for w in WORDS_35 for s, where in SPEAKERS.items() if where == split]
        (root / f"{split}_list.txt").write_text("\n".join(rows) + "\n")
    for name in ("white", "pink"):
        write_clip(root / BACKGROUND / f"{name}.wav", 0.2 * rng.standard_normal(48000), 16000)
    return root


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    return make_layout(tmp_path_factory.mktemp("sc") / "speech_commands")


@pytest.fixture
def broken(layout, tmp_path) -> Path:
    """A copy of the layout to break."""
    return Path(shutil.copytree(layout, tmp_path / "copy"))


def test_labels_of_both_tasks() -> None:
    assert len(WORDS_35) == 35 and list(WORDS_35) == sorted(WORDS_35)
    assert task_labels("35") == WORDS_35
    assert task_labels("12") == (*KEYWORDS_10, SILENCE, UNKNOWN) and len(task_labels("12")) == 12
    with pytest.raises(BadInput, match="choose one of 35, 12"):
        task_labels("30")


def test_which_set_is_the_readmes_rule() -> None:
    # sha1("00000007") ends ...5040b43e: its last 27 bits are 4240446 -> 4240446 * 100 / (2**27 - 1) = 3.16 %
    assert which_set("yes/00000007_nohash_0.wav") == "validation"
    # sha1("00000002") ends ...11502aaa -> 22031018 -> 16.41 %: testing
    assert which_set("no/00000002_nohash_3.wav") == "testing"
    # sha1("0a7c2a8d") ends ...fc8c025b -> 76285531 -> 56.84 %: training
    assert which_set("0a7c2a8d_nohash_0.wav") == "training"
    # sha1("00000000") -> 12825483 -> 9.556 %: validation at 10 %, testing at 9 %
    assert which_set("00000000_nohash_0.wav") == "validation"
    assert which_set("00000000_nohash_0.wav", validation_percentage=9) == "testing"
    assert which_set("00000000_nohash_0.wav", 5, 4) == "training"


def test_task_35_items_and_splits(layout) -> None:
    sc = SpeechCommands(layout, "35")
    for split, speaker in (("training", "aaaa0001"), ("validation", "aaaa0002"), ("testing", "aaaa0003")):
        items = sc.items(split)
        assert items == sorted(items) and len(items) == 35
        assert all(path.split("/")[1].startswith(speaker) for path, _ in items)
        assert all(sc.labels[label] == path.split("/")[0] for path, label in items)
    assert sc.labels == WORDS_35 and "task=35" in sc.source and str(layout.resolve()) in sc.source
    assert repr(sc) == f"SpeechCommands({str(layout)!r}, task='35', words=35, clips=105)"
    with pytest.raises(BadInput, match="unknown split"):
        sc.items("train")


def test_task_12_maps_other_words_to_unknown_and_adds_silence(layout) -> None:
    sc = SpeechCommands(layout, "12")
    labels = sc.labels
    items = sc.items("training")
    words = [(p, label) for p, label in items if not p.startswith(SILENCE)]
    silence = [(p, label) for p, label in items if p.startswith(SILENCE)]
    assert len(words) == 35 and len(silence) == math.ceil(35 * 0.1)
    for path, label in words:
        word = path.split("/")[0]
        assert labels[label] == (word if word in KEYWORDS_10 else UNKNOWN)
    assert {labels[label] for _, label in silence} == {SILENCE}
    assert sum(labels[label] == UNKNOWN for _, label in words) == 25
    assert SpeechCommands(layout, "12").items("training") == items  # seeded: the same crops every time
    assert sc.items("validation") != sc.items("testing")


def test_silence_clip_is_a_scaled_crop_of_a_background_file(layout) -> None:
    sc = SpeechCommands(layout, "12")
    for tag, _ in [i for i in sc.items("testing") if i[0].startswith(SILENCE)]:
        _, noise, offset, volume = tag.split(":")
        full, _rate = read_wav(layout / noise)
        clip = sc.clip(tag)
        assert clip.dtype == np.float32 and clip.shape == (16000,) and 0 <= float(volume) < 1
        assert np.allclose(clip, full[int(offset):int(offset) + 16000] * float(volume))


def test_features_shape_labels_and_cache(layout) -> None:
    sc = SpeechCommands(layout, "12", basis=BASIS)
    x, y = sc.features("validation")
    assert x.shape == (39, 98, 80) and x.dtype == np.float32 and np.isfinite(x).all()
    assert y.dtype == np.int64 and list(y) == [label for _, label in sc.items("validation")]
    assert sc.features("validation")[0] is x
    small = SpeechCommands(layout, "35", FeatureSpec(n_mels=40, n_fft=512, hop_length=256),
                           basis=np.ones((40, 257), np.float32))
    assert small.features("testing")[0].shape == (35, 1 + (16000 - 512) // 256, 40)


def test_features_with_librosas_basis(layout) -> None:
    pytest.importorskip("librosa")
    x, y = SpeechCommands(layout, "35").features("testing")
    assert x.shape == (35, 98, 80) and y.shape == (35,)


def _refusal(root: Path, task: str = "35") -> str:
    with pytest.raises(AudioError) as exc:
        SpeechCommands(root, task)
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_missing_folder_and_lists(broken, tmp_path) -> None:
    assert "not found" in _refusal(tmp_path / "nowhere")
    (broken / "testing_list.txt").unlink()
    assert "has no testing_list.txt" in _refusal(broken)
    (broken / "validation_list.txt").unlink()
    assert "has no validation_list.txt" in _refusal(broken)


def test_no_word_folders(tmp_path) -> None:
    (tmp_path / "validation_list.txt").write_text("")
    (tmp_path / "testing_list.txt").write_text("")
    (tmp_path / "yes").mkdir()
    assert "has no word folders with wav files" in _refusal(tmp_path)


def test_missing_words_are_named(broken) -> None:
    shutil.rmtree(broken / "sheila")
    shutil.rmtree(broken / "wow")
    message = _refusal(broken)
    assert message.startswith(str(broken)) and "2 word(s) of task 35: sheila, wow" in message
    shutil.rmtree(broken / "go")
    assert "1 word(s) of task 12: go" in _refusal(broken, "12")


def test_a_word_outside_the_35_is_refused_for_task_35(broken) -> None:
    write_clip(broken / "banana" / "aaaa0001_nohash_0.wav", np.full(100, 0.1), 16000)
    assert "banana" in _refusal(broken)
    assert len(SpeechCommands(broken, "12").items("training")) == 36 + 4  # an unknown word


def test_a_list_naming_a_missing_file(broken) -> None:
    with open(broken / "validation_list.txt", "a") as f:
        f.write("yes/ffffffff_nohash_0.wav\nno/ffffffff_nohash_0.wav\n")
    message = _refusal(broken)
    assert "validation_list.txt names yes/ffffffff_nohash_0.wav, which does not exist (2 such" in message


def test_task_12_needs_background_noise(broken) -> None:
    shutil.rmtree(broken / BACKGROUND)
    assert BACKGROUND in _refusal(broken, "12")
    SpeechCommands(broken, "35")  # task 35 has no _silence_
    write_clip(broken / BACKGROUND / "short.wav", np.full(100, 0.1), 16000)
    assert "fewer than one clip" in _refusal(broken, "12")
    write_clip(broken / BACKGROUND / "short.wav", np.full(20000, 0.1), 8000)
    assert "8000 Hz" in _refusal(broken, "12")


def test_a_broken_clip_is_refused_when_read(broken) -> None:
    (broken / "yes" / "aaaa0001_nohash_0.wav").write_text("not audio")
    sc = SpeechCommands(broken, "35", basis=BASIS)
    with pytest.raises(AudioError, match="aaaa0001_nohash_0.wav is not a readable wav file"):
        sc.features("training")
