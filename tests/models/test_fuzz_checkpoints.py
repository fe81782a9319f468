"""Seeded fuzzing: mutated checkpoints fed to `inspect` and `map` end in one line, never a traceback.

Each mutation is saved to a file and both CLIs' ``main`` run in process (a
traceback would escape ``main`` as an exception).  Mutations: byte flips,
truncations, nonsense ``model_args`` (n_head = 0 or -1, strings where numbers
belong, huge claimed sizes), wrong dtypes, missing keys, wrong shapes, foreign
values where tensors belong.
"""

from __future__ import annotations

import copy
import io
import random
from pathlib import Path

import pytest
import torch

from ember_neuro import inspect as inspect_cli
from ember_neuro import map as map_cli

from ..conftest import VOCAB, make_ckpt

SEED = 20261123
CASES = 220
NONSENSE = {
    "n_head": [0, -1, "4", 4.5, None, True, 10**6, 3],
    "n_layer": [0, -1, 10**6, "2", 2.0, None],
    "n_embd": [0, -32, 3, "x", 10**9],
    "vocab_size": [0, -5, 10**7, "65"],
    "block_size": [0, -1, 10**8, [32]],
    "cfc_units": [0, "many", -3],
    "variant": ["", "LIF", 3, None, ["lif-learnable"], "standard", "cfc-lif"],
    "dropout": [-1, 2, "x", True],
    "bias": ["yes", 1, None],
}


def _byte_flips(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 40)):
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


def _mutate_dict(raw: dict, rng: random.Random) -> dict:
    raw = copy.deepcopy(raw)
    kind = rng.choice(["args", "args", "dtype", "missing", "shape", "foreign", "extra", "config"])
    sd = raw["model"]
    key = rng.choice(sorted(sd))
    if kind == "args":
        field = rng.choice(sorted(NONSENSE))
        raw["model_args"][field] = rng.choice(NONSENSE[field])
    elif kind == "dtype":
        sd[key] = sd[key].to(rng.choice([torch.int64, torch.bool, torch.uint8, torch.float16,
                                          torch.complex64]))
    elif kind == "missing":
        if rng.random() < 0.5:
            del raw[rng.choice(["model", "model_args", "config", "iter_num", "best_val_loss"])]
        else:
            del sd[key]
    elif kind == "shape":
        t = sd[key]
        sd[key] = t.reshape(-1)[: max(0, t.numel() - rng.randint(1, 3))] if t.numel() else torch.zeros(2)
    elif kind == "foreign":
        target = rng.choice(["value", "model_args", "model", "best", "iter"])
        junk = rng.choice(["text", [1, 2], {"a": 1}, 3.5, None, torch.zeros(3)])
        if target == "value":
            sd[key] = junk
        elif target == "model_args":
            raw["model_args"] = junk
        elif target == "model":
            raw["model"] = junk
        elif target == "best":
            raw["best_val_loss"] = junk
        else:
            raw["iter_num"] = junk
    elif kind == "extra":
        raw["model_args"][rng.choice(["n_heads", "flash", "device"])] = 1
    else:
        raw["config"] = rng.choice([None, "cfg", [1], {"vocab": 12}, {"vocab": "abc"}])
    return raw


def _save(raw: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(raw, buf)
    return buf.getvalue()


def mutations(base: dict[str, bytes], raws: dict[str, dict], n: int, seed: int):
    """Every nonsense model_args value once (for an attention and a CfC variant), then random ones."""
    rng = random.Random(seed)
    first = 0
    for variant in ("lif-learnable", "cfc-lif"):
        for field, values in NONSENSE.items():
            for value in values:
                raw = copy.deepcopy(raws[variant])
                raw["model_args"][field] = value
                yield first, f"{field}={value!r}", _save(raw)
                first += 1
    for i in range(first, n):
        variant = rng.choice(sorted(base))
        how = rng.choice(["flip", "truncate", "dict", "dict", "dict"])
        if how == "flip":
            yield i, how, _byte_flips(base[variant], rng)
        elif how == "truncate":
            yield i, how, base[variant][: rng.randrange(len(base[variant]))]
        else:
            yield i, how, _save(_mutate_dict(raws[variant], rng))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Text in the tiny checkpoints' vocabulary, for the variants that calibrate on text."""
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("fuzz-text") / "text.txt"
    path.write_text("".join(rng.choice(VOCAB) for _ in range(20000)))
    return path


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, bytes], dict[str, dict]]:
    d = tmp_path_factory.mktemp("fuzz-base")
    base, raws = {}, {}
    for variant in ("lif-learnable", "lif-fixed", "temporal-lif", "cfc-lif"):
        path = make_ckpt(d / f"{variant}.pt", variant, seed=1)
        base[variant] = path.read_bytes()
        raws[variant] = torch.load(path, weights_only=True)
    return base, raws


def _one_line_or_success(code: int, err: str, what: str) -> None:
    assert code in (0, 1, 2), f"{what}: exit {code}\n{err}"
    assert "Traceback" not in err, f"{what}: traceback\n{err}"
    if code == 2:
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning:")]
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{what}:\n{err}"


def test_mutated_checkpoints_never_raise(originals, corpus: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    base, raws = originals
    outcomes = {"refused": 0, "accepted": 0}
    path = tmp_path / "mutant.pt"
    for i, how, data in mutations(base, raws, CASES, SEED):
        path.write_bytes(data)
        for name, main, argv in (
            ("inspect", inspect_cli.main, [str(path), "--json"]),
            ("map", map_cli.main, [str(path), "--target", "emulator", "-T", "8", "-N", "1", "--grid-only",
                                   "--no-bit-exact-check", "--json", "--data", str(corpus)]),
        ):
            code = main(argv)
            err = capsys.readouterr().err
            _one_line_or_success(code, err, f"case {i} ({how}) {name}")
            outcomes["refused" if code == 2 else "accepted"] += 1
    # both kinds occurred: the fuzzer reached the checks and got past them
    assert outcomes["refused"] > 100 and outcomes["accepted"] > 20, outcomes


def test_huge_claimed_sizes_are_refused_before_anything_is_built(originals, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from ember_neuro.models import checkpoint

    built = []
    monkeypatch.setattr(checkpoint, "build_model", lambda cfg: built.append(cfg) or None)
    _, raws = originals
    for field, value in (("n_layer", 10**6), ("vocab_size", 10**7), ("n_embd", 2**20), ("block_size", 10**8)):
        raw = copy.deepcopy(raws["lif-learnable"])
        raw["model_args"][field] = value
        path = tmp_path / f"{field}.pt"
        torch.save(raw, path)
        with pytest.raises(checkpoint.CheckpointError, match="model_args") as info:
            checkpoint.load_checkpoint(path)
        assert "\n" not in str(info.value)
    raw = copy.deepcopy(raws["cfc-lif"])
    raw["model_args"]["cfc_units"] = 10**6
    torch.save(raw, tmp_path / "cfc.pt")
    with pytest.raises(checkpoint.CheckpointError, match="ff1"):
        checkpoint.load_checkpoint(tmp_path / "cfc.pt")
    assert built == []
