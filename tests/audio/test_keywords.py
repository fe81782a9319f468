"""The espeak-ng keyword set: byte-identical for a seed, loadable as Speech Commands, split by
speaker, written all or nothing, and one clear line when espeak-ng is missing or fails.

Needs espeak-ng (`make setup` installs it); without it these fail with that message.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from ember_neuro.audio import keywords
from ember_neuro.audio.features import FeatureSpec
from ember_neuro.audio.speech_commands import BACKGROUND, SILENCE, SpeechCommands, which_set
from ember_neuro.audio.wav import AudioError, read_clip
from ember_neuro.errors import RuntimeFault

pytestmark = pytest.mark.torchfree
SPEAKERS = 3
BASIS = np.abs(np.random.default_rng(0).standard_normal((80, 201))).astype(np.float32)


def seed_with_every_split(count: int = SPEAKERS) -> int:
    """The first seed whose `count` speakers land in all three splits (so the test sees each)."""
    for seed in range(1000):
        ids = [p.id for p in keywords.speakers(seed, count)]
        if {which_set(f"{i}_nohash_0.wav") for i in ids} == {"training", "validation", "testing"}:
            return seed
    raise AssertionError("no seed below 1000 puts 3 speakers in every split")


SEED = seed_with_every_split()


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, Path]:
    """The same tiny set made twice: by two worker processes, then in-process."""
    a = tmp_path_factory.mktemp("kw") / "a"
    b = tmp_path_factory.mktemp("kw") / "b"
    keywords.make_keywords(a, speakers=SPEAKERS, seed=SEED, progress=False, workers=2)
    keywords.make_keywords(b, speakers=SPEAKERS, seed=SEED, progress=False, workers=1)
    return a, b


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_same_seed_gives_byte_identical_files(made) -> None:
    a, b = files(made[0]), files(made[1])
    assert a.keys() == b.keys() and len([k for k in a if k.endswith(".wav")]) == 35 * SPEAKERS + 6
    assert [k for k in a if a[k] != b[k]] == []
    assert not list(made[0].parent.glob("*.tmp-*"))


def test_every_clip_is_one_second_of_16khz_mono_speech(made) -> None:
    spec = FeatureSpec()
    for path in sorted(made[0].glob("*/*_nohash_0.wav")):
        with wave.open(str(path)) as w:
            header = (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes())
        assert header == (16000, 1, 2, 16000)
        x = read_clip(path, spec, crop="refuse")
        assert 0.29 < np.abs(x).max() < 0.91
    for path in sorted((made[0] / BACKGROUND).glob("*.wav")):
        with wave.open(str(path)) as w:
            assert (w.getframerate(), w.getnframes()) == (16000, 30 * 16000)


def test_it_loads_as_speech_commands_split_by_speaker(made) -> None:
    root = made[0]
    sc = SpeechCommands(root, "35", basis=BASIS)
    speakers_of = {}
    for split in ("training", "validation", "testing"):
        items = sc.items(split)
        ids = {Path(p).name.split("_nohash_")[0] for p, _ in items}
        assert len(items) == 35 * len(ids) and all(which_set(i + "_nohash_0.wav") == split for i in ids)
        speakers_of[split] = ids
    assert sum(map(len, speakers_of.values())) == SPEAKERS and all(speakers_of.values())
    x, y = sc.features("validation")
    assert x.shape == (35, 98, 80) and sorted(y) == list(range(35))
    sc12 = SpeechCommands(root, "12", basis=BASIS)
    assert sum(p.startswith(SILENCE) for p, _ in sc12.items("training")) == 4
    assert sc12.features("testing")[0].shape == (39, 98, 80)


def test_manifest_records_the_set(made) -> None:
    import json

    m = json.loads((made[0] / "manifest.json").read_text())
    assert (m["version"], m["seed"], m["speakers"], m["clips"]) == (keywords.KEYWORDS_VERSION, SEED, 3, 105)
    assert m["espeak_ng"].startswith("eSpeak NG") and "Data at" not in m["espeak_ng"]
    assert sum(s["clips"] for s in m["splits"].values()) == 105
    assert {p["split"] for p in m["speaker_table"]} == {"training", "validation", "testing"}
    assert m["parameters"]["pitch"] == [25, 75] and m["parameters"]["speed_wpm"] == [120, 210]


def test_an_up_to_date_set_is_left_as_is(made, capsys) -> None:
    root = made[0]
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert keywords.main(["--out", str(root), "--speakers", "3", "--seed", str(SEED)]) == 0
    assert capsys.readouterr().out.strip() == f"keywords: {root} is up to date"
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


def test_speaker_ids_are_eight_hex_digits_and_seeded() -> None:
    people = keywords.speakers(0, 96)
    assert len({p.id for p in people}) == 96 and all(len(p.id) == 8 and int(p.id, 16) >= 0 for p in people)
    assert people == keywords.speakers(0, 96) and people[:5] != keywords.speakers(1, 5)
    assert all(p.voice in keywords.VOICES and p.variant in keywords.VARIANTS for p in people)
    assert all(25 <= p.pitch <= 75 and 120 <= p.speed <= 210 for p in people)


def test_a_failed_build_leaves_nothing(tmp_path, monkeypatch) -> None:
    calls = []

    def fail(*args):
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeFault("disk on fire")
        return 35

    monkeypatch.setattr(keywords, "_speaker_clips", fail)
    with pytest.raises(RuntimeFault, match="disk on fire"):
        keywords.make_keywords(tmp_path / "kw", speakers=3, seed=0, progress=False, workers=1)
    assert list(tmp_path.iterdir()) == []


def test_a_stale_temporary_folder_is_cleared(tmp_path, monkeypatch) -> None:
    stale = tmp_path / "kw.tmp-999999999"
    stale.mkdir()

    def stop(*args):
        raise RuntimeFault("stop here")

    monkeypatch.setattr(keywords, "_speaker_clips", stop)
    with pytest.raises(RuntimeFault):
        keywords.make_keywords(tmp_path / "kw", speakers=1, seed=0, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_foreign_folder_is_refused(tmp_path, capsys) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert keywords.main(["--out", str(tmp_path / "mine"), "--speakers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "is not a keyword set" in err and err.count("\n") == 1
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_missing_espeak_is_one_clear_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(keywords.shutil, "which", lambda name: None)
    assert keywords.main(["--out", str(tmp_path / "kw"), "--speakers", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: espeak-ng not found: install Debian's espeak-ng "
                   "(apt-get install espeak-ng; `make setup` does)\n")
    assert not (tmp_path / "kw").exists()


def test_an_espeak_failure_shows_its_stderr(tmp_path) -> None:
    with pytest.raises(RuntimeFault) as exc:
        keywords._espeak("yes", "xx-no-such-voice", 50, 160, 100, tmp_path)
    assert "\n" not in str(exc.value) and "voice does not exist" in str(exc.value)


def test_default_root_and_ensure_default(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("EMBER_NEURO_CACHE", str(tmp_path))
    assert keywords.default_root() == tmp_path / f"keywords-v{keywords.KEYWORDS_VERSION}"
    made = []
    monkeypatch.setattr(keywords, "make_keywords", lambda root, progress: made.append((root, progress)))
    assert keywords.ensure_default(progress=False) == keywords.default_root()
    assert made == [(keywords.default_root(), False)]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(keywords.default_root()) in err
    monkeypatch.setattr(keywords, "is_up_to_date", lambda root: True)
    keywords.ensure_default()
    assert len(made) == 1 and capsys.readouterr().err == ""


def test_help_shows_the_command(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        keywords.main(["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "python -m ember_neuro.audio.keywords --out" in out and "--speakers" in out


def test_bad_speaker_count_is_refused(tmp_path, capsys) -> None:
    assert keywords.main(["--out", str(tmp_path / "kw"), "--speakers", "0"]) == 2
    assert "--speakers must be >= 1" in capsys.readouterr().err


def test_audio_error_is_bad_input() -> None:
    from ember_neuro.errors import BadInput

    assert issubclass(AudioError, BadInput)
