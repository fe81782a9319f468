"""NeuroBench 2.3's own metric classes against our counts, on the same shipped models and inputs.

    .venv/bin/python scripts/neurobench_crosscheck.py [--out docs/figures/neurobench_crosscheck.json]

For each checkpoint: the neurobench package's Benchmark (Footprint, ConnectionSparsity,
SynapticOperations, ActivationSparsity) on seeded validation batches (text windows of
block_size tokens, or keyword clips), beside our hand count of the same rules (PyTorch hooks), our
count of what NeuroBench cannot see (the attention's QKᵀ and P·V matmuls) and torch's own
FlopCounterMode over every matmul.  Prints a markdown table per model (docs/neurobench.md holds its
output).  The chip side (synaptic events, spikes: lava-sim) is ours only and not in the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = ("lif-learnable-strong", "cfc-lif-strong", "audio-cfc-lif-strong")
BATCHES, BATCH, SEED = 2, 4, 0


def _n(x: Any) -> str:
    if x is None:
        return "none hooked"
    if isinstance(x, float) and not x.is_integer():
        return f"{x:.4f}" if x < 1 else f"{x:,.1f}"
    return f"{int(x):,}"


def rows(nb: dict, ours: dict, attn: dict, torch_macs: float, seen: dict) -> list[list[str]]:
    """quantity | NeuroBench 2.3 (package) | ours | agree? | why they differ."""
    out = []

    def row(q: str, a: Any, b: Any, same: bool | str, why: str = "") -> None:
        agree = same if isinstance(same, str) else "yes" if same else "no"
        out.append([q, a if isinstance(a, str) else _n(a), b if isinstance(b, str) else _n(b), agree, why])

    bufs = seen["buffers"]

    def layers(classes: dict[str, int]) -> str:
        act = ", ".join(f"{v} nn.{k}" for k, v in classes.items() if k != "Linear") or "none"
        return f"{classes.get('Linear', 0)} nn.Linear; activations: {act}"

    nb_layers = {**seen["connection_classes"], **seen["activation_classes"]}
    cfc = any("cfc" in name for name in seen["connection_layers"])
    row("layers hooked", layers(nb_layers), layers(ours["hooked"]), nb_layers == ours["hooked"],
        "the ncps CfC is not an nn.RNNCellBase: seen as its nn.Linear layers (backbone, ff1, ff2, time_a, "
        "time_b, output projection), called once per frame; its time-interpolation nn.Sigmoid is hooked, "
        "its tanh is not" if cfc else
        "no nn.Conv, RNN or activation module: GELU is F.gelu, the gates' sigmoid is functional (gates.py)")
    row("Footprint (bytes)", nb["footprint_bytes"], ours["footprint_bytes"],
        nb["footprint_bytes"] == ours["footprint_bytes"])
    buffers = nb["footprint_bytes"] - ours["parameter_bytes"]
    row("Footprint vs parameters only (the bench's former host_footprint_bytes)", nb["footprint_bytes"],
        ours["parameter_bytes"], buffers == 0,
        f"NeuroBench counts buffers too (persistent or not): {', '.join(bufs)} ({buffers:,} B)"
        if buffers else "no buffers")
    row("ConnectionSparsity (nn.Linear zero weights)", f"{nb['connection_sparsity']:.4f}",
        f"{ours['connection_sparsity']:.4f}",
        round(ours["connection_sparsity"], 4) == nb["connection_sparsity"],
        "NeuroBench rounds to 4 decimals" if ours["connection_sparsity"] != nb["connection_sparsity"] else "")
    row("SynapticOperations Dense (nn.Linear MACs / sample)", nb["dense_macs"], ours["dense_macs"],
        nb["dense_macs"] == ours["dense_macs"])
    row("SynapticOperations Effective_MACs / sample", nb["effective_macs"], ours["effective_macs"],
        nb["effective_macs"] == ours["effective_macs"],
        "equal as no weight is zero: NeuroBench also skips zero weights, ours counts the whole fan-out"
        if nb["effective_macs"] == ours["effective_macs"] else
        "NeuroBench also skips zero weights, ours counts the whole fan-out")
    row("SynapticOperations Effective_ACs / sample (host)", nb["effective_acs"], ours["effective_acs"],
        nb["effective_acs"] == ours["effective_acs"], "")
    pair = (nb["activation_sparsity"], ours["activation_sparsity"])
    sparsity = [None if v is None else f"{v:.4f}" for v in pair]
    row("ActivationSparsity (host)", *sparsity,
        pair[0] == pair[1],
        "NeuroBench reports 0.0 where it hooks nothing; read as none hooked" if pair[0] is None else
        "the CfC's time-interpolation nn.Sigmoid: no output exactly 0 here; the gates' spikes are the "
        "chip's (lava-sim), not in this table")
    if attn["dense_macs"]:
        row("attention QKᵀ + P·V MACs / sample, dense", "not seen (torch.matmul)", attn["dense_macs"], "n/a",
            "ours only: NeuroBench hooks modules, the attention's matmuls are operators")
        row("attention QKᵀ + P·V MACs / sample, effective", "not seen", attn["effective_macs"], "n/a",
            "ours only: P·V skips the causally masked (exactly zero) probabilities")
    total = nb["dense_macs"] + attn["dense_macs"]
    row("every matmul MAC / sample (NeuroBench Dense + our attention) vs torch FlopCounterMode / 2",
        total, torch_macs, total == torch_macs, "")
    return out


def table(model_rows: list[list[str]]) -> str:
    lines = ["| quantity | NeuroBench 2.3 (package) | ours | agree? | why they differ (if they do) |",
             "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in model_rows]
    return "\n".join(lines)


def check(name: str) -> dict[str, Any]:
    import torch

    from ember_neuro.deploy import neurobench_metrics as nbm
    from ember_neuro.models.checkpoint import load_checkpoint
    from ember_neuro.models.data import data_for

    ck = load_checkpoint(ROOT / "ember_neuro" / "checkpoints" / f"{name}.pt")
    data = data_for(ck)
    batches = data.val_batches(BATCHES, BATCH, ck.config.block_size, seed=SEED)
    x = torch.cat([b[0] for b in batches])
    t0 = time.perf_counter()
    nb = nbm.measure(ck.model, batches)
    nb_s = time.perf_counter() - t0
    ours = nbm.hand_counts(ck.model, x)
    attn = nbm.attention_matmuls(ck.model, x)
    torch_macs = nbm.torch_matmul_macs(ck.model, x)
    seen = nbm.seen(ck.model)
    seen["buffers"] = [f"{n} {tuple(b.shape)} {str(b.dtype).removeprefix('torch.')}"
                       for n, b in ck.model.named_buffers()]
    r = rows(nb, ours, attn, torch_macs, seen)
    kind = "keyword clips" if ck.config.is_classifier else f"text windows of {ck.config.block_size} tokens"
    return {"checkpoint": f"ember_neuro/checkpoints/{name}.pt", "sha256": ck.sha256,
            "inputs": f"{len(x)} validation {kind} ({BATCHES} batches of {BATCH}, seed {SEED}; "
                      f"{data.source})",
            "input_shape": list(x.shape), "neurobench": nb, "ours": ours, "attention_matmuls": attn,
            "torch_flop_counter_macs": torch_macs, "seen": seen, "neurobench_seconds": nb_s,
            "rows": r, "table": table(r)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--checkpoints", nargs="+", default=list(CHECKPOINTS))
    args = ap.parse_args(argv)
    import torch

    from ember_neuro.deploy import neurobench_metrics as nbm

    torch.set_num_threads(1)
    if not nbm.available():
        print("neurobench is not installed (scripts/setup_env.sh installs it with --no-deps)",
              file=sys.stderr)
        return 2
    results = {"command": "python scripts/neurobench_crosscheck.py", "neurobench": nbm.version(),
               "torch": torch.__version__, "models": {}}
    for name in args.checkpoints:
        res = check(name)
        results["models"][name] = res
        print(f"\n### {name}\n\n{res['inputs']}\n\n{res['table']}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
