"""Export the gate neurons to NIR and run them in snnTorch and Norse through NIR.

Why NIR: it is the exchange format both reference simulators import, so a gate
network written once can be replayed by tools we did not write.  The graph is

    input (U + N) --> affine (U*N x (U+N), bias) --> lif (U*N) --> output

Input vector at window step t: x[0:U] = |p| of each unit (held for the window),
x[U:U+N] = dither[t] (the dither generator is an *input*: NIR has no time-varying
source).  Neuron m = u*N + c: weight w_in[u] on column u, w_dither[u] on column
U + c, bias -k*theta (per-gate offsets travel as the Affine bias, because
snnTorch's importer refuses per-neuron thresholds and any non-zero v_leak).

LIF (NIR: tau dv/dt = (v_leak - v) + r I, spike iff v > v_threshold, v <- v_reset)
with tau = dt, r = 1, v_leak = 0, v_threshold = 0, v_reset = 0: one Euler step of
length dt gives v = I, the memoryless du = dv = 1 neuron of the float mapping.
dt = 1e-4 because snnTorch's importer hard-codes it (beta = 1 - dt/tau = 0);
Norse's ``from_nir`` defaults to dt = 1e-3 and is always given dt explicitly here.

What NIR cannot express is recorded in the graph metadata: the dither table, T,
N, the window reset (u = v = 0 every T steps), the trained units, and the
host-side leak product and row renormalisation.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from ember_neuro.mappers.description import MappedGates, NeuronArray

from ember_neuro.reference import require

FORMAT = "ember-neuro/lif-gates"
FORMAT_VERSION = 1
NIR_DT = 1e-4  # snnTorch's import_from_nir hard-codes dt = 1e-4
NODES = {"input": "Input", "affine": "Affine", "lif": "LIF", "output": "Output"}
EDGES = {("input", "affine"), ("affine", "lif"), ("lif", "output")}
HOST_SIDE = (
    "fire rate = spike count / (N T) of a unit's N neurons; gated = p * (leak + (1 - leak) * "
    "rate); p' = gated * sum_row(p) / sum_row(gated). Leak product and row renormalisation "
    "need the whole query row and run on the host."
)


def to_nir(mapped: MappedGates, dt: float = NIR_DT) -> Any:
    """NIR graph of all U gate units (N neurons each) with float parameters."""
    nir = require("nir")
    fp, n, units = mapped.float_params, mapped.neurons_per_gate, mapped.units
    u_count, m = len(units), len(units) * mapped.neurons_per_gate
    unit = np.arange(m) // n
    weight = np.zeros((m, u_count + n))
    weight[np.arange(m), unit] = fp.w_in[unit]
    weight[np.arange(m), u_count + np.arange(m) % n] = fp.w_dither[unit]
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "dt": float(dt),
        "timesteps": mapped.timesteps, "neurons_per_gate": n, "n_units": u_count,
        "dither": np.asarray(fp.dither, np.float64), "levels": mapped.levels,
        "units": json.dumps([dict(name=u.name, layer=u.layer, head=u.head, theta=u.theta,
                                  leak=u.leak, k=u.k) for u in units]),
        "input_layout": f"x[0:{u_count}] = |p| per unit, held for the window; "
                        f"x[{u_count}:{u_count + n}] = dither[t] (metadata 'dither', (T, N))",
        "neuron_order": "m = unit * neurons_per_gate + channel",
        "window": "membrane state reset to 0 at every window start (every T steps)",
        "timing": "no synaptic delay: step t's input decides step t's spike (Lava's Dense "
                  "delay is absorbed by its sources leading by one step)",
        "host_side": HOST_SIDE,
    }
    nodes = {
        "input": nir.Input(input_type={"input": np.array([u_count + n])}),
        "affine": nir.Affine(weight=weight, bias=np.asarray(fp.bias_mant, np.float64)[unit]),
        "lif": nir.LIF(tau=np.full(m, float(dt)), r=np.ones(m), v_leak=np.zeros(m),
                       v_threshold=np.full(m, float(fp.vth)), v_reset=np.zeros(m)),
        "output": nir.Output(output_type={"output": np.array([m])}),
    }
    return nir.NIRGraph(nodes=nodes, edges=sorted(EDGES), metadata=meta)


def write_gates(mapped: MappedGates, path: str | Path, dt: float = NIR_DT) -> Path:
    """Write the gate network with ``nir.write``; returns the path."""
    require("nir").write(str(path), to_nir(mapped, dt))
    return Path(path)


def _refuse(why: str) -> ValueError:
    return ValueError(f"not an ember-neuro gate network ({FORMAT} v{FORMAT_VERSION}): {why}")


def check_gate_graph(graph: Any) -> dict[str, Any]:
    """Validate a graph as one written by :func:`to_nir`; returns its metadata."""
    nir = require("nir")
    if not isinstance(graph, nir.NIRGraph):
        raise _refuse(f"got a {type(graph).__name__}, not a NIRGraph")
    meta = dict(graph.metadata or {})
    fmt, version = meta.get("format"), meta.get("format_version")
    fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
    if fmt != FORMAT or version is None or np.ndim(version) or int(version) != FORMAT_VERSION:
        raise _refuse(f"metadata format is {fmt!r} version {version!r}")
    kinds = {k: type(v).__name__ for k, v in graph.nodes.items()}
    if kinds != NODES or {tuple(e) for e in graph.edges} != EDGES:
        raise _refuse(f"expected nodes {NODES} in a chain, found {kinds}")
    try:
        u, n, t = int(meta["n_units"]), int(meta["neurons_per_gate"]), int(meta["timesteps"])
        dt, dither_shape = float(meta["dt"]), np.shape(meta["dither"])
    except (KeyError, TypeError, ValueError) as exc:
        raise _refuse(f"metadata incomplete ({type(exc).__name__}: {exc})") from None
    w, lif = graph.nodes["affine"].weight, graph.nodes["lif"]
    if w.shape != (u * n, u + n) or dither_shape != (t, n):
        raise _refuse(f"affine {w.shape} / dither {dither_shape} do not fit U={u}, N={n}, T={t}")
    memoryless = (np.all(lif.tau == dt) and np.all(lif.r == 1) and np.all(lif.v_leak == 0)
                  and np.all(lif.v_reset == 0) and np.unique(lif.v_threshold).size == 1)
    if not memoryless:
        raise _refuse("LIF must be memoryless: tau = dt, r = 1, v_leak = v_reset = 0, one threshold")
    return meta


def read_gates(path: str | Path) -> Any:
    """``nir.read`` + :func:`check_gate_graph`; any other file is refused with a ValueError."""
    nir = require("nir")
    try:
        graph = nir.read(str(path))
    except Exception as exc:  # h5py/NIR raise many types for foreign files
        why = " ".join(str(exc).split())  # one line, whatever h5py says
        raise ValueError(f"{path}: cannot be read as NIR ({type(exc).__name__}: {why})") from None
    try:
        check_gate_graph(graph)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return graph


def gate_array(graph: Any, batch: int) -> NeuronArray:
    """The float :class:`NeuronArray` a graph describes, for `batch` inputs per unit.

    Input i = b*U + u, so neuron b*U*N + m of the array is neuron m of batch row b.
    """
    meta = check_gate_graph(graph)
    u, n = int(meta["n_units"]), int(meta["neurons_per_gate"])
    w, lif = graph.nodes["affine"].weight, graph.nodes["lif"]
    rows = np.arange(u) * n
    per = np.tile(np.arange(u * n), batch)
    return NeuronArray(
        fixed=False, timesteps=int(meta["timesteps"]), neurons_per_gate=n,
        unit_index=np.tile(np.arange(u), batch),
        w_in=w[rows, np.arange(u)][per // n], w_dither=w[np.arange(u * n), u + np.arange(u * n) % n][per],
        bias_mant=np.asarray(graph.nodes["affine"].bias, np.float64)[per],
        bias_exp=np.zeros(per.size), channel=per % n, in_weight_exp=0, dither_weight_exp=0,
        dither=np.asarray(meta["dither"], np.float64), du=1.0, dv=1.0,
        vth=float(np.unique(lif.v_threshold)[0]),
    )


def window_inputs(graph: Any, p: np.ndarray) -> np.ndarray:
    """(T, B, U+N) input of one window: |p| (B,) for every unit, or (B, U) per unit."""
    meta = check_gate_graph(graph)
    u, dither = int(meta["n_units"]), np.asarray(meta["dither"], np.float64)
    x = np.abs(np.asarray(p, np.float64))
    x = np.repeat(x[:, None], u, axis=1) if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[1] != u:
        raise ValueError(f"p must be (B,) or (B, {u}), got {np.shape(p)}")
    t = dither.shape[0]
    return np.concatenate([np.broadcast_to(x, (t, *x.shape)),
                           np.broadcast_to(dither[:, None, :], (t, x.shape[0], dither.shape[1]))], 2)


def load_snntorch(graph: Any) -> Any:
    """snnTorch module via ``import_from_nir`` (its chatter on stdout is swallowed)."""
    check_gate_graph(graph)
    imp = require("snntorch.import_nir")
    with contextlib.redirect_stdout(io.StringIO()):
        return imp.import_from_nir(graph)


def load_norse(graph: Any, dt: float | None = None) -> Any:
    """Norse module via ``from_nir`` with dt explicit (default: the graph's dt, not 1e-3)."""
    meta = check_gate_graph(graph)
    norse = require("norse.torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # nirtorch.load deprecation
        return norse.from_nir(graph, dt=float(meta["dt"]) if dt is None else dt)


def simulate(module: Any, graph: Any, p: np.ndarray, dtype: Any = None) -> np.ndarray:
    """Run one window; spikes (T, B*U*N) bool in :func:`gate_array` neuron order.

    dtype defaults to float32, what both importers build; float64 recasts the module,
    but its parameters were already rounded to float32 by the importers.
    """
    torch = require("torch")
    dtype = dtype or torch.float32
    module = module.to(dtype)
    for sub in module.modules():  # snnTorch keeps membrane inside the module (init_hidden)
        if callable(getattr(sub, "reset_mem", None)):
            sub.reset_mem()
    inputs = torch.as_tensor(window_inputs(graph, p)).to(dtype)
    state, out = None, []
    with torch.no_grad():
        for step in inputs:
            z, state = module(step, state)
            out.append(z.reshape(-1).bool())
    return torch.stack(out).numpy()
