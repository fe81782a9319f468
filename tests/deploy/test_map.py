"""The map CLI: outputs, JSON fields, and every bad input."""

import json
import os
import re
import stat

import pytest

from ..helpers import ROOT, SHIPPED, doc_table, run_main

CKPT = SHIPPED / "lif-learnable-strong.pt"


def test_map_emulator_json_and_outputs(tmp_path):
    out = tmp_path / "mapped"
    r = run_main("ember_neuro.map", str(CKPT), "--target", "emulator", "-T", "16", "-N", "1", "--levels",
                 "uniform",
                "--grid-only", "--no-bit-exact-check", "--json", "--out", str(out))
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert {"target", "timesteps", "neurons_per_gate", "heads", "max_abs_error", "bound",
            "emulator_bit_exact", "seconds"} <= set(d)
    assert d["timesteps"] == 16 and d["bound"] == pytest.approx(1 / 32)
    assert len(d["heads"]) == 16
    for h in d["heads"]:
        assert {"layer", "head", "theta", "leak", "k", "max_abs_error", "bound"} <= set(h)
        assert h["max_abs_error"] <= h["bound"] + 0.002
    names = sorted(p.name for p in out.iterdir())
    assert names == ["manifest.json", "mapped.npz"] + [f"transfer_L{i}.png" for i in range(4)]
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["checkpoint"]["sha256"]) == 64 and manifest["versions"]["lava-nc"] == "0.10.0"
    # docs/mapped-format.md's manifest table names every key, and every unit row's and summary's field
    table = ROOT / "docs" / "mapped-format.md"
    assert set(manifest) == set(doc_table(table, "## `manifest.json`"))
    rows = table.read_text().split("## `manifest.json`")[1].split("\n## ")[0]
    documented = {name for line in rows.splitlines() if line.startswith("| `")
                  for name in re.findall(r"`([^`]+)`", line.split("|")[3])}
    fields = set(manifest["fidelity"]) | {k for row in manifest["units"] for k in row}
    assert fields - documented == set()


def test_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "mapped"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = run_main("ember_neuro.map", str(CKPT), "--target", "emulator", "--grid-only",
                "--out", str(out))
    assert r.returncode == 2 and "exists; pass --force" in r.stderr
    assert (out / "keep.txt").read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_out(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    r = run_main("ember_neuro.map", str(CKPT), "--target", "emulator", "--out", str(ro / "x"))
    assert r.returncode == 2 and "not writable" in r.stderr


def test_out_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = run_main("ember_neuro.map", str(CKPT), "--target", "emulator", "--out", str(f), "--force")
    assert r.returncode == 2 and "not a folder" in r.stderr


@pytest.mark.parametrize("variant", ["standard", "qwen-gate", "cfc"])
def test_no_lif_gate_to_map(tiny_ckpts, variant):
    r = run_main("ember_neuro.map", str(tiny_ckpts[variant]), "--target", "emulator")
    assert r.returncode == 2
    assert "no LIF gate to map" in r.stderr and variant in r.stderr
    assert r.stderr.strip().count("\n") == 0


@pytest.mark.parametrize("args,match", [
    (["--target", "spinnaker"], "unknown backend 'spinnaker'"),
    (["--target", "float"], "does not spike"),
    (["-T", "0"], "--timesteps 0 / --neurons-per-gate 1 out of range"),
    (["-T", "100000"], "out of range"),
    (["-T", "4096", "-N", "32"], "N*T <= 65536"),
])
def test_bad_arguments(args, match):
    r = run_main("ember_neuro.map", str(CKPT), *args)
    assert r.returncode == 2 and match in r.stderr


def test_loihi2_without_extension_is_clear():
    r = run_main("ember_neuro.map", str(CKPT), "--target", "loihi2")
    assert r.returncode == 3
    assert "lava-loihi" in r.stderr and "INRC" in r.stderr


def test_missing_checkpoint():
    r = run_main("ember_neuro.map", "/nonexistent/ckpt.pt")
    assert r.returncode == 2 and "checkpoint not found" in r.stderr


def test_extreme_trained_values_are_mapped(tmp_path, tiny_ckpts):
    """theta < 0 (bypass), theta > 1, k = 50: mapped and reported, never a crash."""
    import torch

    raw = torch.load(tiny_ckpts["lif-learnable"], weights_only=True)
    sd = raw["model"]
    sd["transformer.h.0.attn.gate.threshold"] = torch.tensor([-0.7, 1.4])
    sd["transformer.h.1.attn.gate.threshold"] = torch.tensor([0.4, 3.0])
    sd["transformer.h.1.attn.gate.steepness"] = torch.tensor([50.0, 30.0])  # k = softplus ~ 50
    p = tmp_path / "extreme.pt"
    torch.save(raw, p)
    r = run_main("ember_neuro.map", str(p), "--target", "emulator", "-T", "32", "-N", "1", "--levels",
                 "uniform", "--grid-only",
                "--no-bit-exact-check", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert all(h["max_abs_error"] <= h["bound"] + 0.002 for h in d["heads"])


def test_map_chooses_the_window_for_an_error_target(tmp_path):
    r = run_main("ember_neuro.map", str(CKPT), "--target", "emulator", "--grid-only", "--max-error",
                "0.02", "--neuron-budget", "4096", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    c = d["choice"]
    assert c["worst_error"] <= 0.02 and c["loihi2_neurons"] <= 4096
    assert (d["timesteps"], d["neurons_per_gate"]) == (c["timesteps"], c["neurons_per_gate"])
    assert d["max_exact_worst_case"] <= 0.02
    assert c["loihi2_neurons"] == 16 * 64 * c["neurons_per_gate"]  # 16 heads x 64 slots x N


@pytest.mark.parametrize("args,match", [
    (["--max-error", "1e-5", "--neuron-budget", "2048"], "out of reach .*best reachable"),
    (["--max-error", "0.01", "--neuron-budget", "100"], "below one neuron per gate"),
    (["--max-error", "0.01", "-N", "4"], "drop one"),
    (["--neuron-budget", "5000"], "needs a target"),
    (["-T", "4096", "-N", "64"], "out of range"),
])
def test_map_budget_refusals(args, match):
    r = run_main("ember_neuro.map", str(CKPT), "--target", "emulator", "--grid-only", *args)
    assert r.returncode == 2, r.stderr
    assert re.search(match, r.stderr) and len(r.stderr.strip().splitlines()) == 1
