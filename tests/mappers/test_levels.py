"""The dither's level sets: uniform (the rate code's absolute limit) and log (relative precision
for nearly closed gates).  Pure mapping properties; the Lava agreement for log levels is in
tests/core/test_lava_runtime.py's style, here against the numpy reference's full dynamics."""

import math

import numpy as np
import pytest

from ember_neuro.backends import numpy_ref
from ember_neuro.gates import fire_curve_np
from ember_neuro.mappers import GateUnit, MappingOptions, load_mapped, map_gates, save_mapped
from ember_neuro.mappers.gate import check_options, level_points, logit_levels
from ember_neuro.mappers.network import MappedNetwork

pytestmark = pytest.mark.torchfree

GRID = np.linspace(0.0, 1.0, 2001)


@pytest.mark.parametrize("nt", [1, 8, 32, 128])
def test_uniform_levels_are_the_midpoints(nt):
    q, d = level_points(nt, "uniform")
    assert np.allclose(q, (np.arange(nt) + 0.5) / nt) and np.allclose(d, np.arange(nt + 1) / nt)
    g = map_gates([GateUnit(0, 0, 0.3, 0.5, 4.0)], MappingOptions(timesteps=nt))
    assert g.decode_values is None and g.bound == 1 / (2 * nt)


@pytest.mark.parametrize("nt", [4, 32, 512])
@pytest.mark.parametrize("floor", [0.001, 0.01, 0.3])
def test_log_levels_interleave_and_refine_small_fires(nt, floor):
    q, d = level_points(nt, "log", floor)
    assert d[0] == 0.0 and d[-1] == 1.0
    assert np.all(np.diff(q) > 0) and np.all(np.diff(d) > 0)
    assert np.all(d[:-1] < q) and np.all(q < d[1:])  # every threshold between its two readings
    assert q[0] < 0.5 / nt  # finer than uniform where the gate is nearly closed ...
    assert q[-1] < 1 - 0.5 / nt  # ... coarser near fully open
    # equal steps in log(fire + floor)
    w = np.log(d + floor)
    assert np.allclose(np.diff(w), (math.log(1 + floor) - math.log(floor)) / nt)


def test_options_refuse_unknown_levels_and_floors():
    with pytest.raises(ValueError, match="unknown level set 'cubic'"):
        check_options(MappingOptions(levels="cubic"))
    with pytest.raises(ValueError, match="level floor"):
        check_options(MappingOptions(levels="log", level_floor=0.0))


@pytest.mark.parametrize("t,n", [(8, 1), (32, 4), (8, 16)])
@pytest.mark.parametrize("theta,k", [(0.66, 8.2), (0.3, 2.0), (-1.8, 0.26), (1.14, 2.82)])
def test_log_levels_realise_their_bound(t, n, theta, k):
    """Float: exactly the level set's rounding; fixed point (numpy reference, full dynamics):
    within the mapper's exact worst case, which is within the level set's bound + 0.002."""
    u = GateUnit(0, 0, theta, 0.1, k)
    g = map_gates([u], MappingOptions(timesteps=t, neurons_per_gate=n, levels="log"))
    target = fire_curve_np(GRID, theta, k)
    flt = numpy_ref.rasters(g.layout(np.zeros(GRID.size, np.int64), False), g.encode(GRID, False)[None])[0]
    flt_rate = g.decode(flt.sum(axis=0).reshape(-1, n).sum(axis=1))
    assert np.abs(flt_rate - target).max() <= g.bound + 1e-9
    fix = numpy_ref.rasters(g.layout(np.zeros(GRID.size, np.int64), True), g.encode(GRID, True)[None])[0]
    err = np.abs(g.decode(fix.sum(axis=0).reshape(-1, n).sum(axis=1)) - target).max()
    assert err <= g.fixed_worst_error[0] + 1e-12
    assert g.fixed_worst_error[0] <= g.bound + 0.002
    # the log bound is wider than uniform's 1/(2NT): the trade-off, stated
    assert g.bound > 1 / (2 * n * t)


def test_relative_error_of_nearly_closed_gates():
    """Why log levels: fires below 1/(2NT) read 0 with uniform levels, within a few % with log."""
    u = GateUnit(0, 0, 0.66, 0.0, 8.24)  # a trained head (leak ~ 0: its output is its fire)
    p = np.linspace(0.05, 0.3, 200)  # fires 0.008 .. 0.05
    target = fire_curve_np(p, u.theta, u.k)
    rel = {}
    for levels in ("uniform", "log"):
        g = map_gates([u], MappingOptions(timesteps=32, levels=levels))
        fix = numpy_ref.rasters(g.layout(np.zeros(p.size, np.int64), True), g.encode(p, True)[None])[0]
        rel[levels] = np.abs(g.decode(fix.sum(axis=0)) / target - 1).max()
    assert rel["uniform"] >= 0.99 or rel["uniform"] > 5 * rel["log"]
    assert rel["log"] < 0.2


def test_log_mapping_round_trips_and_says_it_needs_format_2(tmp_path):
    g = map_gates([GateUnit(0, 0, 0.5, 0.2, 3.0)], MappingOptions(timesteps=8, levels="log"),
                  name="attention")
    net = MappedNetwork("lif-learnable", {"attention": g}, {"timesteps": 8, "levels": "log"},
                        {"sha256": "00" * 32})
    back = load_mapped(save_mapped(net, tmp_path / "m.npz")).group("attention")
    assert np.array_equal(back.decode_values, g.decode_values) and back.bound == g.bound
    assert np.array_equal(back.levels, logit_levels(8, 1, "log"))
    import io
    import json
    import zipfile
    with zipfile.ZipFile(tmp_path / "m.npz") as z:
        header = json.loads(str(np.load(io.BytesIO(z.read("header.npy")), allow_pickle=False)[()]))
    assert header["format_version"] == 2
