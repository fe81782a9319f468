"""The docs' formulas are the code's: every ``# docs-check:`` block of docs/ runs here against the
package, and the tables of docs/mapped-format.md name every field a saved file holds.

docs/mapping.md §4 states the Loihi arithmetic and every rounding as numpy code; docs/mapped-format.md
has a reader of ``mapped.npz`` written from the docs alone.  A doc that drifts from the code (the
u decay's ``du + 1``, a floor written as a truncation, a checksum serialised another way) fails here.
Torch-free: part of the Python 3.10 suite.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from ember_neuro.backends import numpy_ref
from ember_neuro.kinds.registry import map_variant
from ember_neuro.mappers import MappedNetwork, MappingOptions, gate, loihi, save_mapped, store

from .helpers import ROOT, attention_params, cfc_params, doc_table

pytestmark = pytest.mark.torchfree
DOCS = ROOT / "docs"
BLOCK = re.compile(r"```python\n(# docs-check: ([\w-]+).*?)```", re.S)
CHECKED = {"loihi": "mapping.md", "gate": "mapping.md", "search": "mapping.md", "reader": "mapped-format.md"}


def _blocks() -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for path in sorted(DOCS.glob("*.md")):
        for code, name in BLOCK.findall(path.read_text(encoding="utf-8")):
            assert name not in found, f"two docs-check blocks named {name!r}"
            found[name] = (path.name, code)
    return found


@pytest.fixture(scope="module")
def doc() -> dict:
    """One namespace holding every checked block, executed in the order the docs build on."""
    blocks = _blocks()
    namespace: dict = {}
    for name in CHECKED:
        exec(compile(blocks[name][1], f"docs/{blocks[name][0]}:{name}", "exec"), namespace)
    return namespace


def test_every_checked_block_is_in_the_docs_and_every_block_is_checked() -> None:
    assert {name: file for name, (file, _) in _blocks().items()} == CHECKED


# -- mapping.md §4: the arithmetic -----------------------------------------------------------------

def _registers(rng: np.random.Generator, size: int, bits: int) -> np.ndarray:
    """Values of `bits`-bit registers, edges included."""
    top = 2 ** (bits - 1)
    edges = np.array([0, 1, -1, top - 1, -top, top, -top - 1], np.int64)
    return np.concatenate([edges, rng.integers(-top, top, size - len(edges))])


def test_the_neuron_step_is_loihis(doc) -> None:
    rng = np.random.default_rng(0)
    m = 4000
    for du, dv in ((0, 0), (4095, 4095), (4095, 0), (0, 4095), *rng.integers(0, 4096, (12, 2)).tolist()):
        u, v = _registers(rng, m, 25), _registers(rng, m, 25)
        a_in, bias = _registers(rng, m, 27), _registers(rng, m, 21)  # past 16 bits: the wraps show
        vth = int(rng.integers(0, 2**17))
        got = doc["lif_step"](u, v, a_in, bias, du, dv, vth)
        want = loihi.lif_fixed_step(u, v, a_in, bias, du, dv, vth)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)


def test_the_u_decay_forgets_with_du_plus_one(doc) -> None:
    """du = 4095 clears u in one step (Lava's ds_offset): ``4096 - du`` would keep u / 4096."""
    u, zero = np.array([2**22, -(2**22), 12345]), np.zeros(3, np.int64)
    u1, _, _ = doc["lif_step"](u, zero, zero, zero, 4095, 4095, 2**16)
    assert u1.tolist() == [0, 0, 0] and doc["decay"](u, 4095).tolist() == [1024, -1024, 3]


def test_shifts_floor_and_left_shifts_wrap(doc) -> None:
    rng = np.random.default_rng(1)
    acc = _registers(rng, 3000, 34)  # beyond int32: the wrap first
    for e in range(loihi.WEIGHT_EXP_MIN, loihi.WEIGHT_EXP_MAX + 1):
        np.testing.assert_array_equal(doc["wshift"](acc, e), loihi.weight_shift(acc, e))
    assert doc["wshift"](np.array([-1, -255]), -8).tolist() == [-1, -1]  # floor, not toward zero
    x = _registers(rng, 3000, 25)
    for d in (0, 1, 2048, 4095, 4096):
        np.testing.assert_array_equal(doc["decay"](x, d), loihi.decay(x, d))
    np.testing.assert_array_equal(doc["fold24"](x), loihi.fold_current(x))
    np.testing.assert_array_equal(doc["clip24"](x), loihi.clip_voltage(x))


def test_weights_follow_lavas_sign_modes(doc) -> None:
    rng = np.random.default_rng(2)
    for lo, hi in ((0, 400), (-400, 1), (-400, 400), (-3, 3), (0, 1)):
        w = rng.integers(lo, hi, 500)
        np.testing.assert_array_equal(doc["lava_weights"](w), loihi.lava_weights(w, 7))


def test_bias_split_and_every_rounding_of_the_gate(doc) -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.uniform(-6e5, 6e5, 2000), np.arange(-40, 40) + 0.5,
                             [4095.5, -4096.5, 4095 * 128 + 64, 1e9, -1e9]])
    for value in values:
        assert doc["split_bias"](float(value)) == loihi.split_bias(float(value))[:2], value
    for nt in (1, 8, 33, 128):
        for level_set in ("uniform", "log"):
            q, d = doc["level_points"](nt, level_set)
            q_pkg, d_pkg = gate.level_points(nt, level_set)
            np.testing.assert_array_equal(q, q_pkg)
            np.testing.assert_array_equal(d, d_pkg)
            levels = doc["logit_levels"](q)
            np.testing.assert_array_equal(levels, gate.logit_levels(nt, 1, level_set))
            np.testing.assert_array_equal(doc["dither_table"](levels, nt, 1, 12),
                                          gate.fixed_dither_table(levels, nt, 1, 12))
    ties = np.array([0.5, 1.5, 2.5]) / 2**12  # payload halves round to even
    assert doc["payload"](ties, 1.0, 12).tolist() == [0, 2, 2]


# -- the mapped groups: every kind that runs rate-coded, saved and read back -----------------------

def _networks() -> dict[str, MappedNetwork]:
    steep = attention_params(2, 4, seed=5)
    for layer in range(2):  # k = softplus(steepness) up to ~60: 14- and 16-bit payloads
        steep[f"transformer.h.{layer}.attn.gate.steepness"] = np.array([60.0, 30.0, 2.0, 0.5])
    temporal = attention_params(2, 2, seed=6)
    for layer in range(2):
        temporal.update({f"transformer.h.{layer}.temporal_{n}": np.array(v)
                         for n, v in (("decay", 0.9), ("threshold", 0.1), ("steepness", 1.5))})
    cases = {
        "attention": ("lif-learnable", attention_params(2, 3), MappingOptions(8, 2), None),
        "steep": ("lif-learnable", steep, MappingOptions(16, 1), None),
        "refractory": ("lif-refractory", attention_params(2, 3, refractory=True), MappingOptions(8, 1), None),
        "hidden": ("cfc-lif", cfc_params(2, 5), MappingOptions(16, 2, levels="log"),
                   {"hidden_scale": [2.0, 4.0]}),
        "membrane": ("temporal-lif", temporal, MappingOptions(8, 1),
                     {"membrane_scale": [2.0, 3.0], "importance_scale": 5.0}),
    }
    return {case: MappedNetwork(variant, map_variant(variant, params, 2, options, cal),
                                options={"timesteps": options.timesteps}, checkpoint={"sha256": "ab" * 32})
            for case, (variant, params, options, cal) in cases.items()}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, tuple[MappedNetwork, Path]]:
    folder = tmp_path_factory.mktemp("docs-mapped")
    return {case: (net, save_mapped(net, folder / f"{case}.npz")) for case, net in _networks().items()}


def _values(rng: np.random.Generator, group, slots: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every unit over a fine grid of its first input (the others random), then random slots:
    past the scale, 0, 1 and negative values too."""
    units = len(group.units)
    grid = np.linspace(0.0, 1.0, max(1, slots // (2 * units)))
    idx = np.concatenate([np.repeat(np.arange(units), len(grid)), rng.integers(0, units, slots)])
    values = {}
    for j, c in enumerate(c for c in group.fixed_params.connections if c.from_host):
        top = np.ones(len(idx)) if c.scale is None else np.asarray(c.scale, np.float64)[idx]
        x = rng.uniform(-1.2, 1.2, len(idx)) * top
        if j == 0:
            x[: units * len(grid)] = np.tile(grid, units) * top[: units * len(grid)]
        x[-4:] = [0.0, 1.0, 1.3, -0.5]
        values[c.source] = x
    return idx, values


def _package_counts(group, idx: np.ndarray, values: dict[str, np.ndarray]) -> np.ndarray:
    array = group.layout(idx, True)
    raster = numpy_ref.rasters(array, group.encode(values, True, idx)[None])[0]
    return raster.sum(axis=0).reshape(len(idx), group.neurons_per_gate)


def test_the_readers_checksum_is_the_files(doc, saved) -> None:
    for _, path in saved.values():
        header, arrays = doc["load"](path)
        assert doc["content_sha256"](header, arrays) == header["content_sha256"] == \
            store.content_digest(header, arrays)


def test_the_reader_counts_every_kind_bit_for_bit(doc, saved) -> None:
    rng = np.random.default_rng(4)
    for case, (net, path) in saved.items():
        header, arrays = doc["load"](path)
        for name, group in net.groups.items():
            if group.carries_state:
                with pytest.raises(ValueError, match="carries u, v"):
                    doc["spike_counts"](header, arrays, name, np.zeros(1, np.int64), {"input": [0.1]})
                continue
            idx, values = _values(rng, group, 600)
            counts = doc["spike_counts"](header, arrays, name, idx, values)
            want = _package_counts(group, idx, values)
            np.testing.assert_array_equal(counts, want, err_msg=f"{case}/{name}")
            np.testing.assert_array_equal(doc["fire"](arrays, name, counts), group.decode(want.sum(axis=1)))
            assert 0 < want.sum() < want.size * group.timesteps, f"{case}/{name}: the gates must switch"


def test_the_stored_integers_follow_the_documented_roundings(doc, saved) -> None:
    """Each unit's slope weight, further weights and bias are what §4's formulas give from its
    trained values and its chosen dither weight and exponents."""
    for case, (net, _) in saved.items():
        for name, group in net.groups.items():
            if group.carries_state:
                continue
            fx, fl = group.fixed_params, group.float_params
            dither = fx.connection("dither")
            np.testing.assert_array_equal(
                dither.table, doc["dither_table"](group.levels, group.timesteps, group.neurons_per_gate,
                                                  dither.bits))
            host = [c for c in fx.connections if c.from_host]
            # Delta_j: how much coarser input j's terms are than the dither's
            delta = [c.bits + c.weight_exp - dither.bits - dither.weight_exp for c in host]
            for u, unit in enumerate(group.units):
                b = int(dither.weight[u])
                scale = [1.0 if c.scale is None else float(c.scale[u]) for c in host]
                # the float arithmetic holds coef_j per unit of raw input; fixed point sees value / scale
                coef = [float(fl.connection(c.source).weight[u]) * s
                        for c, s in zip(host, scale, strict=True)]
                where = f"{case}/{name} unit {u}"
                assert int(host[0].weight[u]) == doc["slope_weights"](coef[0] * 2.0 ** -delta[0], b), where
                for c, cj, dj in zip(host[1:], coef[1:], delta[1:], strict=True):
                    assert int(c.weight[u]) == int(np.clip(np.rint(cj * b * 2.0 ** -dj), -255, 255)), where
                value = doc["gate_bias"](int(host[0].weight[u]), unit.theta / scale[0], host[0].bits,
                                         host[0].weight_exp, len(host))
                assert doc["split_bias"](value) == (int(fx.bias_mant[u]), int(fx.bias_exp[u])), where


def test_counting_without_stepping_is_the_dynamics(doc, saved) -> None:
    rng = np.random.default_rng(5)
    checked = 0
    for case, (net, _) in saved.items():
        for name, group in net.groups.items():
            if group.carries_state or group.neurons_per_gate != 1:
                continue
            idx, values = _values(rng, group, 400)
            array = group.layout(idx, True)
            drive = sum(numpy_ref.host_terms(array, group.encode(values, True, idx)[None]))[0]
            (dither,) = numpy_ref.table_terms(array)
            counts = doc["count_without_stepping"](drive, dither, numpy_ref.bias(array))
            np.testing.assert_array_equal(counts, _package_counts(group, idx, values)[:, 0],
                                          err_msg=f"{case}/{name}")
            checked += 1
    assert checked >= 3


# -- mapped-format.md: the tables name every field -------------------------------------------------

def _name_pattern(documented: str) -> re.Pattern:
    """`{group}/{float,fixed}/{source}/weight` as a regular expression over archive names."""
    parts = re.split(r"(\{[^}]*\})", documented)
    return re.compile("".join("(float|fixed)" if p == "{float,fixed}" else "[a-z_]+" if p.startswith("{")
                              else re.escape(p) for p in parts) + "$")


def test_the_format_tables_name_every_field_of_a_saved_file(doc, saved) -> None:
    fmt = DOCS / "mapped-format.md"
    arrays_documented = [_name_pattern(n) for n in doc_table(fmt, "## Arrays")]
    for _, path in saved.values():
        header, arrays = doc["load"](path)
        assert set(header) == set(doc_table(fmt, "## `header`"))
        for g in header["groups"]:
            assert set(g) == set(doc_table(fmt, "Each entry of `groups`"))
            for c in g["fixed"]["connections"]:
                assert set(c) == set(doc_table(fmt, "Each entry of `connections`"))
        for name in arrays:
            assert any(p.match(name) for p in arrays_documented), name
