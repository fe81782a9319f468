"""The sweep's grid and its table, without a cluster: what a spec may say, what is refused before any
worker starts (one line each), cell identity, and the results table's schema and version check."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest

from ember_neuro import __version__
from ember_neuro.sweep import results
from ember_neuro.sweep.cell import error_row
from ember_neuro.sweep.grid import DEFAULT_WINDOWS, Grid, SweepError, parse_window, read_spec

from ..helpers import ROOT, SHIPPED

LIF = SHIPPED / "lif-learnable-strong.pt"


def test_the_default_grid_is_every_shipped_checkpoint_by_eight_windows_and_two_level_sets():
    cells = Grid().cells()
    shipped = sorted(p.stem for p in SHIPPED.glob("*.pt"))
    assert sorted({c.name for c in cells}) == shipped
    assert len(DEFAULT_WINDOWS) == 8
    assert len(cells) == len(shipped) * 8 * 2
    assert {c.levels for c in cells} == {"uniform", "auto"} and {c.backend for c in cells} == {"emulator"}
    assert all(c.batches == 0 for c in cells)  # the whole split
    assert {c.seed for c in cells} == {1337}  # read from each checkpoint's config
    first = [c for c in cells if c.name == "lif-learnable-strong"]
    assert first[0].nt == max(c.nt for c in first)  # the costliest first


def test_a_cell_is_named_by_what_decides_its_numbers(tmp_path):
    (cell,) = Grid(checkpoints=[str(LIF)], windows=[(4, 16)], levels=["auto"]).cells()
    moved = tmp_path / "renamed.pt"
    moved.write_bytes(LIF.read_bytes())
    (same,) = Grid(checkpoints=[str(moved)], windows=[(4, 16)], levels=["auto"]).cells()
    assert same.id == cell.id  # the bytes, not the path
    assert replace(cell, timeout=1.0).id == cell.id
    for changed in (replace(cell, timesteps=8), replace(cell, neurons_per_gate=8),
                    replace(cell, levels="uniform"),
                    replace(cell, batches=3), replace(cell, batch_size=4), replace(cell, backend="lava-sim"),
                    replace(cell, sha256="0" * 64)):
        assert changed.id != cell.id


def test_variants_name_the_shipped_checkpoints():
    names = {c.name for c in Grid(variants=["temporal-lif"], windows=[(1, 1)], levels=["uniform"]).cells()}
    assert names == {"temporal-lif-strong", "temporal-lif-hard"}


def test_a_spec_file_in_toml_or_json(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(f'checkpoints = ["{LIF}"]\nwindows = ["1x1", "8*32"]\nlevels = "auto"\nbatches = 2\n')
    g = Grid.from_spec(read_spec(toml), levels="uniform,auto")  # the command's options override the spec
    assert g.windows == [(1, 1), (8, 32)] and g.levels == ["uniform", "auto"] and g.batches == 2
    js = tmp_path / "s.json"
    js.write_text(json.dumps({"variants": ["cfc-lif"], "backends": ["emulator"], "windows": ["2x2"]}))
    assert [c.name for c in Grid.from_spec(read_spec(js)).cells()] == ["cfc-lif-strong"] * 2


@pytest.mark.parametrize(("spec", "says"), [
    ({"backends": ["emulator", "spinnaker"]}, "unknown backend 'spinnaker'"),
    ({"backends": ["float"]}, "unknown backend 'float'"),  # runs no gates: nothing to sweep
    ({"variants": ["lif-learnable", "lif-quantum"]}, "unknown variant 'lif-quantum'"),
    ({"variants": ["audio-cfc"]}, "no shipped checkpoint of variant 'audio-cfc'"),
    ({"levels": ["uniform", "cubic"]}, "unknown level set 'cubic'"),
    ({"windows": ["8x"]}, "bad window '8x'"),
    ({"windows": ["64x2048"]}, "window 64x2048"),
    ({"checkpoints": ["/nonexistent/x.pt"]}, "checkpoint /nonexistent/x.pt does not exist"),
    ({"batches": -1}, "batches must be >= 0"),
    ({"batch_size": "many"}, "batch_size must be an integer"),
])
def test_a_bad_spec_is_refused_in_one_line_before_anything_runs(spec, says):
    with pytest.raises(SweepError, match=says) as err:
        Grid.from_spec(spec).cells()
    assert "\n" not in str(err.value)


def test_a_spec_with_an_unknown_key_or_bad_syntax_is_refused(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('windos = ["1x1"]\n')
    with pytest.raises(SweepError, match="unknown key 'windos'"):
        read_spec(p)
    p.write_text('windows = ["1x1"\n')
    with pytest.raises(SweepError, match="does not parse"):
        read_spec(p)
    with pytest.raises(SweepError, match="cannot read"):
        read_spec(tmp_path / "missing.toml")


def test_parse_window():
    assert parse_window("8x32") == (8, 32) and parse_window("1X256") == (1, 256)
    with pytest.raises(SweepError):
        parse_window("eight")


def _row(cell_id: str = "c1", status: str = "ok", version: str = __version__) -> dict:
    (cell,) = Grid(checkpoints=[str(LIF)], windows=[(1, 1)], levels=["uniform"]).cells()
    row = error_row(cell, "x")
    row.update(cell=cell_id, status=status, ember_neuro=version, error=None if status == "ok" else "boom",
               top1_agreement=0.5, predictions=1024, seconds=1.25)
    return row


def test_the_table_round_trips_its_types_and_keeps_one_row_per_cell(tmp_path):
    t = results.Results(tmp_path / "r.csv")
    t.add(_row("a"))
    t.add(_row("b", status="error"))
    t.add(_row("b"))  # a rerun replaces the error row
    back = results.Results(tmp_path / "r.csv")
    assert back.done() == {"a", "b"} and len(back.rows) == 2
    r = back.rows["a"]
    assert r["top1_agreement"] == 0.5 and r["predictions"] == 1024 and r["seed"] == 1337
    assert r["mlp_skip_fraction"] is None and r["variant"] == "lif-learnable"
    with (tmp_path / "r.csv").open() as f:
        assert tuple(next(csv.reader(f))) == results.NAMES


def test_a_table_from_another_version_is_refused_not_mixed(tmp_path):
    t = results.Results(tmp_path / "r.csv")
    t.add(_row("a", version="0.0.9"))
    with pytest.raises(SweepError, match=r"computed by ember-neuro 0\.0\.9 .*refused rather than mixed"):
        results.Results(tmp_path / "r.csv")
    other = tmp_path / "other.csv"
    other.write_text("cell,status,top1\nx,ok,0.9\n")
    with pytest.raises(SweepError, match="not written by ember-neuro"):
        results.Results(other)
    cut = tmp_path / "cut.csv"
    cut.write_text(",".join(results.NAMES) + "\nabc,ok\n")
    with pytest.raises(SweepError, match="the file was edited or cut"):
        results.Results(cut)


def test_a_failed_write_leaves_the_table_as_it_was(tmp_path, monkeypatch):
    t = results.Results(tmp_path / "r.csv")
    t.add(_row("a"))
    before = (tmp_path / "r.csv").read_bytes()
    real_writer = csv.writer

    class Dying:  # a disk that fills after the header: the rename must never happen
        def __init__(self, f):
            self.w, self.n = real_writer(f), 0

        def writerow(self, row):
            self.n += 1
            if self.n > 1:
                raise OSError(28, "No space left on device")
            self.w.writerow(row)

    monkeypatch.setattr(results.csv, "writer", Dying)
    with pytest.raises(OSError):
        t.add(_row("b"))
    assert (tmp_path / "r.csv").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".r.csv")] == []


def test_docs_sweep_md_lists_every_column():
    doc = (ROOT / "docs" / "sweep.md").read_text()
    table = [line.split("|")[1].strip().strip("`") for line in doc.splitlines()
             if line.startswith("| `")]
    assert tuple(table) == results.NAMES
