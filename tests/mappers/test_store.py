"""The saved mapped network: exact round trip, and every file the loader must refuse (one line each).

Torch-free: part of the Python 3.10 suite.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ember_neuro.mappers import (
    MappedFileError,
    MappedNetwork,
    MappingOptions,
    load_mapped,
    map_gates,
    save_mapped,
)
from ember_neuro.mappers import store as S

from ..helpers import random_units

pytestmark = pytest.mark.torchfree

SHA = "ab" * 32


def network(seed: int = 0, t: int = 16, n: int = 2) -> MappedNetwork:
    rng = np.random.default_rng(seed)
    group = map_gates(random_units(rng, 5, k_max=60.0), MappingOptions(timesteps=t, neurons_per_gate=n),
                      name="attention")
    return MappedNetwork(variant="lif-learnable", groups={"attention": group},
                         options={"timesteps": t, "neurons_per_gate": n, "input_bits": 12, "dither_bits": 12},
                         checkpoint={"path": "ck.pt", "sha256": SHA, "iter_num": 3, "val_loss": 1.5},
                         versions={"numpy": np.__version__})


def _same_group(a, b) -> None:
    assert a.units == b.units and (a.timesteps, a.neurons_per_gate) == (b.timesteps, b.neurons_per_gate)
    assert a.warnings == b.warnings and a.saturated == b.saturated and a.address == b.address
    for x, y in ((a.levels, b.levels), (a.k_effective, b.k_effective),
                 (a.fixed_worst_error, b.fixed_worst_error)):
        assert np.array_equal(x, y)
    for pa, pb in ((a.float_params, b.float_params), (a.fixed_params, b.fixed_params)):
        assert (pa.fixed, pa.du, pa.dv, pa.vth) == (pb.fixed, pb.du, pb.dv, pb.vth)
        assert np.array_equal(pa.bias_mant, pb.bias_mant) and np.array_equal(pa.bias_exp, pb.bias_exp)
        for ca, cb in zip(pa.connections, pb.connections, strict=True):
            assert (ca.source, ca.weight_exp, ca.bits, ca.from_host) == (cb.source, cb.weight_exp, cb.bits,
                                                                         cb.from_host)
            assert np.array_equal(ca.weight, cb.weight) and ca.weight.dtype == cb.weight.dtype
            assert (ca.table is None and cb.table is None) or np.array_equal(ca.table, cb.table)


def test_round_trip_is_exact_and_the_folder_is_accepted(tmp_path: Path) -> None:
    net = network()
    path = save_mapped(net, tmp_path / "m.npz")
    back = load_mapped(path, expect_sha256=SHA)
    assert (back.variant, dict(back.options), dict(back.checkpoint)) == \
        (net.variant, dict(net.options), dict(net.checkpoint))
    _same_group(net.group("attention"), back.group("attention"))
    folder = tmp_path / "out"
    folder.mkdir()
    save_mapped(net, folder)  # a folder receives mapped.npz, as `map --out` writes it
    _same_group(net.group("attention"), load_mapped(folder).group("attention"))
    assert not list(tmp_path.glob("*.tmp")) and not list(folder.glob(".*"))  # atomic: nothing left over


def test_the_loaded_network_runs_like_the_original(tmp_path: Path) -> None:
    from ember_neuro.backends import numpy_ref

    net = network(seed=4, t=8, n=3)
    back = load_mapped(save_mapped(net, tmp_path / "m.npz"))
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 5, 30)
    for fixed in (True, False):
        x = net.group("attention").encode(rng.uniform(0, 1, 30), fixed)
        np.testing.assert_array_equal(numpy_ref.rasters(net.group("attention").layout(idx, fixed), x),
                                      numpy_ref.rasters(back.group("attention").layout(idx, fixed), x))


def _expect(path: Path, fragment: str, **kw: object) -> None:
    with pytest.raises(MappedFileError, match=fragment) as info:
        load_mapped(path, **kw)
    assert "\n" not in str(info.value)


def _rewrite(src: Path, dst: Path, edit_header=None, edit_arrays=None, digest: bool = False) -> Path:
    """Copy a saved network with its header and/or arrays changed (optionally re-signed)."""
    with np.load(src, allow_pickle=False) as z:
        header = json.loads(str(z["header"][()]))
        arrays = {k: z[k] for k in z.files if k != "header"}
    if edit_header:
        edit_header(header)
    if edit_arrays:
        edit_arrays(arrays)
    if digest:
        header["content_sha256"] = S.content_digest(header, arrays)
    np.savez(dst, header=np.array(json.dumps(header)), **arrays)
    return dst


def test_refusals(tmp_path: Path) -> None:
    good = save_mapped(network(), tmp_path / "good.npz")
    _expect(tmp_path / "nope.npz", "not found")
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _expect(cut, "truncated, corrupt or foreign")
    text = tmp_path / "text.npz"
    text.write_text("hello")
    _expect(text, "truncated, corrupt or foreign")
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.ones(3))
    _expect(other, "no header")
    foreign = _rewrite(good, tmp_path / "foreign.npz", edit_header=lambda h: h.update(format="x/y"))
    _expect(foreign, "format is 'x/y'")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, header=np.array([{"a": 1}], dtype=object))
    _expect(pickled, "truncated, corrupt or foreign")  # allow_pickle=False: never unpickled


def test_tampered_files_are_refused(tmp_path: Path) -> None:
    good = save_mapped(network(), tmp_path / "good.npz")

    def bump_weight(arrays):
        arrays["attention/fixed/input/weight"] = arrays["attention/fixed/input/weight"] + 1

    _expect(_rewrite(good, tmp_path / "w.npz", edit_arrays=bump_weight), "checksum mismatch")
    theta = lambda h: h["groups"][0]["units"][0].update(theta=9.0)  # noqa: E731
    _expect(_rewrite(good, tmp_path / "h.npz", edit_header=theta), "checksum mismatch")
    missing = lambda a: a.pop("attention/levels")  # noqa: E731
    _expect(_rewrite(good, tmp_path / "m.npz", edit_arrays=missing, digest=True), "incomplete")


def test_newer_version_and_other_checkpoint_are_refused(tmp_path: Path) -> None:
    good = save_mapped(network(), tmp_path / "good.npz")
    newer = _rewrite(good, tmp_path / "v2.npz", digest=True,
                     edit_header=lambda h: h.update(format_version=S.FORMAT_VERSION + 1))
    _expect(newer, f"newer ember-neuro \\(format v{S.FORMAT_VERSION + 1}\\)")
    _expect(good, "mapped from another checkpoint", expect_sha256="cd" * 32)


def test_saving_into_a_full_disk_leaves_nothing_half_written(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    good = save_mapped(network(), tmp_path / "m.npz")
    before = good.read_bytes()

    def full(self, data):  # the write of the temporary file hits ENOSPC
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError, match="No space"):
        save_mapped(network(seed=1), good)
    assert good.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_header_is_plain_json_inside_a_plain_zip(tmp_path: Path) -> None:
    """The format stays readable without ember-neuro: a zip of .npy files plus JSON."""
    net = network()
    assert np.isnan(net.group("attention").host_constant).sum() == 4  # unit 1 saturates: fire 1 throughout
    assert save_mapped(net, tmp_path / "v3.npz") and S.written_version(net) == 3
    plain = dataclasses.replace(net.group("attention"), host_constant=None)
    path = save_mapped(dataclasses.replace(net, groups={"attention": plain}), tmp_path / "m.npz")
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        header = json.loads(str(np.load(io.BytesIO(z.read("header.npy")), allow_pickle=False)[()]))
    assert "attention/fixed/dither/table.npy" in names
    assert header["format"] == S.FORMAT and header["format_version"] == 1  # uniform levels: a v1 file
    assert [c["source"] for c in header["groups"][0]["fixed"]["connections"]] == ["input", "dither"]


def test_addressing_is_saved_and_older_files_get_their_groups_addressing(tmp_path: Path) -> None:
    """A group says how the host's values reach its units; a file written before that was stored
    gets the addressing of the group it names (the four groups that release mapped)."""
    from ember_neuro.mappers import Addressing

    group = network().group("attention")
    odd = Addressing(hook="mlp_out", unit_axis=-1, label="|m|", reads=(("input", "m"),))
    net = MappedNetwork("toy", {"attention": dataclasses.replace(group, addressing=odd)}, {},
                        {"sha256": SHA})
    assert load_mapped(save_mapped(net, tmp_path / "a.npz")).group("attention").address == odd
    path = save_mapped(network(), tmp_path / "b.npz")  # now strip the addressing, as older files are
    header, arrays = S._read(path)
    for g in header["groups"]:
        del g["addressing"]
    header["content_sha256"] = S.content_digest(header, arrays)
    buf = io.BytesIO()
    np.savez(buf, header=np.array(json.dumps(header)), **arrays)
    path.write_bytes(buf.getvalue())
    assert load_mapped(path).group("attention").address == S.LEGACY_ADDRESSING["attention"]
