"""The validate CLI: one real end-to-end run at T = 8, its parts without Lava, and every bad input."""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from ember_neuro import validate as CLI
from ember_neuro.backends import references as R
from ember_neuro.deploy.fidelity import UnitInputs, grid_inputs
from ember_neuro.mappers import GateUnit, MappingOptions, map_gates
from ember_neuro.mappers.loihi import threshold
from ember_neuro.validation import compare as V
from ember_neuro.validation import pipeline as P

from ..helpers import SHIPPED, run_main

CKPT = SHIPPED / "lif-learnable-strong.pt"
HAVE_REF = all(importlib.util.find_spec(m) is not None for m in ("snntorch", "norse", "nir"))
HAVE_LAVA = importlib.util.find_spec("lava") is not None
needs_ref = pytest.mark.skipif(not HAVE_REF, reason=R.INSTALL_HINT)
needs_all = pytest.mark.skipif(not (HAVE_REF and HAVE_LAVA), reason="needs Lava and the [ref] extra")
KEYS = {"timesteps", "agreement", "rate_cosine", "max_abs_error", "bound", "nir_roundtrip", "seconds"}


def validate_cli(*args: str) -> tuple[object, dict | None]:
    r = run_main("ember_neuro.validate", str(CKPT), "-T", "8", "-N", "1", "--levels", "uniform",
                 "--grid-only", "--json", *args)
    lines = r.stdout.strip().splitlines()
    return r, (json.loads(lines[0]) if r.returncode in (0, 1) and len(lines) == 1 else None)


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, dict, Path]:
    out = tmp_path_factory.mktemp("validate") / "run"
    r, summary = validate_cli("--out", str(out))
    assert r.returncode == 0 and summary is not None, r.stderr[-2000:]
    return r, summary, out


@needs_all
@pytest.mark.lava
def test_cli_json_meets_the_bars(validated) -> None:
    _, d, _ = validated
    assert KEYS <= set(d) and d["timesteps"] == 8 and d["bound"] == 1 / 16
    pairs = {f"{a}/{b}" for i, a in enumerate(V.roles().simulators) for b in V.roles().simulators[i + 1:]}
    assert set(d["agreement"]) == pairs == set(d["rate_cosine"])
    assert d["agreement"]["lava-fixed/emulator-fixed"] == 1.0
    for other in ("emulator-float", "snntorch", "norse"):
        assert d["agreement"][f"lava-float/{other}"] >= 0.9999
    assert d["agreement"]["snntorch/norse"] >= 0.9999
    assert set(d["nir_roundtrip"]) == {"snntorch", "norse"}
    assert min(d["nir_roundtrip"].values()) >= 0.9999
    assert d["max_abs_error"] <= d["bound"] + 0.002
    assert d["passed"] and d["failures"] == [] and d["seconds"] < 180
    assert [s["timesteps"] for s in d["error_vs_T"]] == list(V.SWEEP_T)


@needs_all
@pytest.mark.lava
def test_cli_writes_the_report(validated) -> None:
    _, d, out = validated
    names = sorted(p.name for p in out.iterdir())
    assert {"report.md", "report.json", "gates.nir", "error_vs_T.png"} <= set(names)
    assert [n for n in names if n.startswith("transfer_L")] == [f"transfer_L{i}.png" for i in range(4)]
    assert any(n.startswith("raster_L") for n in names)
    full = json.loads((out / "report.json").read_text())
    assert full["agreement"] == d["agreement"] and full["nir"]["matches_checkpoint"]
    for rec in full["pairs"].values():  # every difference has a cause, none "unexplained"
        assert sum(rec["causes"].values()) == rec["mismatches"] and "unexplained" not in rec["causes"]
    md = (out / "report.md").read_text()
    for section in ("## Agreement, every pair", "## Mismatches between float simulators",
                    "## NIR round trip", "hard-codes dt = 1e-4", "## Error vs T", "![error_vs_T.png]"):
        assert section in md
    assert (out / "gates.nir").stat().st_size > 0


@needs_all
@pytest.mark.lava
def test_cli_validates_an_existing_nir_file(validated, tmp_path: Path) -> None:
    _, _, out = validated
    r, d = validate_cli("--out", str(tmp_path / "again"), "--nir", str(out / "gates.nir"))
    assert r.returncode == 0 and d is not None, r.stderr[-2000:]
    assert min(d["nir_roundtrip"].values()) >= 0.9999
    nir = json.loads((tmp_path / "again" / "report.json").read_text())["nir"]
    assert nir["external"] and nir["matches_checkpoint"] and nir["file"] == str(out / "gates.nir")
    assert not (tmp_path / "again" / "gates.nir").exists()


# -- bad inputs (in process: each fails before any simulator runs) ------------------------------


def one_line_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    rc = CLI.main(argv)
    cap = capsys.readouterr()
    assert rc == 2 and cap.out == ""
    assert cap.err.startswith("error: ") and cap.err.strip().count("\n") == 0, cap.err
    return cap.err


def test_refuses_an_existing_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert "exists; pass --force" in one_line_error(capsys, [str(CKPT), "--out", str(out), "--json"])
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("variant", ["standard", "qwen-gate", "cfc"])
@needs_ref
def test_no_lif_gate(tiny_ckpts: dict, tmp_path: Path, capsys: pytest.CaptureFixture, variant: str) -> None:
    err = one_line_error(capsys, [str(tiny_ckpts[variant]), "--out", str(tmp_path / "x")])
    assert "no LIF gate to map" in err and variant in err and not (tmp_path / "x").exists()


def test_missing_reference_simulator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                     capsys: pytest.CaptureFixture) -> None:
    real = importlib.import_module

    def fake(name: str, *a: object) -> object:
        if name.split(".")[0] in ("snntorch", "norse"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *a)

    monkeypatch.setattr(R.importlib, "import_module", fake)
    err = one_line_error(capsys, [str(CKPT), "--out", str(tmp_path / "x"), "--json"])
    assert "snntorch is not installed" in err and "ember-neuro[ref]" in err


@needs_ref
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_refuses_a_nir_file_that_is_not_a_gate_network(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import nir

    other = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([3])}),
               "fc": nir.Affine(weight=np.ones((2, 3)), bias=np.zeros(2)),
               "lif": nir.LIF(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)),
               "output": nir.Output(output_type={"output": np.array([2])})},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
    nir.write(str(tmp_path / "other.nir"), other)
    (tmp_path / "junk.nir").write_bytes(b"not hdf5")
    for name, why in (("other.nir", "not an ember-neuro gate network"),
                      ("junk.nir", "cannot be read as NIR")):
        err = one_line_error(capsys, [str(CKPT), "--nir", str(tmp_path / name), "--out", str(tmp_path / "x")])
        assert why in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("args", [["-T", "0"], ["-T", "100000"], ["-N", "0"]])
def test_bad_window(args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert "out of range" in one_line_error(capsys, [str(CKPT), *args, "--out", str(tmp_path / "x")])


def test_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert "not found" in one_line_error(capsys, [str(tmp_path / "no.pt"), "--out", str(tmp_path / "x")])


# -- the parts, without Lava --------------------------------------------------------------------


def random_mapping(t: int = 8, n: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    units = [GateUnit(0, i, float(rng.uniform(-0.5, 1.5)), 0.5, float(rng.uniform(0.3, 20)))
             for i in range(6)]
    mapped = map_gates(units, MappingOptions(timesteps=t, neurons_per_gate=n))
    inputs = grid_inputs(mapped)
    for u in range(len(units)):
        inputs = inputs + UnitInputs(np.full(50, u), {"input": rng.uniform(0, 1, 50)})
    return mapped, inputs.unit_index, inputs.values["input"]


def emulated_rasters(mapped, idx, p) -> tuple[dict, object, object]:
    """Stand-ins for all six simulators: emulators and the numpy Lava-float reference."""
    from ember_neuro.backends.emulator import emulate

    fa, qa = mapped.layout(idx, False), mapped.layout(idx, True)
    ref, _ = V.float_reference(fa, mapped.encode(p, False))
    fixed = emulate(qa, mapped.encode(p, True), record=True)[1]
    flt = emulate(fa, mapped.encode(p, False), record=True)[1]
    rasters = {"lava-float": ref, "emulator-float": flt, "snntorch": ref.copy(), "norse": ref.copy(),
               "lava-fixed": fixed, "emulator-fixed": fixed.copy()}
    return rasters, fa, qa


def compared(mapped, idx, p, rasters, fa, qa) -> dict:
    xf, xq = mapped.encode(p, False), mapped.encode(p, True)
    _, v_float = V.float_reference(fa, xf)
    v_fixed, v_logit = V.fixed_drive(mapped, qa, xq)
    return V.compare(rasters, fa, xf, v_float, v_fixed, v_logit, threshold(int(qa.vth)))


def test_fixed_drive_predicts_every_fixed_spike() -> None:
    for t, n in ((8, 2), (32, 1)):
        mapped, idx, p = random_mapping(t, n)
        rasters, fa, qa = emulated_rasters(mapped, idx, p)
        v, unit = V.fixed_drive(mapped, qa, mapped.encode(p, True))
        logit = v / unit
        assert np.array_equal(v > 0, rasters["lava-fixed"])
        _, v_float = V.float_reference(fa, mapped.encode(p, False))
        assert np.abs(logit - v_float).max() < 0.05  # same drive, in logits, up to quantisation


def test_float_fixed_differences_are_explained_and_injected_ones_are_not() -> None:
    mapped, idx, p = random_mapping()
    rasters, fa, qa = emulated_rasters(mapped, idx, p)
    pairs = compared(mapped, idx, p, rasters, fa, qa)
    fx = pairs["lava-float/lava-fixed"]
    assert fx["mismatches"] > 0 and fx["causes"] == {"fixed-point quantisation": fx["mismatches"]}
    assert all(pairs[k]["mismatches"] == 0 for k in ("lava-float/snntorch", "lava-fixed/emulator-fixed"))
    # a flipped slot far from threshold is a semantic difference, and the bars say so
    _, v = V.float_reference(fa, mapped.encode(p, False))
    t, m = np.unravel_index(int(np.abs(v).argmax()), v.shape)
    rasters["norse"][t, m] = ~rasters["norse"][t, m]
    rasters["emulator-fixed"][t, m] = ~rasters["emulator-fixed"][t, m]
    pairs = compared(mapped, idx, p, rasters, fa, qa)
    assert pairs["lava-float/norse"]["causes"] == {"unexplained": 1}
    assert pairs["lava-fixed/emulator-fixed"]["causes"] == {"unexplained": 1}
    result = {"pairs": pairs, "nir": {"agreement": {}, "details": {}}, "max_abs_error": 0.0, "bound": 0.1,
              "group": "attention"}
    fails = " ".join(P.bars(result))
    assert "lava-float/norse: 1 unexplained" in fails and "not bit-exact" in fails


@needs_ref
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_nir_file_of_another_mapping_is_run_on_its_own_neurons(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    from ember_neuro.backends import lava
    from ember_neuro.export import nir_gates as G

    mapped, idx, p = random_mapping(t=8, n=1)
    other, _, _ = random_mapping(t=16, n=2, seed=7)
    calls = []

    def fake_lava(array, x, timeout_s=60.0, hardware=False):  # the numpy Lava-float reference (bit-identical,
        calls.append(array.size)  # tested): the Lava adapter, without starting Lava
        return V.float_reference(array, x[0])[0][None]

    monkeypatch.setattr(lava, "rasters", fake_lava)
    fa = mapped.layout(idx, False)
    lava_float = V.float_reference(fa, mapped.encode(p, False))[0]
    for m, foreign in ((mapped, False), (other, True)):
        graph = G.read_gates(G.write_gates(m, tmp_path / f"{foreign}.nir"))
        res = V.nir_roundtrip(mapped, graph, fa, lava_float, timeout_s=30)
        assert res["matches_checkpoint"] is not foreign
        assert res["agreement"] == {"snntorch": 1.0, "norse": 1.0}
        assert res["unit_names"] == [u.name for u in m.units] and res["timesteps"] == m.timesteps
    assert calls == [V.GRID_POINTS * 6 * 2]  # only the foreign mapping needed its own Lava run


@needs_all
@pytest.mark.slow
@pytest.mark.lava
def test_cli_shipped_checkpoint_at_t32_with_observed_p(tmp_path: Path) -> None:
    """The documented run: T = 32, grid + observed p, all bars, under 3 minutes."""
    r = run_main("ember_neuro.validate", str(CKPT), "--timesteps", "32", "-N", "1", "--levels", "uniform",
                 "--json", "--out",
                 str(tmp_path / "t32"))
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(r.stdout)
    assert d["agreement"]["lava-fixed/emulator-fixed"] == 1.0
    assert d["agreement"]["lava-float/snntorch"] >= 0.9999 and d["agreement"]["lava-float/norse"] >= 0.9999
    assert min(d["nir_roundtrip"].values()) >= 0.9999 and d["max_abs_error"] <= d["bound"] + 0.002
    assert d["passed"] and d["seconds"] < 180
