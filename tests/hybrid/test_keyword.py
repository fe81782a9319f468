"""Audio Liquid Ember end to end: train, inspect, map, hybrid classification whole and streamed.

The fidelity bars are measured on the shipped keyword spotter (its gates switch: see
test_the_shipped_gates_switch), on the testing split of the project's keyword set, which the
window search never scores.  The default suite pins the window the search chooses for it
(DEFAULT_WINDOW; the search itself takes about 95 s here): the slow suite runs the search and checks
that it is this window (`make test-slow`).
"""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest
import torch

from ember_neuro.audio import keywords
from ember_neuro.audio.features import FeatureSpec
from ember_neuro.audio.wav import write_clip
from ember_neuro.hybrid import keyword
from ember_neuro.hybrid.session import Deployment, Evaluation, run_hybrid
from ember_neuro.hybrid.torch_hook import TorchHook

from ..helpers import SHIPPED, run_main

KWS = SHIPPED / "audio-cfc-lif-strong.pt"
DEFAULT_WINDOW = {"timesteps": 2, "neurons_per_gate": 16, "levels": "auto"}  # docs/figures/kws.json
MINI_SPEAKERS = 22  # the first 22 speakers of seed 0: 18 training, 1 validation, 3 testing


@pytest.fixture(scope="module")
def kws_root():
    """The project's keyword set (made by `make setup`; made here on first use otherwise)."""
    return keywords.ensure_default(progress=False)


@pytest.fixture(scope="module")
def kws_session(kws_root, shipped):
    """The shipped keyword spotter at the window the defaults choose, gates on the emulator (its
    mapping made once per session: 512 units' level choice takes most of 20 s)."""
    from ember_neuro.hybrid.session import prepare_session

    mapped = shipped.mapped("audio-cfc-lif", *DEFAULT_WINDOW.values())
    return prepare_session(Deployment(str(KWS), backend="emulator", mapped=str(mapped)))


@pytest.fixture(scope="module")
def too_small(kws_root, shipped) -> str:
    """A window far too small for the bars: one neuron per gate at T = 1, uniform levels (saved)."""
    return str(shipped.mapped("audio-cfc-lif", 1, 1, "uniform"))


@pytest.fixture(scope="module")
def mini_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("kws") / "mini"
    keywords.make_keywords(root, speakers=MINI_SPEAKERS, progress=False)
    return root


def test_the_shipped_gates_switch():
    """Most neurons attenuate strongly across their observed |h| (a pass-through gate would make
    every fidelity bar below trivially met)."""
    r = run_main("ember_neuro.inspect", str(KWS), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["variant"] == "audio-cfc-lif" and d["gate_param_count"] == 1536 and len(d["labels"]) == 35
    assert d["swing"]["strong_fraction"] >= 0.5, d["swing"]


def test_the_default_window_is_faithful_on_the_testing_split(kws_session):
    """The issue's bars at the window the defaults choose: class agreement >= 99.5 % and spiking
    accuracy within 0.3 points of float, on every clip of the testing split."""
    r = run_hybrid(kws_session.dep, ev=Evaluation(batches=0, batch_size=64), progress=False)
    assert r["clips"] == 420 and r["split"] == "testing"
    assert r["accuracy_float"] > 0.8  # the model learned the words (chance: 1 in 35)
    assert r["top1_agreement"] >= 0.995
    assert abs(r["accuracy_hybrid"] - r["accuracy_float"]) <= 0.003


@pytest.mark.slow
def test_the_defaults_choose_that_window(kws_root):
    """With no window flags the search (on the validation split's clips) picks DEFAULT_WINDOW."""
    r = run_main("ember_neuro.map", str(KWS), "--target", "emulator", "--json")
    assert r.returncode == 0, r.stderr
    choice = r.json()["window_choice"]
    assert {k: choice[k] for k in DEFAULT_WINDOW} == DEFAULT_WINDOW
    assert choice["calibration_unit"] == "clips of the validation split"
    assert choice["calibration_tokens"] == 245


def test_a_window_too_small_fails_the_bar(too_small):
    """The bar can fail: one neuron per gate at T = 1 (two levels) changes many decisions (97.4 % of
    the whole testing split agree; 192 of its clips here)."""
    dep = Deployment(str(KWS), backend="emulator", mapped=too_small)
    r = run_hybrid(dep, ev=Evaluation(batches=3, batch_size=64), progress=False)
    assert r["top1_agreement"] < 0.995


def test_streaming_decides_what_the_whole_clip_does(kws_session, kws_root):
    """Audio arriving 10 ms at a time (and in odd chunks), CfC state carried, spiking gates: the
    decision of every clip equals the whole clip's."""
    from ember_neuro.audio.speech_commands import SpeechCommands

    sc = SpeechCommands(kws_root)
    items = sc.items("testing")[::7]
    waves = np.stack([sc.clip(item) for item in items])
    with kws_session.paths(len(waves), whole=False) as paths:
        hook = TorchHook(paths)
        whole = keyword.classify(kws_session.model, waves, hook)
        for chunk in (160, 999):
            streamed = keyword.stream(kws_session.model, waves, hook, chunk=chunk)
            assert torch.equal(streamed.argmax(-1), whole.argmax(-1))
            assert torch.allclose(streamed, whole, atol=1e-3)
        # run's --batch-size: clips in batches of 7 decide as in one batch (the fire is per value)
        batched = torch.cat([keyword.classify(kws_session.model, w, hook)
                             for w in keyword.Classification(batch_size=7).batches(waves)])
        assert torch.equal(batched.argmax(-1), whole.argmax(-1))
    labels = torch.tensor([label for _, label in items])
    assert (whole.argmax(-1) == labels).float().mean() > 0.8


@pytest.mark.lava
def test_run_streams_wav_files_on_lava(kws_root, shipped):
    """`run --wav ... --stream` on lava-sim: the streamed decision equal to the whole clip's and to
    the emulator's.  The audio arrives 100 ms at a time here (one Lava exchange per layer and 10
    frames), at a small window (N = 2: an eighth of the default's neurons in Lava's simulator);
    10 ms at a time at the default window is test_streaming_decides_what_the_whole_clip_does's."""
    files = [str(kws_root / line) for line in (kws_root / "testing_list.txt").read_text().split()[:2]]
    window = ["--mapped", str(shipped.mapped("audio-cfc-lif", 2, 2, "auto"))]
    args = [str(KWS), *sum((["--wav", f] for f in files), []), *window, "--json"]
    lava = run_main("ember_neuro.run", *args, "--stream", "--chunk", "1600", "--backend", "lava-sim")
    assert lava.returncode == 0, lava.stderr
    emu = run_main("ember_neuro.run", *args, "--backend", "emulator")
    out, ref = json.loads(lava.stdout), json.loads(emu.stdout)
    assert out["stream_equals_whole"] is True and out["mode"] == "stream"
    assert [c["label"] for c in out["clips"]] == [c["label"] for c in ref["clips"]]


def _write_raw(path, rate: int, channels: int, samples: np.ndarray) -> str:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((samples * 20000).astype("<i2").tobytes())
    return str(path)


def test_bad_wav_files_are_refused_in_one_line(tmp_path, too_small):
    rng = np.random.default_rng(0)
    bad = {"22050 Hz": _write_raw(tmp_path / "rate.wav", 22050, 1, rng.uniform(-1, 1, 22050)),
           "channel": _write_raw(tmp_path / "stereo.wav", 16000, 2, rng.uniform(-1, 1, 32000)),
           "silent": _write_raw(tmp_path / "silent.wav", 16000, 1, np.zeros(16000)),
           "empty": _write_raw(tmp_path / "empty.wav", 16000, 1, np.zeros(0))}
    for fragment, path in bad.items():
        r = run_main("ember_neuro.run", str(KWS), "--wav", path, "--backend", "emulator",
                     "--mapped", too_small)
        assert r.returncode == 2, (fragment, r.stderr)
        last = r.stderr.strip().splitlines()[-1]
        assert fragment in last and path in last, last


def test_a_long_clip_is_cropped_with_a_warning(tmp_path, kws_root, too_small):
    long = np.random.default_rng(1).uniform(-0.5, 0.5, 20000)
    path = tmp_path / "long.wav"
    write_clip(path, long.astype(np.float32), 16000)
    spoken = [str(kws_root / line) for line in (kws_root / "testing_list.txt").read_text().split()[5:7]]
    files = sum((["--wav", f] for f in [str(path), *spoken]), [])
    r = run_main("ember_neuro.run", str(KWS), *files, "--backend", "emulator", "--mapped", too_small,
                 "--batch-size", "2", "--json")
    assert r.returncode == 0, r.stderr
    assert "crop" in r.stderr and str(path) in r.stderr
    assert [c["wav"] for c in r.json()["clips"]] == [str(path), *spoken]  # two batches, in order


def test_the_wrong_model_or_mode_is_refused(tmp_path):
    text_model = SHIPPED / "cfc-lif-strong.pt"
    cases = [(("ember_neuro.run", str(text_model), "--wav", "x.wav"), "needs an audio model"),
             (("ember_neuro.run", str(KWS), "--backend", "emulator"), "give --wav FILE or --eval"),
             (("ember_neuro.run", str(KWS), "--stream"), "--stream needs --wav"),
             (("ember_neuro.run", str(KWS), "--eval", "--data", str(tmp_path)), str(tmp_path))]
    for args, fragment in cases:
        r = run_main(*args)
        assert r.returncode == 2 and fragment in r.stderr.strip().splitlines()[-1], (args, r.stderr)


def test_the_ungated_baseline_is_refused_by_map(tmp_path):
    from ember_neuro.models.build import build_model
    from ember_neuro.models.checkpoint import save_checkpoint
    from ember_neuro.models.config import config_for

    cfg = config_for("audio-cfc", "tiny")
    path = tmp_path / "audio-cfc.pt"
    save_checkpoint(path, build_model(cfg), cfg, 0, 3.0, {"labels": [f"w{i}" for i in range(35)]})
    r = run_main("ember_neuro.map", str(path))
    assert r.returncode == 2
    assert "audio-cfc" in r.stderr and "without gates" in r.stderr


def test_train_and_inspect_an_audio_model(mini_set, tmp_path):
    """`train` on a Speech Commands folder writes a checkpoint with its classes and front end;
    `inspect` shows the per-layer thresholds."""
    out = tmp_path / "kws.pt"
    r = run_main("ember_neuro.train", "--variant", "audio-cfc-lif", "--preset", "tiny",
                 "--data", str(mini_set), "--out", str(out), "--quiet", "--json")
    assert r.returncode == 0, r.stderr
    assert "epoch 1:" in r.stderr and "val acc" in r.stderr
    from ember_neuro.models.checkpoint import load_checkpoint

    ck = load_checkpoint(out)
    assert ck.labels[:3] == ("backward", "bed", "bird") and ck.config.block_size == FeatureSpec().frames
    assert ck.train_config["weight_decay"] == 0.01 and ck.train_config["task"] == "35"
    assert not torch.equal(ck.model.feature_std, torch.ones_like(ck.model.feature_std))  # standardised
    shown = run_main("ember_neuro.inspect", str(out), "--data", str(mini_set))
    assert shown.returncode == 0, shown.stderr
    assert "classes 35" in shown.stdout and "L1N15" in shown.stdout
