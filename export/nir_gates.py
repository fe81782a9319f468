"""Export a neuron group to NIR and run it in snnTorch and Norse through NIR.

Why NIR: it is the exchange format both reference simulators import, so a gate
network written once can be replayed by tools we did not write.  The graph is

    input (S U + C) --> affine (U N x (S U + C), bias) --> lif (U N) --> output

Input vector at window step t: for each of the S host sources (the connections
whose payload the host sends; "input" = |p| for attention gates) one value per
unit, x[j U + u], held for the window; then the C columns of the chip tables at
row t, x[S U:] (the dither is an *input*: NIR has no time-varying source).
Neuron m = u N + c: weight w_j[u] on column j U + u for each host source, the
table weight on column S U + (its table offset) + c, bias -k*theta (per-gate
offsets travel as the Affine bias, because snnTorch's importer refuses
per-neuron thresholds and any non-zero v_leak).

LIF (NIR: tau dv/dt = (v_leak - v) + r I, spike iff v > v_threshold, v <- v_reset)
with tau = dt, r = 1, v_leak = 0, v_threshold = 0, v_reset = 0: one Euler step of
length dt gives v = I, the memoryless du = dv = 1 neuron of the float mapping.
dt = 1e-4 because snnTorch's importer hard-codes it (beta = 1 - dt/tau = 0);
Norse's ``from_nir`` defaults to dt = 1e-3 and is always given dt explicitly here.

What NIR cannot express is recorded in the graph metadata: the connection list
(which columns are host payloads, which the chip table), the table, T, N, the
window reset (u = v = 0 every T steps), the trained units, and the host-side
leak product and row renormalisation.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ember_neuro.backends.references import require
from ember_neuro.mappers.network import NeuronArray, NeuronGroup, Synapses

FORMAT = "ember-neuro/lif-gates"
FORMAT_VERSION = 2  # v2: any number of host sources and chip tables (v1: input + dither)
NIR_DT = 1e-4  # snnTorch's import_from_nir hard-codes dt = 1e-4
NODES = {"input": "Input", "affine": "Affine", "lif": "LIF", "output": "Output"}
EDGES = {("input", "affine"), ("affine", "lif"), ("lif", "output")}
HOST_SIDE = (
    "fire rate = spike count / (N T) of a unit's N neurons; gated = p * (leak + (1 - leak) * "
    "rate); p' = gated * sum_row(p) / sum_row(gated). Leak product and row renormalisation "
    "need the whole query row and run on the host."
)


def to_nir(mapped: NeuronGroup, dt: float = NIR_DT) -> Any:
    """NIR graph of all U gate units (N neurons each) with float parameters."""
    nir = require("nir")
    ar, n, units = mapped.float_params, mapped.neurons_per_gate, mapped.units
    u_count, m = len(units), len(units) * mapped.neurons_per_gate
    layout = mapped.layout(np.arange(u_count), fixed=False)  # slot u = unit u
    hosts, tables = layout.host, layout.tables
    width = len(hosts) * u_count + sum(t.table.shape[1] for t in tables)
    weight = np.zeros((m, width))
    sources, start = [], 0
    for syn in (*hosts, *tables):
        weight[np.arange(m), start + syn.column] = syn.weight
        cols = u_count if syn.from_host else int(syn.table.shape[1])
        sources.append({"source": syn.source, "host": syn.from_host, "start": start, "columns": cols})
        start += cols
    table = (np.concatenate([np.asarray(t.table, np.float64) for t in tables], axis=1) if tables
             else np.zeros((mapped.timesteps, 0)))
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "dt": float(dt),
        "timesteps": mapped.timesteps, "neurons_per_gate": n, "n_units": u_count,
        "table": table, "levels": mapped.levels, "sources": json.dumps(sources),
        "input_scale": np.ones(u_count) if ar_fixed_scale(mapped) is None else ar_fixed_scale(mapped),
        "units": json.dumps([dict(name=u.name, layer=u.layer, head=u.head, theta=u.theta,
                                  leak=u.leak, k=u.k) for u in units]),
        "input_layout": "x[j U + u] = host source j's value for unit u, held for the window; "
                        f"x[{len(hosts) * u_count}:] = table row t (metadata 'table', (T, C))",
        "neuron_order": "m = unit * neurons_per_gate + channel",
        "window": "membrane state reset to 0 at every window start (every T steps)",
        "timing": "no synaptic delay: step t's input decides step t's spike (Lava's Sparse "
                  "delay is absorbed by its sources leading by one step)",
        "host_side": HOST_SIDE,
    }
    nodes = {
        "input": nir.Input(input_type={"input": np.array([width])}),
        "affine": nir.Affine(weight=weight, bias=np.asarray(ar.bias_mant, np.float64)[np.arange(m) // n]),
        "lif": nir.LIF(tau=np.full(m, float(dt)), r=np.ones(m), v_leak=np.zeros(m),
                       v_threshold=np.full(m, float(ar.vth)), v_reset=np.zeros(m)),
        "output": nir.Output(output_type={"output": np.array([m])}),
    }
    return nir.NIRGraph(nodes=nodes, edges=sorted(EDGES), metadata=meta)


def ar_fixed_scale(mapped: NeuronGroup) -> np.ndarray | None:
    scale = mapped.fixed_params.connection("input").scale
    return None if scale is None else np.asarray(scale, np.float64)


def write_gates(mapped: NeuronGroup, path: str | Path, dt: float = NIR_DT) -> Path:
    """Write the gate network with ``nir.write``; returns the path."""
    require("nir").write(str(path), to_nir(mapped, dt))
    return Path(path)


def _text(value: Any) -> Any:
    """NIR's HDF5 round trip may hand strings back as bytes."""
    return value.decode() if isinstance(value, bytes) else value


def _refuse(why: str) -> ValueError:
    return ValueError(f"not an ember-neuro gate network ({FORMAT} v{FORMAT_VERSION}): {why}")


def check_gate_graph(graph: Any) -> dict[str, Any]:
    """Validate a graph as one written by :func:`to_nir`; returns its metadata."""
    nir = require("nir")
    if not isinstance(graph, nir.NIRGraph):
        raise _refuse(f"got a {type(graph).__name__}, not a NIRGraph")
    meta = dict(graph.metadata or {})
    fmt, version = _text(meta.get("format")), meta.get("format_version")
    if fmt != FORMAT or version is None or np.ndim(version) or int(version) != FORMAT_VERSION:
        raise _refuse(f"metadata format is {fmt!r} version {version!r}")
    kinds = {k: type(v).__name__ for k, v in graph.nodes.items()}
    if kinds != NODES or {tuple(e) for e in graph.edges} != EDGES:
        raise _refuse(f"expected nodes {NODES} in a chain, found {kinds}")
    try:
        u, n, t = int(meta["n_units"]), int(meta["neurons_per_gate"]), int(meta["timesteps"])
        dt, table_shape = float(meta["dt"]), np.shape(meta["table"])
        sources = json.loads(_text(meta["sources"]))
        width = sum(int(src["columns"]) for src in sources)
    except (KeyError, TypeError, ValueError) as exc:
        raise _refuse(f"metadata incomplete ({type(exc).__name__}: {exc})") from None
    w, lif = graph.nodes["affine"].weight, graph.nodes["lif"]
    table_cols = sum(int(src["columns"]) for src in sources if not src["host"])
    if w.shape != (u * n, width) or table_shape != (t, table_cols):
        raise _refuse(f"affine {w.shape} / table {table_shape} do not fit U={u}, N={n}, T={t} "
                      f"and the sources {[src['source'] for src in sources]}")
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
    w, lif = np.asarray(graph.nodes["affine"].weight), graph.nodes["lif"]
    sources = json.loads(_text(meta["sources"]))
    table = np.asarray(meta["table"], np.float64)
    per = np.tile(np.arange(u * n), batch)  # neuron of the graph behind each array neuron
    unit, slot, channel = per // n, np.repeat(np.arange(batch * u), n), per % n
    synapses, t0 = [], 0
    for src in sources:
        start, cols = int(src["start"]), int(src["columns"])
        if src["host"]:
            synapses.append(Synapses(src["source"], w[per, start + unit], 0, slot, None))
        else:
            phases = cols // n
            column = (slot % phases) * n + channel
            synapses.append(Synapses(src["source"], w[per, start + column], 0, column,
                                     table[:, t0:t0 + cols]))
            t0 += cols
    return NeuronArray(
        fixed=False, timesteps=int(meta["timesteps"]), neurons_per_gate=n,
        unit_index=np.tile(np.arange(u), batch), synapses=tuple(synapses),
        bias_mant=np.asarray(graph.nodes["affine"].bias, np.float64)[per], bias_exp=np.zeros(per.size),
        du=1.0, dv=1.0, vth=float(np.unique(lif.v_threshold)[0]),
    )


def input_grid(graph: Any, points: int) -> np.ndarray:
    """(points, U) values of the first host input spanning each unit's payload range.

    The range is [0, 1] for probabilities, or [0, scale] where the graph records a
    per-unit payload scale (metadata ``input_scale``: CfC outputs, the membrane).
    """
    meta = check_gate_graph(graph)
    u = int(meta["n_units"])
    scale = np.asarray(meta.get("input_scale", np.ones(u)), np.float64).reshape(u)
    return np.linspace(0.0, 1.0, points)[:, None] * scale[None, :]


def window_inputs(graph: Any, p: np.ndarray) -> np.ndarray:
    """(T, B, S U + C) input of one window: |p| (B,) for every unit, or (B, U) per unit.

    The "input" source gets p; any other host source gets 0 (a grid over p alone).
    """
    meta = check_gate_graph(graph)
    u, table = int(meta["n_units"]), np.asarray(meta["table"], np.float64)
    sources = [s for s in json.loads(_text(meta["sources"])) if s["host"]]
    x = np.abs(np.asarray(p, np.float64))
    x = np.repeat(x[:, None], u, axis=1) if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[1] != u:
        raise ValueError(f"p must be (B,) or (B, {u}), got {np.shape(p)}")
    host = np.concatenate([x if s["source"] == "input" else np.zeros_like(x) for s in sources], axis=1)
    t = table.shape[0]
    return np.concatenate([np.broadcast_to(host, (t, *host.shape)),
                           np.broadcast_to(table[:, None, :], (t, host.shape[0], table.shape[1]))], 2)


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
