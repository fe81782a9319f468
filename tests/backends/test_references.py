"""snnTorch and Norse against the numpy Lava-float reference, spike for spike; NIR round trip.

Random units (theta in [-0.5, 1.2], k in [0.3, 5]) rarely come closer than ~1e-8 to
threshold, so every comparison also runs a *near-tie* case: inputs solved so that
v = k x - l + bias is within a few float64 ulps of 0 (and exact ties for odd N*T).
That is where conventions (strict >, operation order, float32) show up.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from ember_neuro.backends import references as R
from ember_neuro.export import nir_gates as G
from ember_neuro.mappers import GateUnit, MappingOptions, NeuronArray, NeuronGroup, map_gates
from ember_neuro.validation import compare as C

from ..helpers import run_lava_isolated

HAVE_REF = all(importlib.util.find_spec(m) is not None for m in ("snntorch", "norse", "nir"))
needs_ref = pytest.mark.skipif(not HAVE_REF, reason=R.INSTALL_HINT)


def random_gates(n_units: int, timesteps: int = 32, neurons: int = 1, seed: int = 0) -> NeuronGroup:
    rng = np.random.default_rng(seed)
    units = [GateUnit(0, i, float(rng.uniform(-0.5, 1.2)), float(rng.uniform(0, 1)),
                      float(rng.uniform(0.3, 5.0))) for i in range(n_units)]
    return map_gates(units, MappingOptions(timesteps=timesteps, neurons_per_gate=neurons))


def sweep(mapped: NeuronGroup, n_p: int) -> tuple[NeuronArray, np.ndarray]:
    """Every unit at every p of a grid over [0, 1]: input i = b*U + u."""
    u = len(mapped.units)
    p = np.linspace(0.0, 1.0, n_p)
    return mapped.layout(np.tile(np.arange(u), n_p), fixed=False), np.repeat(p, u)


def near_ties(mapped: NeuronGroup, count: int, seed: int = 1) -> tuple[NeuronArray, np.ndarray]:
    """Inputs x = theta + l_m / k, nudged by 0, +-1, +-2 float64 ulps and by +-2^-22, +-2^-20
    relative (float32 scale), so some slot's v is within rounding of 0: 9 inputs per pick."""
    rng = np.random.default_rng(seed)
    idx, xs = [], []
    while len(xs) < 9 * count:
        u = int(rng.integers(len(mapped.units)))
        unit = mapped.units[u]
        x = unit.theta + mapped.levels[int(rng.integers(mapped.levels.size))] / unit.k
        if x >= 0:
            nudged = [x + j * np.spacing(x) for j in range(-2, 3)]
            nudged += [x * (1 + s * 2.0**e) for s in (-1, 1) for e in (-22, -20)]
            idx += [u] * len(nudged)
            xs += nudged
    return mapped.layout(np.array(idx), fixed=False), np.array(xs)


SIMS = {"snntorch": R.run_snntorch, "norse": R.run_norse}


@needs_ref
@pytest.mark.parametrize("neurons,timesteps", [(1, 32), (3, 8)])
@pytest.mark.parametrize("sim", sorted(SIMS))
def test_float64_spike_for_spike_random_and_near_ties(sim: str, neurons: int, timesteps: int) -> None:
    mapped = random_gates(12, timesteps, neurons)
    for array, x in (sweep(mapped, 201), near_ties(mapped, 40)):
        ref, _ = C.float_reference(array, x)
        out = SIMS[sim](array, x)
        assert C.find_mismatches(array, x, ref, out) == []
        assert C.spike_agreement(ref, out) == 1.0
        assert C.rate_cosine(ref, out) == pytest.approx(1.0)
    v = C.float_reference(array, x)[1]
    assert np.abs(v - array.vth).min() < 1e-14  # the near-tie case really was near


@needs_ref
@pytest.mark.parametrize("sim", sorted(SIMS))
def test_float32_mismatches_are_found_and_explained(sim: str) -> None:
    array, x = near_ties(random_gates(12), 60)
    ref, _ = C.float_reference(array, x)
    mism = C.find_mismatches(array, x, ref, SIMS[sim](array, x, dtype=torch.float32))
    causes = {m.cause for m in mism}
    assert "float32 rounding" in causes, "float32-scale near ties should flip some spikes"
    assert causes <= {"tie", "float64 rounding", "float32 rounding"}
    assert max(abs(m.margin) for m in mism) < 1e-5


@needs_ref
def test_exact_tie_is_no_spike_everywhere() -> None:
    # N*T odd -> the middle level is logit(1/2) = 0 exactly; x = theta gives v = 0.
    mapped = random_gates(5, timesteps=33)
    x = np.array([u.theta for u in mapped.units if u.theta >= 0])
    array = mapped.layout(np.array([i for i, u in enumerate(mapped.units) if u.theta >= 0]), False)
    ref, v = C.float_reference(array, x)
    assert np.all(v[16] == 0.0) and not ref[16].any()
    for sim in SIMS.values():
        assert np.array_equal(sim(array, x), ref)
    ge = v >= array.vth  # a '>=' convention would fire at the tie: detected, margin 0
    assert ge.sum() == ref.sum() + x.size
    assert {m.cause for m in C.find_mismatches(array, x, ref, ge)} == {"tie"}


def test_reference_counts_are_the_rounded_sigmoid() -> None:
    mapped = random_gates(8, timesteps=16, neurons=2)
    array, x = sweep(mapped, 101)
    spikes, _ = C.float_reference(array, x)
    n = spikes.sum(0).reshape(-1, 2).sum(1)  # per input
    th = np.array([u.theta for u in mapped.units])[array.unit_index]
    k = np.array([u.k for u in mapped.units])[array.unit_index]
    assert np.abs(mapped.decode(n) - 1 / (1 + np.exp(-k * (x - th)))).max() <= mapped.bound + 1e-12


@needs_ref
def test_refuses_fixed_arrays_and_bad_shapes() -> None:
    mapped = random_gates(2)
    with pytest.raises(ValueError, match="float"):
        C.float_reference(mapped.layout([0, 1], fixed=True), np.zeros(2))
    with pytest.raises(ValueError, match="shape"):
        R.run_norse(mapped.layout([0, 1], fixed=False), np.zeros(3))


def test_missing_simulator_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(name: str) -> None:
        raise ImportError(name)

    monkeypatch.setattr(R.importlib, "import_module", fail)
    with pytest.raises(ImportError, match=r"ember-neuro\[ref\].*--no-deps norse==1.1.0"):
        R.require("snntorch")


# -- NIR ------------------------------------------------------------------------------



@pytest.fixture(scope="module")
def gate_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[NeuronGroup, object]:
    mapped = random_gates(9, timesteps=32, neurons=2, seed=3)
    path = G.write_gates(mapped, tmp_path_factory.mktemp("nir") / "gates.nir")
    return mapped, G.read_gates(path)


@needs_ref
def test_nir_file_describes_the_mapping(gate_file) -> None:
    mapped, graph = gate_file
    meta = graph.metadata
    assert (meta["timesteps"], meta["neurons_per_gate"], meta["dt"]) == (32, 2, G.NIR_DT)
    assert np.array_equal(meta["table"], mapped.float_params.connection("dither").table)
    assert "renormalisation" in meta["host_side"] and "L0H8" in meta["units"]
    array = G.gate_array(graph, 4)
    ref = mapped.layout(np.tile(np.arange(9), 4), fixed=False)
    assert C.is_prefix(array, ref) and array.size == ref.size
    lif = graph.nodes["lif"]
    assert np.all(lif.tau == G.NIR_DT) and np.all(lif.v_threshold == 0)


@needs_ref
@pytest.mark.parametrize("loader", ["snntorch", "norse"])
def test_nir_round_trip_spike_for_spike(gate_file, loader: str) -> None:
    mapped, graph = gate_file
    load = {"snntorch": G.load_snntorch, "norse": G.load_norse}[loader]
    p = np.linspace(0, 1, 301)
    array, x = G.gate_array(graph, p.size), np.repeat(p, len(mapped.units))
    ref, _ = C.float_reference(array, x)
    out = G.simulate(load(graph), graph, p)  # float32, as the importers build it
    assert C.find_mismatches(array, x, ref, out) == []
    # near ties: float32 parameters may flip slots, but only within float32 rounding
    tie_array, tie_x = near_ties(mapped, 30)
    p_tie = np.zeros((tie_x.size, len(mapped.units)))
    p_tie[np.arange(tie_x.size), tie_array.unit_index] = tie_x
    big = G.gate_array(graph, tie_x.size)
    out = G.simulate(load(graph), graph, p_tie)
    ref, _ = C.float_reference(big, p_tie.ravel())
    causes = {m.cause for m in C.find_mismatches(big, p_tie.ravel(), ref, out)}
    assert causes <= {"tie", "float64 rounding", "float32 rounding"}


@needs_ref
def test_norse_default_dt_is_wrong(gate_file) -> None:
    """from_nir's default dt = 1e-3 makes dt/tau = 10: v = 10 I - 9 v, spurious spikes."""
    mapped, graph = gate_file
    p = np.linspace(0, 1, 101)
    array, x = G.gate_array(graph, p.size), np.repeat(p, len(mapped.units))
    ref, _ = C.float_reference(array, x)
    out = G.simulate(G.load_norse(graph, dt=1e-3), graph, p)
    mism = C.find_mismatches(array, x, ref, out)
    assert mism and {m.cause for m in mism} == {"unexplained"}


@needs_ref
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_foreign_nir_is_refused(tmp_path) -> None:
    import nir

    w = np.ones((2, 3))
    other = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([3])}),
               "fc": nir.Affine(weight=w, bias=np.zeros(2)),
               "lif": nir.LIF(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2),
                              v_threshold=np.ones(2)),
               "output": nir.Output(output_type={"output": np.array([2])})},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
    nir.write(str(tmp_path / "other.nir"), other)
    (tmp_path / "junk.nir").write_bytes(b"not hdf5")
    for name in ("other.nir", "junk.nir", "missing.nir"):
        with pytest.raises(ValueError) as err:
            G.read_gates(tmp_path / name)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="not an ember-neuro gate network"):
        G.load_norse(other)
    # a graph exported by Norse itself (its to_nir output cannot be nir.write-n: scalar tensors)
    norse = pytest.importorskip("norse.torch")
    foreign = norse.to_nir(norse.SequentialState(torch.nn.Linear(3, 2), norse.LIFBoxCell()),
                           torch.zeros(3))
    with pytest.raises(ValueError, match="metadata format is None"):
        G.check_gate_graph(foreign)


@needs_ref
def test_tampered_gate_graph_is_refused(gate_file) -> None:
    import nir

    _, graph = gate_file
    bad = nir.NIRGraph(nodes=dict(graph.nodes), edges=list(graph.edges),
                       metadata=dict(graph.metadata), type_check=False)
    bad.nodes["lif"] = nir.LIF(tau=graph.nodes["lif"].tau * 10, r=graph.nodes["lif"].r,
                               v_leak=graph.nodes["lif"].v_leak,
                               v_threshold=graph.nodes["lif"].v_threshold)
    with pytest.raises(ValueError, match="memoryless"):
        G.check_gate_graph(bad)


# -- real Lava ----------------------------------------------------------------------------


def _lava_float_net(array: NeuronArray, x: np.ndarray, timeout_s: float = 60) -> tuple[np.ndarray, ...]:
    """Minimal independent Lava float net: RingBuffers -> Sparse -> LIFReset, monitored.

    Returns Lava's spikes and post-reset v (T, M).  Sources lead by one Lava step
    (Sparse delivers one step late); Lava step 1 is pipeline fill and dropped.
    Runs isolated, with a timeout (conftest.run_lava_isolated).
    """
    pytest.importorskip("lava")
    return run_lava_isolated(_lava_float_run, array, x, timeout_s=timeout_s)


def _lava_float_run(array: NeuronArray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from ember_neuro.backends.lava import import_lava

    import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIFReset
    from lava.proc.monitor.process import Monitor
    from lava.proc.sparse.process import Sparse
    from scipy.sparse import csr_matrix

    t, m = array.timesteps, array.size
    rows = np.arange(m)
    host = np.repeat(np.asarray(x, float)[:, None], t, axis=1)  # (W, T): payload held for the window
    tables = [np.asarray(s.table, float).T for s in array.tables]
    src = RingBuffer(data=np.concatenate([host, *tables], axis=0))
    lif = LIFReset(shape=(m,), du=array.du, dv=array.dv, vth=array.vth,
                   bias_mant=array.bias_mant.astype(float), reset_interval=t, reset_offset=2 % t)
    start = 0
    for s in array.synapses:
        syn = Sparse(weights=csr_matrix((s.weight, (rows, start + s.column)), shape=(m, src.s_out.shape[0])),
                     num_message_bits=24)
        src.s_out.connect(syn.s_in)
        syn.a_out.connect(lif.a_in)
        start += array.n_inputs if s.from_host else s.table.shape[1]
    mon_s, mon_v = Monitor(), Monitor()
    mon_s.probe(lif.s_out, t + 1)
    mon_v.probe(lif.v, t + 1)
    try:
        lif.run(condition=RunSteps(num_steps=t + 1), run_cfg=Loihi2SimCfg(select_tag="floating_pt"))
        s = mon_s.get_data()[lif.name]["s_out"][1:].astype(bool)
        v = mon_v.get_data()[lif.name]["v"][1:]
    finally:
        lif.stop()
    return s, v


def _mixed_case() -> tuple[NeuronArray, np.ndarray]:
    """Random sweep + near ties in one array (one Lava run covers both)."""
    mapped = random_gates(6, timesteps=16, neurons=2, seed=5)
    a1, x1 = sweep(mapped, 41)
    a2, x2 = near_ties(mapped, 20)
    idx = np.concatenate([a1.unit_index, a2.unit_index])
    return mapped.layout(idx, fixed=False), np.concatenate([x1, x2])


@pytest.mark.lava
def test_numpy_reference_is_bit_identical_to_lava_float() -> None:
    array, x = _mixed_case()
    s, v = _lava_float_net(array, x)
    ref, v_ref = C.float_reference(array, x)
    assert np.array_equal(s, ref)
    assert np.array_equal(v, np.where(ref, 0.0, v_ref))  # Lava's v is after the reset


@pytest.mark.lava
def test_lava_backend_float_matches_reference() -> None:
    pytest.importorskip("lava")
    from ember_neuro.backends import lava as backend

    array, x = _mixed_case()
    ref, _ = C.float_reference(array, x)
    out = backend.rasters(array, x[None], timeout_s=60)[0]
    assert C.find_mismatches(array, x, ref, out) == []
