"""`export onnx` and `export inrc` for Audio Liquid Ember: host graphs (features in, class logits out)
that match PyTorch, and a bundle that verifies bit-exactly and classifies wav files like the package
with torch and librosa blocked, refusing a bad file in one line.

The keyword set is synthetic and tiny (a tone per word, three "speakers": one per split), made in
a second; the checkpoint is trained on it for a few epochs with spread gates so that both layers'
gates run on neurons and the classes differ from clip to clip.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ..helpers import run_main, run_script

pytest.importorskip("onnxruntime")
pytest.importorskip("ncps")

WINDOW = ("-T", "8", "-N", "1", "--levels", "uniform")
BLOCKED = "torch,librosa"  # the bundle needs neither


def make_keyword_set(root: Path, speakers: int = 3, seed: int = 0) -> Path:
    """A Speech Commands v2 layout: each of the 35 words a tone of its own pitch with noise, speaker
    s in split s % 3 (training, validation, testing)."""
    from ember_neuro.audio.speech_commands import WORDS_35
    from ember_neuro.audio.wav import write_clip

    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    lists: dict[str, list[str]] = {"validation": [], "testing": []}
    for w, word in enumerate(WORDS_35):
        (root / word).mkdir(parents=True)
        for s in range(speakers):
            pitch = (200 + 40 * w) * (1 + 0.02 * s)
            wave = 0.3 * np.sin(2 * np.pi * pitch * t) + 0.05 * rng.normal(size=t.size)
            name = f"{word}/{s:08x}_nohash_0.wav"
            write_clip(root / name, wave, 16000)
            split = ("training", "validation", "testing")[s % 3]
            if split in lists:
                lists[split].append(name)
    for split, names in lists.items():
        (root / f"{split}_list.txt").write_text("\n".join(names) + "\n")
    return root


@pytest.fixture(scope="module")
def kws_set(tmp_path_factory) -> Path:
    return make_keyword_set(tmp_path_factory.mktemp("kws") / "set")


@pytest.fixture(scope="module")
def audio_ckpt(kws_set, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kws-ckpt") / "audio-tiny.pt"
    r = run_main("ember_neuro.train", "--variant", "audio-cfc-lif", "--preset", "tiny", "--epochs", "5",
                 "--seed", "0", "--gate-init", "spread", "--data", str(kws_set), "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    return out


def split_wavs(kws_set: Path, count: int = 3) -> list[str]:
    """`count` files of the testing split, spread over its words."""
    names = (kws_set / "testing_list.txt").read_text().split()
    return [str(kws_set / n) for n in names[::len(names) // count][:count]]


def test_onnx_stages_match_pytorch(audio_ckpt, kws_set, tmp_path) -> None:
    from ember_neuro.export.onnx import export_onnx

    out = tmp_path / "onnx"
    r = export_onnx(str(audio_ckpt), str(out), data=str(kws_set), windows=3)
    assert r["max_abs_logit_diff"] <= 1e-4, r  # each clip alone and the three as one batch
    assert r["clips"] == 3 and r["opset"] == 17
    manifest = json.loads((out / "graphs.json").read_text())
    assert manifest["io"]["input"] == {"name": "features", "dtype": "float32", "shape": ["B", 98, 80]}
    assert manifest["io"]["state"] == [] and manifest["io"]["logits"] == ["B", 35]
    gates = [(g["hook"], g["layer"]) for step in manifest["plan"] for g in step["gates"]]
    assert gates == [("hidden", 0), ("hidden", 1)]  # a stage per layer, the gates between
    assert len(manifest["files"]) == 3


@pytest.fixture(scope="module")
def audio_bundle(audio_ckpt, kws_set, tmp_path_factory) -> Path:
    pytest.importorskip("lava")
    out = tmp_path_factory.mktemp("inrc-audio") / "bundle"
    r = run_main("ember_neuro.export", "inrc", str(audio_ckpt), "--out", str(out), *WINDOW,
                 "--data", str(kws_set), "--no-report", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["golden_windows"] == {"hidden/L0": 4, "hidden/L1": 4}  # 4 clips, a window per layer each
    return out


@pytest.mark.lava
def test_audio_bundle_contents(audio_bundle) -> None:
    b = audio_bundle
    for name in ("classify.py", "verify.py", "model/labels.json", "model/mel_basis.npy",
                 "model/onnx/graphs.json", "golden/golden.npz", "lib/ember_neuro/audio/features.py",
                 "lib/ember_neuro/audio/wav.py"):
        assert (b / name).is_file(), name
    assert not (b / "generate.py").exists() and not (b / "model" / "vocab.json").exists()
    assert len(list((b / "golden" / "clips").glob("*.wav"))) == 4
    labels = json.loads((b / "model" / "labels.json").read_text())
    assert len(labels["labels"]) == 35 and labels["block_size"] == 98
    res = json.loads((b / "resources.json").read_text())
    per = res["per_inference"]
    assert res["inferences"] == 4 and "per_token" not in res
    assert per["to_chip_messages"] == per["from_chip_messages"] == 2  # one each way per layer and clip
    assert per["synops"] > 0 and per["spikes"] > 0
    nb = res["neurobench"]
    assert set(nb["synaptic_operations"]) == {"Effective_MACs", "Effective_ACs", "Dense"}
    assert nb["synaptic_operations"]["Effective_ACs"] == per["synops"] and 0 < nb["activation_sparsity"] < 1
    board = res["board"]["batch_1"][res["board"]["closest_anchor"]]
    assert nb["footprint"] > 0 and board["inferences_per_s"] > 0
    readme = (b / "README.md").read_text()
    assert "classify.py" in readme and "Lava is archived upstream" in readme
    assert "{" not in readme.split("## Resources")[1].split("## What")[0]  # every field filled in


@pytest.mark.lava
def test_audio_bundle_verifies_and_classifies_like_the_package(audio_bundle, audio_ckpt, kws_set) -> None:
    v = run_script(audio_bundle, "verify.py", "--json", blocked=BLOCKED)
    assert v.returncode == 0, v.stderr
    d = json.loads(v.stdout)
    assert d["exact"] and {x["path"] for x in d["lava"]} == {"hidden/L0", "hidden/L1"}
    golden = json.loads((audio_bundle / "golden" / "golden.json").read_text())["clips"]
    wavs = [str(audio_bundle / c["wav"]) for c in golden] + split_wavs(kws_set)
    c = run_script(audio_bundle, "classify.py", *wavs, "--json", blocked=BLOCKED)
    assert c.returncode == 0, c.stderr
    bundle = [x["label"] for x in json.loads(c.stdout)["clips"]]
    r = run_main("ember_neuro.run", str(audio_ckpt), "--backend", "lava-sim", *WINDOW, "--data", str(kws_set),
                 *(a for w in wavs for a in ("--wav", w)), "--json")
    assert r.returncode == 0, r.stderr
    assert bundle == [x["label"] for x in json.loads(r.stdout)["clips"]]
    assert bundle[:4] == [g["predicted"] for g in golden]  # the golden clips again, now as one batch
    assert len(set(bundle)) > 1  # the check means something: the classes differ
    n = run_script(audio_bundle, "classify.py", *wavs, "--backend", "numpy", "--json",
                   blocked=BLOCKED + ",lava")
    assert n.returncode == 0, n.stderr
    assert [x["label"] for x in json.loads(n.stdout)["clips"]] == bundle  # the numpy reference is bit-exact


@pytest.mark.lava
def test_a_bad_wav_is_refused_in_one_line(audio_bundle, kws_set, tmp_path) -> None:
    from ember_neuro.audio.wav import write_clip

    bad = tmp_path / "phone.wav"
    write_clip(bad, 0.3 * np.sin(np.arange(8000) / 5.0), 8000)
    r = run_script(audio_bundle, "classify.py", split_wavs(kws_set, 1)[0], str(bad), blocked=BLOCKED)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "phone.wav" in lines[0] and "8000 Hz" in lines[0], lines
    assert r.stdout == ""  # refused before anything ran
