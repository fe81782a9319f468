"""Benchmarks: where the time goes, as ratios measured in one run (these CPUs are shared and noisy,
so absolute numbers are for context; the ratios are the results).

    python -m ember_neuro.bench [--quick] [--json] [--out DIR] [--checkpoint CKPT]

Measures, on the shipped strong-gate checkpoint (default lif-learnable):

  generation   tokens/s of float, emulator and lava-sim at (T, N) = (32, 1) and (8, 4), batch 1
               and batch 8 (eight validation prompts in one batch, one gate window per layer);
               lava-sim both as the chip-side window (the default) and as the per-step network
  exchanges    the chip-side window against the per-step network at (T, N) = (32, 8) and (8, 32):
               tokens/s in one run, and the host<->chip messages, values and bytes per token in
               each direction and per layer, counted at the bridge processes, with the board
               latency per token they imply (deploy/resources.py: exchanges x cost + steps x
               step time, every anchor)
  evaluation   tokens/s of the emulator against float on the same validation batches
  lava         hybrid Lava steps/s against a bare Lava network of the same layout driven
               back to back (the runtime's own ceiling)
  neurons      neuron-steps/s of the emulator, the numpy reference, snnTorch, Norse and Lava
               (float and fixed) on the same neuron array; Lava and the emulator from 10^3 to
               10^5 neurons (width scaling)
  walls        seconds for map, validate and the INRC bundle (not with --quick)
  paper        the paper's configuration (random weights, strong gates; not with --quick): each
               command in its own process with its wall time and memory peak (whole-tree PSS and
               largest max RSS), verify.py, and lava-sim generation at T = 8, N = 32 beside the
               window the defaults choose, both bridges (ember_neuro/paper_bench.py)
  sweep        (only with --only sweep) the fidelity sweep's wall time at 2 local Dask workers
               against 1, the same grid into fresh tables, measured in one run
               (ember_neuro/sweep/speedup.py; without --quick the shipped lif-learnable checkpoint
               x the default 8 windows x 2 level sets on the whole validation split, about 20 min)
  counts       NeuroBench's figures: the host's from the neurobench package's own classes
               (Footprint, ConnectionSparsity, SynapticOperations of the nn.Linear layers, on
               validation windows; deploy/neurobench_metrics.py), ours where it cannot see: the
               attention's QK^T and P.V matmuls, and the chip (synaptic operations, spikes and
               activation sparsity of the gate path per token on lava-sim, neurons)

--json prints one object whose ``ratios`` hold emulator_gen_vs_float, emulator_eval_vs_float,
lava_steps_vs_ceiling and lava_batch8_vs_batch1 (and more).  --out DIR (refused if it exists)
receives results.json, results.md and plots.  --quick runs tiny sizes (a smoke test, seconds).
No result here is asserted by the test suite: timing belongs to this command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ember_neuro.cli import add_json_option, parser, run_and_report, torch_threads
from ember_neuro.paper_bench import paper_markdown, paper_ratios
from ember_neuro.sweep import speedup

CKPT = Path(__file__).parent / "checkpoints" / "lif-learnable-strong.pt"
HARD_CKPT = Path(__file__).parent / "checkpoints" / "temporal-lif-hard.pt"
SOFT_BASELINE = Path(__file__).parent / "checkpoints" / "temporal-lif-strong.pt"  # its equal-budget soft run
HARD_ROUNDS = 5  # alternating timed rounds per host form (the median is reported)
WINDOWS = ((32, 1), (8, 4))
EXCHANGE_WINDOWS = ((32, 8), (8, 32))
PER_STEP = "lava-sim:per-step"  # lava-sim with the per-step network (run --bridge per-step)
GOALS = {"emulator_gen_vs_float": 1 / 3, "emulator_eval_vs_float": 0.5, "lava_steps_vs_ceiling": 0.8,
         "lava_batch8_vs_batch1": 5.0, "lava_chip_vs_per_step_gen_T8_N32": 1.0,
         "lava_chip_vs_per_step_gen_T32_N8": 1.0, "board_latency_per_step_vs_chip_T8_N32": 5.0,
         "paper_gen_defaults_vs_T8_N32": 2.0, "sweep_2_workers_vs_1": 1.7}


def _deployment(ckpt: str, backend: str, t: int, n: int):
    from ember_neuro.hybrid.session import Deployment

    name, _, bridge = backend.partition(":")
    return Deployment(ckpt, backend=name, timesteps=t, neurons_per_gate=n, levels="uniform",
                      bridge=bridge or None)  # uniform: the small model's windows as measured before


def _prompts(vocab: str, data: Any, batch: int, length: int) -> list[str]:
    """`batch` validation snippets of `length` characters (equal lengths: one batch)."""
    x, _ = data.val_batches(1, batch, length, seed=7)[0]
    return ["".join(vocab[int(i)] for i in row) for row in x]


def generation(ckpt: str, tokens: int, batches: tuple[int, ...], backends: tuple[str, ...],
               windows: tuple[tuple[int, int], ...] = WINDOWS) -> list[dict]:
    from ember_neuro.hybrid.session import Generation, run_hybrid
    from ember_neuro.models.checkpoint import load_checkpoint
    from ember_neuro.models.data import load_data

    ck = load_checkpoint(ckpt)
    data = load_data(None, vocab=ck.vocab)
    rows = []
    for b in batches:
        prompts = _prompts(ck.vocab, data, b, 16)
        for backend in backends:
            for t, n in (((32, 1),) if backend == "float" else windows):
                r = run_hybrid(_deployment(ckpt, backend, t, n),
                               gen=Generation(prompts=tuple(prompts), tokens=tokens, temperature=0.0))
                rows.append({"backend": backend, "T": t, "N": n, "batch": b,
                             "tokens_per_s": r["tokens_per_s"], "lava_steps_per_s": r.get("lava_steps_per_s"),
                             "lava_steps": r.get("lava_steps"), "spike_stats": r.get("spike_stats"),
                             "startup_s": r.get("startup_seconds"), "text": r.get("text"),
                             "exchanges_per_token": r.get("exchanges_per_token"),
                             "designs": r.get("designs")})
                print(f"  gen {backend:9s} T={t:2d} N={n} B={b}: {r['tokens_per_s']:.1f} tokens/s",
                      file=sys.stderr)
    return rows


def exchanges(ckpt: str, tokens: int) -> list[dict]:
    """Both Lava designs at EXCHANGE_WINDOWS, batch 1, the same greedy prompt: tokens/s, what
    crossed per token (the bridges' counts) and the board latency per token it implies."""
    from ember_neuro.deploy import resources

    rows = generation(ckpt, tokens, (1,), ("lava-sim", PER_STEP), EXCHANGE_WINDOWS)
    for r in rows:
        per = (r["exchanges_per_token"] or {}).get("total", {})
        r["board"] = resources.board_estimate({**per, "steps": per.get("steps", 0)}) if per else None
        msgs = per.get("to_chip_messages", 0) + per.get("from_chip_messages", 0)
        print(f"  exchanges {r['backend']:18s} T={r['T']:2d} N={r['N']:2d}: {msgs:.1f} messages/token, "
              f"{per.get('to_chip_bytes', 0):,.0f} B to / {per.get('from_chip_bytes', 0):,.0f} B from "
              "the chip", file=sys.stderr)
    return rows


def evaluation(ckpt: str, batches: int, batch_size: int) -> dict:
    from ember_neuro.hybrid.session import Evaluation, run_hybrid

    out = {}
    for backend in ("float", "emulator"):
        r = run_hybrid(_deployment(ckpt, backend, 32, 1), ev=Evaluation(batches, batch_size), progress=False)
        out[backend] = {"tokens_per_s": r["tokens_per_s"], "tokens": r["tokens"]}
        print(f"  eval {backend}: {r['tokens_per_s']:.0f} tokens/s", file=sys.stderr)
    return out


def hard_spikes(hard: str, soft: str, batches: int, batch_size: int) -> dict:
    """Host seconds of the hard-spike checkpoint's forward over the same validation batches: skipping
    the MLPs of silent tokens (what ember-neuro runs), computing every MLP and masking it (the same
    spikes), and the equal-budget soft baseline (every MLP, fractional fire).  The forms alternate
    round by round and each reports its median, so a slow spell on these shared CPUs hits all."""
    import torch

    from ember_neuro.hybrid.session import EVAL_SEED
    from ember_neuro.kinds.membrane import metrics as membrane_metrics
    from ember_neuro.models.checkpoint import load_checkpoint
    from ember_neuro.models.data import load_data
    from ember_neuro.models.hooks import gate_modules, observed_fire

    ck, base = load_checkpoint(hard), load_checkpoint(soft)
    data = load_data(None, vocab=ck.vocab)
    xs = [x for x, _ in data.val_batches(batches, batch_size, ck.config.block_size, seed=EVAL_SEED)]
    membranes = [m for _, m in gate_modules(ck.model) if m.hook == "membrane"]
    stats = {layer: {"gates": fire.numel(), "firing": float((fire != 0).sum())}
             for (hook, layer), fire in observed_fire(ck.model, xs).items() if hook == "membrane"}

    def timed(model, silent: bool | None) -> float:
        for m in membranes:
            m.compute_silent = bool(silent)
        t0 = time.perf_counter()
        with torch.no_grad():
            for x in xs:
                model(x)
        return time.perf_counter() - t0

    forms = {"skip": (ck.model, False), "masked": (ck.model, True), "soft_baseline": (base.model, None)}
    seconds: dict[str, list[float]] = {k: [] for k in forms}
    timed(ck.model, False)  # warm-up
    for _ in range(HARD_ROUNDS):
        for name, (model, silent) in forms.items():
            seconds[name].append(timed(model, silent))
    for m in membranes:
        m.compute_silent = False
    out = {name: float(np.median(v)) for name, v in seconds.items()}
    out.update(membrane_metrics(stats, ck.config), tokens=len(xs) * batch_size * ck.config.block_size,
               checkpoint=os.path.relpath(hard), baseline=os.path.relpath(soft))
    print(f"  hard spikes: host {out['skip']:.3f} s skipping vs {out['masked']:.3f} s masked vs "
          f"{out['soft_baseline']:.3f} s soft ({out['mlp_skip_fraction']:.1%} of MLP calls skipped)",
          file=sys.stderr)
    return out


def lava_ceiling(ckpt: str, windows: int, timesteps: int = 32, slots: int | None = None) -> dict:
    """Bare Lava: the hybrid's attention layout, windows sent back to back, no host model."""
    from ember_neuro.backends import registry
    from ember_neuro.deploy.mapping import prepare
    from ember_neuro.mappers import MappingOptions

    prep = prepare(ckpt)
    ck = prep.ck
    g = next(iter(prep.map(MappingOptions(timesteps=timesteps)).groups.values()))  # the first gate group
    slots = slots or ck.config.block_size
    unit_index = np.repeat(np.arange(len(g.units)), slots)
    rng = np.random.default_rng(0)
    payload = g.encode(rng.uniform(0, 1, (windows, unit_index.size)) ** 3, True, unit_index)
    with registry.require("lava-sim").open(g.layout(unit_index, True), 120.0, bridge="per-step") as runner:
        runner.run_windows(payload[:1])  # warm
        t0 = time.perf_counter()
        runner.run_windows(payload)
        secs = time.perf_counter() - t0
    return {"neurons": int(unit_index.size), "windows": windows, "steps_per_s": windows * timesteps / secs}


def neuron_rates(width: int, timesteps: int, windows: int, backends: tuple[str, ...]) -> dict:
    """Neuron-steps/s of each backend on one random array of `width` gates (N = 1), the same
    inputs for every backend (its own arithmetic: fixed or float)."""
    from ember_neuro.backends import registry
    from ember_neuro.mappers import GateUnit, MappingOptions, map_gates

    rng = np.random.default_rng(1)
    units = [GateUnit(0, h, float(rng.uniform(0, 1)), 0.1, float(rng.uniform(1, 8))) for h in range(16)]
    g = map_gates(units, MappingOptions(timesteps=timesteps))
    idx = np.arange(width) % len(units)
    values = rng.uniform(0, 1, (windows, width))
    out = {}
    for name in backends:
        be = registry.require(name)
        fixed = bool(be.fixed)
        x = g.encode(values, fixed, idx)
        array = g.layout(idx, fixed)
        t0 = time.perf_counter()
        if be.persistent:  # Lava: the per-step network, whose rasters are what the others produce
            with be.open(array, 300.0, bridge="per-step") as runner:  # stopped on leaving, whatever happens
                t0 = time.perf_counter()  # without compile and start-up
                runner.run_windows(x)
        else:
            be.rasters(array, x, 300.0)
        secs = time.perf_counter() - t0
        out[name] = width * timesteps * windows / secs
        print(f"  neurons {name:14s} width {width}: {out[name]:.3g} neuron-steps/s", file=sys.stderr)
    return out


def walls(ckpt: str, tmp: Path) -> dict:
    from ember_neuro.deploy.mapping import MapRequest, map_and_measure
    from ember_neuro.export.inrc import BundleRequest, build_bundle
    from ember_neuro.validation.pipeline import ValidateRequest, validate_checkpoint

    out = {}
    t0 = time.perf_counter()
    map_and_measure(MapRequest(ckpt, "lava-sim", 32, 1, "uniform", out=str(tmp / "map"), force=True))
    out["map_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    validate_checkpoint(ValidateRequest(ckpt, 32, 1, "uniform", out=str(tmp / "validate"), force=True))
    out["validate_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    build_bundle(BundleRequest(ckpt, str(tmp / "bundle"), 32, 1, "uniform", force=True))
    out["bundle_s"] = time.perf_counter() - t0
    for k, v in out.items():
        print(f"  wall {k}: {v:.1f}", file=sys.stderr)
    return out


NB_WINDOWS = (2, 4)  # NeuroBench's host figures: batches x windows of block_size validation tokens


def counts(ckpt: str, gen_rows: list[dict], tokens: int) -> dict:
    """NeuroBench's figures: the host's by its own classes on validation windows (per token of a
    whole-window forward pass), the attention's matmuls and the chip's (the lava-sim batch-1 run at
    (32, 1)) by ours."""
    import torch

    from ember_neuro.deploy import neurobench_metrics as nbm
    from ember_neuro.deploy.budget import deployed_neurons
    from ember_neuro.deploy.mapping import prepare
    from ember_neuro.mappers import MappingOptions

    prep = prepare(ckpt)
    ck = prep.ck
    row = next(r for r in gen_rows if r["backend"] == "lava-sim" and r["batch"] == 1 and r["N"] == 1)
    stats = row["spike_stats"] or {}
    gates = sum(s["gates"] for s in stats.values())
    spikes = sum(s["spikes"] for s in stats.values())
    t, n = row["T"], row["N"]
    block = ck.config.block_size
    windows = prep.text.val_batches(*NB_WINDOWS, block, seed=0)
    host = nbm.host_counts(ck.model, windows)
    attn = nbm.attention_matmuls(ck.model, torch.cat([x for x, _ in windows]))
    return {
        "gate_values_per_token": gates / tokens,
        # every live gate value drives N neurons for T steps through its payload and dither synapses
        "synops_per_token": gates * n * t * 2 / tokens,
        "spikes_per_token": spikes / tokens,
        "activation_sparsity": 1.0 - spikes / (gates * n * t) if gates else None,
        "host_footprint_bytes": host["footprint_bytes"],
        "host_connection_sparsity": host["connection_sparsity"],
        "host_linear_macs_per_token": {"Effective_MACs": host["effective_macs"] / block,
                                       "Dense": host["dense_macs"] / block},
        "host_attention_macs_per_token": {"effective": attn["effective_macs"] / block,
                                          "dense": attn["dense_macs"] / block},
        "host_counted_by": host["counted_by"],
        "host_windows": host["samples"],
        "chip_neurons_generation_layout": deployed_neurons(prep.groups(MappingOptions(timesteps=t)),
                                                           ck.config.block_size, n),
        "definitions": "synops: graded spikes delivered to synapses (payload and dither, per live gate "
                       "value, N neurons, T steps); sparsity: 1 - spikes / (neurons x steps) over live "
                       "gates; host footprint: parameter and buffer bytes (Footprint, "
                       f"{host['counted_by']}); "
                       "host MACs: per token of a whole-window forward pass over validation windows, the "
                       "nn.Linear layers' by SynapticOperations, the attention's QK^T and P.V (which "
                       "NeuroBench cannot see) by ours",
    }


def hard_ratios(res: dict) -> dict:
    """The host time the hard spikes save: masked / skipping (the same spikes), soft / skipping."""
    h = res.get("hard_spikes")
    if not h:
        return {}
    return {"host_masked_vs_skip": h["masked"] / h["skip"],
            "host_soft_baseline_vs_skip": h["soft_baseline"] / h["skip"]}


def ratios(res: dict) -> dict:
    gen = {(r["backend"], r["T"], r["N"], r["batch"]): r["tokens_per_s"] for r in res["generation"]}
    out = {
        "emulator_gen_vs_float": gen[("emulator", 32, 1, 1)] / gen[("float", 32, 1, 1)],
        "emulator_gen_vs_float_T8_N4": gen[("emulator", 8, 4, 1)] / gen[("float", 32, 1, 1)],
        "lava_gen_vs_float": gen[("lava-sim", 32, 1, 1)] / gen[("float", 32, 1, 1)],
        "lava_gen_T8_N4_vs_T32_N1": gen[("lava-sim", 8, 4, 1)] / gen[("lava-sim", 32, 1, 1)],
        "emulator_eval_vs_float": res["evaluation"]["emulator"]["tokens_per_s"]
        / res["evaluation"]["float"]["tokens_per_s"],
    }
    batches = sorted({r["batch"] for r in res["generation"]})
    if len(batches) > 1:
        b = batches[-1]
        out[f"lava_batch{b}_vs_batch1"] = gen[("lava-sim", 32, 1, b)] / gen[("lava-sim", 32, 1, 1)]
        out[f"emulator_batch{b}_vs_batch1"] = gen[("emulator", 32, 1, b)] / gen[("emulator", 32, 1, 1)]
    hybrid = next(r for r in res["generation"] if r["backend"] == PER_STEP and r["batch"] == 1
                  and r["T"] == 32)
    out["lava_steps_vs_ceiling"] = hybrid["lava_steps_per_s"] / res["lava_ceiling"]["steps_per_s"]
    for t, n in WINDOWS:
        out[f"lava_chip_vs_per_step_gen_T{t}_N{n}"] = gen[("lava-sim", t, n, 1)] / gen[(PER_STEP, t, n, 1)]
    out.update(hard_ratios(res))
    if res.get("paper"):
        out.update(paper_ratios(res["paper"]))
    ex = {(r["backend"], r["T"], r["N"]): r for r in res.get("exchanges", [])}
    for t, n in EXCHANGE_WINDOWS:
        chip, step = ex.get(("lava-sim", t, n)), ex.get((PER_STEP, t, n))
        if chip is None or step is None:
            continue
        out[f"lava_chip_vs_per_step_gen_T{t}_N{n}"] = chip["tokens_per_s"] / step["tokens_per_s"]
        if chip["board"] and step["board"]:
            anchor = chip["board"]["closest_anchor"]
            out[f"board_latency_per_step_vs_chip_T{t}_N{n}"] = (
                step["board"]["batch_1"][anchor]["seconds_per_step"]
                / chip["board"]["batch_1"][anchor]["seconds_per_step"])
    return out


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [f"Measured with `{res['command']}` on {m['cpus']} CPU cores ({m['platform']}, Python "
             f"{m['python']}), checkpoint `{res['checkpoint']}`, {res['seconds']:.0f} s in all.", "",
             "| ratio | measured | goal | met |", "|---|---|---|---|"]
    for k, v in res["ratios"].items():
        goal = GOALS.get(k if not k.startswith("lava_batch") else "lava_batch8_vs_batch1")
        met = "" if goal is None else ("yes" if v >= goal else "**no**")
        lines.append(f"| {k} | {v:.3g} | {'' if goal is None else f'>= {goal:.3g}'} | {met} |")
    h = res.get("hard_spikes")
    if h:
        lines += ["", f"Hard spikes (`{h['checkpoint']}`, {h['tokens']:,} validation tokens, PyTorch host, "
                  f"median of {HARD_ROUNDS} alternating rounds): {h['mlp_skip_fraction']:.1%} of MLP calls "
                  f"skipped, {h['flops_saved_fraction']:.1%} of forward FLOPs saved; host "
                  f"{h['skip']:.3f} s skipping, {h['masked']:.3f} s computing every MLP and masking "
                  f"it, {h['soft_baseline']:.3f} s for the soft baseline `{h['baseline']}`."]
    if res.get("paper"):
        lines += ["", paper_markdown(res["paper"])]
    if res.get("sweep"):
        lines += ["", speedup.markdown(res["sweep"])]
    if "generation" not in res:
        return "\n".join(lines) + "\n"
    lines += ["", "| generation | T | N | batch | tokens/s |", "|---|---|---|---|---|"]
    lines += [f"| {r['backend']} | {r['T']} | {r['N']} | {r['batch']} | {r['tokens_per_s']:.1f} |"
              for r in res["generation"]]
    lines += ["", "| Lava design | T | N | tokens/s | messages to / from the chip per token | bytes to / "
              "from | chip steps per token | board latency per token (Kapoho Point anchor) |",
              "|---|---|---|---|---|---|---|---|"]
    for r in res.get("exchanges", []):
        per = (r["exchanges_per_token"] or {}).get("total", {})
        b = r["board"]
        board = b["batch_1"][b["closest_anchor"]]["seconds_per_step"] if b else None
        lines.append(f"| {r['backend']} | {r['T']} | {r['N']} | {r['tokens_per_s']:.2f} | "
                     f"{per.get('to_chip_messages', 0):.1f} / {per.get('from_chip_messages', 0):.1f} | "
                     f"{per.get('to_chip_bytes', 0):,.0f} / {per.get('from_chip_bytes', 0):,.0f} | "
                     f"{per.get('steps', 0):.1f} | {'-' if board is None else f'{board * 1e3:.1f} ms'} |")
    lines += ["", "| neuron-steps/s (width " + str(res["neuron_width"]) + ") | value |", "|---|---|"]
    lines += [f"| {k} | {v:.3g} |" for k, v in res["neurons"].items()]
    lines += ["", "| width scaling: neurons | " + " | ".join(res["scaling"]["backends"]) + " |",
              "|---|" + "---|" * len(res["scaling"]["backends"])]
    for w, row in zip(res["scaling"]["widths"], res["scaling"]["rates"], strict=True):
        lines.append(f"| {w:,} | " + " | ".join(f"{row[b]:.3g}" for b in res["scaling"]["backends"]) + " |")
    if res.get("walls"):
        lines += ["", "| wall time | seconds |", "|---|---|"]
        lines += [f"| {k[:-2]} | {v:.1f} |" for k, v in res["walls"].items()]
    c = res["counts"]
    lin, att = c["host_linear_macs_per_token"], c["host_attention_macs_per_token"]
    lines += ["", f"NeuroBench-style (lava-sim, T = 32, N = 1, per token): {c['synops_per_token']:,.0f} "
              f"synaptic operations, {c['spikes_per_token']:,.0f} spikes, activation sparsity "
              f"{c['activation_sparsity']:.3f}; host footprint {c['host_footprint_bytes'] / 1e6:.2f} MB of "
              f"parameters and buffers, host MACs per token {lin['Effective_MACs']:,.0f} (nn.Linear, "
              f"NeuroBench) + {att['effective']:,.0f} (attention matmuls, ours), chip "
              f"{c['chip_neurons_generation_layout']:,} neurons. {c['definitions']}."]
    return "\n".join(lines) + "\n"


def plots(res: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    sc = res["scaling"]
    for b in sc["backends"]:
        ax.loglog(sc["widths"], [r[b] for r in sc["rates"]], "o-", label=b)
    ax.set_xlabel("neurons")
    ax.set_ylabel("neuron-steps / s")
    ax.set_title("width scaling")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "width_scaling.png", dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    rows = res["generation"]
    labels = [f"{r['backend']}\nT{r['T']} N{r['N']} B{r['batch']}" for r in rows]
    ax.bar(range(len(rows)), [r["tokens_per_s"] for r in rows])
    ax.set_xticks(range(len(rows)), labels, fontsize=6)
    ax.set_ylabel("tokens / s")
    ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(out / "generation.png", dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> dict:
    from ember_neuro.atomic import check_output_dir

    torch_threads(1)
    dest = check_output_dir(args.out, False) if args.out else None  # refuse before measuring
    if not Path(args.checkpoint).is_file():
        raise ValueError(f"checkpoint not found: {args.checkpoint}")
    quick = args.quick
    t0 = time.time()
    command = "python -m ember_neuro.bench" + (" --quick" if quick else "") + (f" --only {args.only}"
                                                                              if args.only else "")
    res: dict[str, Any] = {"command": command,
                           "checkpoint": os.path.relpath(args.checkpoint), "quick": quick,
                           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                       "python": platform.python_version()}}
    if args.only == "hard-spikes":
        return _finish(res, dest, t0, {"hard_spikes": hard_spikes(str(HARD_CKPT), str(SOFT_BASELINE),
                                                                 2 if quick else 16, 8)})
    if args.only == "paper":
        return _finish(res, dest, t0, {"paper": _paper(4 if quick else PAPER_TOKENS)})
    if args.only == "sweep":
        root = Path(args.sweep_dir)
        return _finish(res, dest, t0, {"sweep": speedup.measure(root, quick, log=lambda line: print(
            line, file=sys.stderr))})
    tokens = 4 if quick else 100
    res["generation"] = generation(args.checkpoint, tokens, (1, 8) if not quick else (1, 2),
                                   ("float", "emulator", "lava-sim", PER_STEP))
    res["exchanges"] = exchanges(args.checkpoint, 3 if quick else 50)
    res["evaluation"] = evaluation(args.checkpoint, 1 if quick else 8, 2 if quick else 8)
    res["lava_ceiling"] = lava_ceiling(args.checkpoint, 4 if quick else 64)
    width = 1024 if quick else 4096
    res["neuron_width"] = width
    refs = ("emulator", "numpy", "lava-sim", "lava-sim-float", "snntorch", "norse")
    res["neurons"] = neuron_rates(width, 32, 2 if quick else 8, refs)
    widths = (1000, 4000) if quick else (1000, 10_000, 100_000)
    res["scaling"] = {"widths": list(widths), "backends": ["emulator", "lava-sim"],
                      "rates": [neuron_rates(w, 32, 2 if quick else 4, ("emulator", "lava-sim"))
                                for w in widths]}
    if not quick:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            res["walls"] = walls(args.checkpoint, Path(tmp))
    res["counts"] = counts(args.checkpoint, res["generation"], tokens)
    res["hard_spikes"] = hard_spikes(str(HARD_CKPT), str(SOFT_BASELINE), 2 if quick else 16, 8)
    if not quick:
        res["paper"] = _paper(PAPER_TOKENS)
    res["ratios"] = ratios(res)
    return _finish(res, dest, t0)


PAPER_TOKENS = 30


def _paper(tokens: int) -> dict:
    import tempfile

    from ember_neuro.paper_bench import paper_scale

    with tempfile.TemporaryDirectory() as tmp:
        return paper_scale(Path(tmp), tokens, lambda line: print(line, file=sys.stderr))


def _finish(res: dict, dest: Path | None, t0: float, only: dict | None = None) -> dict:
    """Goals, total seconds, and the --out folder (written atomically); ``only``: one section's
    results (--only), whose ratios are then the only ones."""
    from ember_neuro.atomic import atomic_dir

    if only is not None:
        res.update(only)
        ratios_of = {"hard_spikes": lambda: hard_ratios(res), "paper": lambda: paper_ratios(res["paper"]),
                     "sweep": lambda: speedup.ratios(res["sweep"])}
        (section,) = only
        res["ratios"] = ratios_of[section]()
    res["goals"] = {k: {"goal": v, "met": res["ratios"].get(k, 0) >= v} for k, v in GOALS.items()
                    if k in res["ratios"]}
    res["seconds"] = time.time() - t0
    if dest is not None:
        with atomic_dir(dest) as tmp:
            (tmp / "results.json").write_text(json.dumps(res, indent=1, default=float))
            (tmp / "results.md").write_text(markdown(res))
            if only is None:
                plots(res, tmp)
        res["out"] = str(dest)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = parser("ember_neuro.bench", __doc__)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test in seconds")
    add_json_option(ap, "print one JSON object (with `ratios`)")
    ap.add_argument("--out", help="folder for results.json, results.md and plots (refused if it exists)")
    ap.add_argument("--checkpoint", default=str(CKPT), help="default: the shipped lif-learnable-strong.pt")
    ap.add_argument("--sweep-dir", default="runs/bench-sweep",
                    help="--only sweep: where the two sweeps write their tables (must not exist)")
    ap.add_argument("--only", choices=("hard-spikes", "paper", "sweep"), default=None,
                    help="run one section: hard-spikes (the host time a hard-spike temporal-lif model "
                         "saves, on the shipped temporal-lif-hard.pt and its equal-budget soft run, "
                         "temporal-lif-strong.pt) or paper (every command at the paper's size, with its "
                         "wall time and memory peak; minutes) or sweep (the fidelity sweep at 2 local "
                         "workers against 1; about 20 min, --quick about a minute)")
    args = ap.parse_args(argv)
    return run_and_report(run, args, "\ninterrupted: nothing was written", lambda res: print(markdown(res)))


if __name__ == "__main__":
    sys.exit(main())
