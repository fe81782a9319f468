"""Torch-free test helpers: random units and neuron arrays, and Lava's own arithmetic as an oracle.

Importable on the Python 3.10 torch-free suite (tests/core), so nothing here may
import torch.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ember_neuro.mappers import GateUnit, NeuronArray, Synapses

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "ember_neuro" / "checkpoints"


def random_units(rng: np.random.Generator, count: int, k_max: float = 5.0) -> list[GateUnit]:
    """Typical trained values: theta in [-0.5, 1.2], k in [0.3, k_max]."""
    return [GateUnit(0, h, float(rng.uniform(-0.5, 1.2)), float(rng.uniform(0, 1)),
                     float(rng.uniform(0.3, k_max))) for h in range(count)]


def attention_params(n_layer: int, heads: int, refractory: bool = False, seed: int = 0) -> dict:
    """Raw gate arrays of a transformer (the checkpoint keys mappers/params.py reads)."""
    rng = np.random.default_rng(seed)
    out = {}
    for layer in range(n_layer):
        p = f"transformer.h.{layer}.attn.gate."
        out[p + "threshold"] = rng.uniform(-0.3, 1.1, heads)
        out[p + "leak"] = rng.uniform(-1, 1, heads)
        out[p + "steepness"] = rng.uniform(-1, 3, heads)
        if refractory:
            out[p + "ref_strength"] = rng.uniform(-3, 1, heads)
            out[p + "cross_layer_weight"] = rng.uniform(-3, 1, heads)
    return out


def cfc_params(n_layer: int, dim: int, seed: int = 0) -> dict:
    """Raw gate arrays of a Liquid Ember (CfC) network."""
    rng = np.random.default_rng(seed)
    return {f"layers.{layer}.gate.{name}": rng.uniform(lo, hi, dim)
            for layer in range(n_layer)
            for name, lo, hi in (("threshold", -0.5, 1.5), ("leak", -1, 1), ("steepness", -1, 2))}


def doc_table(path: Path, after: str) -> list[str]:
    """The backticked names in the first column of the first markdown table after the line that
    starts with `after` (the field tables of docs/*.md)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(after))
    first = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("|"))
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines))
    return [name for row in lines[first + 2:end] for name in re.findall(r"`([^`]+)`", row.split("|")[1])]


def make_array(fixed: bool, timesteps: int, n: int, unit_index: np.ndarray,
               host: list[tuple[str, np.ndarray, int]], tables: list[tuple[str, np.ndarray, int, np.ndarray]],
               bias_mant: np.ndarray, bias_exp: np.ndarray, du: float, dv: float, vth: float) -> NeuronArray:
    """A NeuronArray from per-neuron weights.

    host: [(source, w (M,), exp)]; tables: [(source, w (M,), exp, table (T, C))].
    """
    i = len(unit_index)
    m = i * n
    slot, channel = np.repeat(np.arange(i), n), np.tile(np.arange(n), i)
    syn = [Synapses(src, np.asarray(w), int(e), slot, None) for src, w, e in host]
    for src, w, e, table in tables:
        phases = table.shape[1] // n
        syn.append(Synapses(src, np.asarray(w), int(e), (slot % phases) * n + channel, np.asarray(table)))
    assert all(s.weight.shape == (m,) for s in syn)
    return NeuronArray(fixed=fixed, timesteps=timesteps, neurons_per_gate=n,
                       unit_index=np.asarray(unit_index), synapses=tuple(syn),
                       bias_mant=np.asarray(bias_mant), bias_exp=np.asarray(bias_exp), du=du, dv=dv, vth=vth)


def nasty_array(rng: np.random.Generator, fixed: bool, t: int, n: int, i: int,
                n_host: int = 1, n_tables: int = 1, phases: int = 1) -> NeuronArray:
    """Parameters outside the mapping's budget: wraps, clipping, leaky u and v, several connections."""
    m = i * n
    if fixed:
        big = 2 ** int(rng.integers(8, 22))
        host = [(f"h{j}", rng.integers(-300, 300, m), int(rng.integers(-8, 3))) for j in range(n_host)]
        tables = [(f"t{j}", rng.integers(-40, 300, m), int(rng.integers(-8, 3)),
                   rng.integers(-big, big, (t, n * phases))) for j in range(n_tables)]
        return make_array(True, t, n, np.zeros(i, int), host, tables, rng.integers(-40000, 40000, m),
                          rng.integers(0, 8, m), int(rng.integers(0, 4096)), int(rng.integers(0, 4096)),
                          int(rng.integers(0, 2000)))
    host = [(f"h{j}", rng.normal(0, 3, m), 0) for j in range(n_host)]
    tables = [(f"t{j}", rng.normal(0, 3, m), 0, rng.normal(0, 2, (t, n * phases))) for j in range(n_tables)]
    return make_array(False, t, n, np.zeros(i, int), host, tables, rng.normal(0, 1, m), np.zeros(m),
                      float(rng.uniform(0, 1)), float(rng.uniform(0, 1)), float(rng.uniform(0, 1)))


def nasty_payload(rng: np.random.Generator, array: NeuronArray) -> np.ndarray:
    w = array.payload_width
    if array.fixed:
        scale = 2 ** int(rng.integers(4, 23))
        return rng.integers(-scale, scale, w)
    return rng.normal(0, 3.0, w)


def lava_oracle(array: NeuronArray, x: np.ndarray) -> np.ndarray:
    """(T, M) raster from Lava's own code: weight utils, the Sparse step, LIFReset's methods.

    In process (no runtime, no forks): each connection is the (M x width) matrix the
    bridge's vector [payload | table rows] meets, processed as PySparseModelBitAcc does
    on its first step; a_in is summed the way PyInPort.recv sums several ports.
    """
    pytest.importorskip("lava")
    from ember_neuro.backends.lava import import_lava

    import_lava()
    from lava.proc.lif.models import PyLifResetModelBitAcc, PyLifResetModelFloat
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights
    from scipy.sparse import csr_matrix

    m, t, width = array.size, array.timesteps, array.source_width
    rows = np.arange(m)
    dt = np.int32 if array.fixed else np.float64
    conns, start = [], 0
    for s in array.synapses:
        w = csr_matrix((np.asarray(s.weight).astype(dt), (rows, start + s.column)), (m, width))
        if array.fixed:  # PySparseModelBitAcc's first-step weight processing
            mode = determine_sign_mode(w)
            w = truncate_weights(clip_weights(w, mode, 8), mode, 8)
        conns.append((w, s.weight_exp))
        start += array.n_inputs if s.from_host else s.table.shape[1]
    tables = [np.asarray(s.table) for s in array.tables]
    model_cls = PyLifResetModelBitAcc if array.fixed else PyLifResetModelFloat
    lif = model_cls({"reset_interval": t, "reset_offset": 0})
    lif.u, lif.v = np.zeros(m, dt), np.zeros(m, dt)
    if array.fixed:  # the builder casts ndarray Vars to their LavaPyType (int16)
        lif.bias_mant = np.asarray(array.bias_mant).astype(np.int64).astype(np.int16)
        lif.bias_exp = np.asarray(array.bias_exp).astype(np.int64).astype(np.int16)
    else:
        lif.bias_mant = np.asarray(array.bias_mant, dtype=np.float64)
        lif.bias_exp = np.asarray(array.bias_exp, dtype=np.float64)
    lif.du, lif.dv, lif.vth = array.du, array.dv, array.vth
    raster = np.zeros((t, m), bool)
    for step in range(t):
        vec = np.concatenate([np.asarray(x).astype(dt), *[tb[step].astype(dt) for tb in tables]])
        a_in = np.zeros(m, np.int16 if array.fixed else float)  # PyInPort.recv's accumulator
        for w, exp in conns:
            acc = w.dot(vec)
            if array.fixed:
                acc = np.left_shift(acc, exp) if exp > 0 else np.right_shift(acc, -exp)
            a_in = a_in + acc
        if array.fixed:
            lif.scale_bias()
            lif.scale_threshold()
        lif.subthr_dynamics(activation_in=a_in)
        spikes = lif.spiking_activation()
        lif.reset_voltage(spikes)
        raster[step] = spikes != 0
    return raster


def run_lava_isolated(fn, *args, timeout_s: float = 60.0):
    """fn(*args) -- which starts Lava itself -- in a forked child with its own process group.

    On timeout (or anything left behind) the whole group is killed: Lava's own
    stop() hangs on a stuck run.  Returns fn's result; raises TimeoutError or
    RuntimeError (with the child's exception) otherwise.
    """
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)

    def child() -> None:
        os.setsid()
        try:
            send.send(("ok", fn(*args)))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            send.send(("error", repr(exc)))

    proc = ctx.Process(target=child)
    proc.start()
    try:
        if not recv.poll(timeout_s):
            raise TimeoutError(f"Lava run exceeded {timeout_s} s; its processes were killed")
        status, value = recv.recv()
        proc.join(10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.join(5)
    if status != "ok":
        raise RuntimeError(f"Lava run failed: {value}")
    return value


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


class Completed:
    """What a command returned: its exit status and what it printed (like subprocess.CompletedProcess)."""

    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr

    def json(self) -> dict:
        import json

        return json.loads(self.stdout)


def run_main(module: str, *args: str) -> Completed:
    """``python -m <module> args`` in this process: its main(argv), stdout and stderr captured.

    The same code path as the command line (parsing, the one runner, exit codes) without a new
    interpreter -- every CLI test that is not about processes uses this; what needs a process of
    its own (a killed child, a bundle script with torch blocked) runs one (:func:`run_script`).
    """
    import importlib
    import io

    out, err = io.StringIO(), io.StringIO()
    mod = importlib.import_module(module)
    main = getattr(mod, "main", None) or importlib.import_module(module + ".__main__").main
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse refusals
            code = exc.code if isinstance(exc.code, int) else 1
    return Completed(int(code or 0), out.getvalue(), err.getvalue())


# Runs a bundle script as __main__ with some top-level modules made unimportable.
BLOCKED_RUN = textwrap.dedent("""
    import runpy, sys
    blocked, script, *args = sys.argv[1:]
    for name in filter(None, blocked.split(",")):
        sys.modules[name] = None  # `import name` raises ImportError, find_spec(name) is None
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")
""")


def run_script(bundle: Path, script: str, *args: str, blocked: str = "torch") -> subprocess.CompletedProcess:
    """A bundle script in its own interpreter with `blocked` modules unimportable (torch: as on INRC)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-c", BLOCKED_RUN, blocked, str(bundle / script), *args],
                          capture_output=True, text=True, timeout=300, env=env, cwd=bundle)


def runner_for(group, width: int, fixed: bool, unit_index: np.ndarray | None = None, **kwargs):
    """A Lava runner for `width` input slots of a group (default: the slots cycle through the units)."""
    from ember_neuro.backends.lava import LavaGateRunner

    unit_index = np.arange(width) % len(group.units) if unit_index is None else np.asarray(unit_index)
    return LavaGateRunner(group.layout(unit_index.ravel(), fixed), **kwargs)
