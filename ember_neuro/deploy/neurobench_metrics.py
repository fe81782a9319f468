"""NeuroBench 2.3's own metric classes on our PyTorch models, and our counts where they cannot see.

The host figures published under NeuroBench's names (resources.json ``neurobench``, the bench's
``counts``) come from the ``neurobench`` package itself: ``Benchmark(TorchModel(model), loader,
[], [logits], [[Footprint, ConnectionSparsity], [SynapticOperations, ActivationSparsity]])``.
The package pins torchaudio (no build for our torch 2.13) and tonic (its datasets), so it is
installed with ``--no-deps`` (scripts/setup_env.sh); what its metrics import (snntorch, numba,
llvmlite, tqdm) is installed anyway.

What NeuroBench sees in our models (:func:`seen`): every ``nn.Linear`` (the transformer's
QKV, projections, MLP and head; the CfC's backbone, ff1, ff2, time_a, time_b and output
projection, called once per frame), and as activations only ``nn.ReLU`` / ``nn.Sigmoid``
modules -- the CfC's time-interpolation sigmoid, never our gates (their sigmoid is functional,
ember_neuro/gates.py), so its ActivationSparsity of a transformer has nothing to count.  The
ncps CfC is not an ``nn.RNNCellBase``, so it is seen as its Linear layers only.  What it cannot
see: the attention's QKᵀ and P·V matmuls (``torch.matmul``, counted here by
:func:`attention_matmuls`), the softmax, LayerNorms, GELU, the CfC's element-wise products, and
everything on the chip (the gates' synaptic events and spikes, measured on lava-sim).

:func:`hand_counts` is the count NeuroBench's rules gave before the package was used, kept as the
cross-check (scripts/neurobench_crosscheck.py, tests/deploy/test_neurobench.py) and as the
fallback where the package is not installed (``counted_by`` says which).
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]


def available() -> bool:
    """Whether the neurobench package's metric classes import here."""
    try:
        import neurobench.benchmarks  # noqa: F401
        import neurobench.metrics  # noqa: F401
    except ImportError:
        return False
    return True


def version() -> str:
    import neurobench

    return f"neurobench {neurobench.__version__}"


def _names(model: nn.Module) -> dict[int, str]:
    return {id(m): name for name, m in model.named_modules()}


def seen(model: nn.Module) -> dict[str, Any]:
    """The layers NeuroBench's model wrapper finds (its own ``connection_layers`` and
    ``activation_layers``): qualified names, and how many of each class."""
    from neurobench.models import TorchModel

    training = model.training
    wrapped = TorchModel(model)  # sets eval()
    model.train(training)
    names = _names(model)
    conn = [names[id(m)] for m in wrapped.connection_layers()]
    act = [names[id(a["layer"])] for a in wrapped.activation_layers()]
    kinds = Counter(type(m).__name__ for m in wrapped.connection_layers())
    acts = Counter(type(a["layer"]).__name__ for a in wrapped.activation_layers())
    return {"connection_layers": conn, "connection_classes": dict(kinds),
            "activation_layers": act, "activation_classes": dict(acts)}


def _logits(out: Any) -> Any:
    """Our models return (logits, loss); NeuroBench's postprocessors take the predictions."""
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def measure(model: nn.Module, batches: Batches) -> dict[str, Any]:
    """NeuroBench's Footprint, ConnectionSparsity, SynapticOperations and ActivationSparsity of
    `model` on these (input, target) batches, through its own Benchmark, per sample (a clip, or a
    text window) as it reports them.

    Its metric managers catch a metric's exception, print it and report 0 or None: the printout is
    captured here and any such error raised, so a silently zeroed figure never gets published.
    ActivationSparsity is None where NeuroBench hooks no activation module (it would report 0.0).
    """
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
    from neurobench.models import TorchModel
    from torch.utils.data import DataLoader, TensorDataset

    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    loader = DataLoader(TensorDataset(x, y), batch_size=len(batches[0][0]))
    training = model.training
    wrapped = TorchModel(model)
    bench = Benchmark(wrapped, loader, [], [_logits],
                      [[Footprint, ConnectionSparsity], [SynapticOperations, ActivationSparsity]])
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
            res = bench.run(quiet=False)  # quiet=True would drop its error lines with the rest
        hooked_activations = bool(wrapped.activation_hooks)
    finally:
        wrapped.cleanup_hooks()  # leave the model as it came
        model.train(training)
    errors = [line for line in printed.getvalue().splitlines() if line.startswith("Error running")]
    if errors or any(v is None for v in res.values()):
        raise RuntimeError(f"NeuroBench failed on {type(model).__name__}: {'; '.join(errors) or res}")
    ops = res["SynapticOperations"]
    return {"footprint_bytes": int(res["Footprint"]), "connection_sparsity": float(res["ConnectionSparsity"]),
            "dense_macs": float(ops["Dense"]), "effective_macs": float(ops["Effective_MACs"]),
            "effective_acs": float(ops["Effective_ACs"]),
            "activation_sparsity": float(res["ActivationSparsity"]) if hooked_activations else None,
            "samples": len(x), "counted_by": version()}


ACTIVATIONS = (nn.ReLU, nn.Sigmoid)  # the modules NeuroBench's ActivationSparsity hooks (with snnTorch's)


@torch.no_grad()
def hand_counts(model: nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """NeuroBench's rules as our own PyTorch hooks, per sample: the nn.Linear layers' MACs at dense
    input and with a non-zero input (non-zero inputs x fan-out; an input all in {-1, 0, 1} counts
    as spikes, ACs), the bytes of parameters and buffers, the zero weights of the nn.Linear layers
    (not rounded), the zero outputs of the nn.ReLU / nn.Sigmoid modules (None without any)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    acts = [m for m in model.modules() if isinstance(m, ACTIVATIONS)]
    count = {"dense": 0, "effective": 0, "acs": 0, "act_zero": 0, "act_all": 0}

    def linear(m: nn.Linear, inputs: tuple, _out: Any) -> None:
        z = inputs[0]
        count["dense"] += z.numel() // m.in_features * m.in_features * m.out_features
        spikes = bool(((z == 0) | (z == 1) | (z == -1)).all())
        count["acs" if spikes else "effective"] += int((z != 0).sum()) * m.out_features

    def activation(_m: nn.Module, _inputs: tuple, out: torch.Tensor) -> None:
        count["act_zero"] += int((out == 0).sum())
        count["act_all"] += out.numel()

    handles = [m.register_forward_hook(linear) for m in linears]
    handles += [m.register_forward_hook(activation) for m in acts]
    try:
        model(torch.as_tensor(x))
    finally:
        for h in handles:
            h.remove()
    tensors = [*model.parameters(), *model.buffers()]
    weights = sum(m.weight.numel() for m in linears)
    zeros = sum(int((m.weight == 0).sum()) for m in linears)
    n = len(x)
    return {"footprint_bytes": int(sum(t.numel() * t.element_size() for t in tensors)),
            "parameter_bytes": int(sum(p.numel() * p.element_size() for p in model.parameters())),
            "connection_sparsity": zeros / weights if weights else 0.0,
            "dense_macs": count["dense"] / n, "effective_macs": count["effective"] / n,
            "effective_acs": count["acs"] / n,
            "activation_sparsity": count["act_zero"] / count["act_all"] if acts else None,
            "hooked": dict(Counter(type(m).__name__ for m in [*linears, *acts])),
            "samples": n, "counted_by": "ember-neuro (NeuroBench's rules, own hooks)"}


def host_counts(model: nn.Module, batches: Batches) -> dict[str, Any]:
    """The published host figures: NeuroBench's own classes where the package is installed, else
    :func:`hand_counts` (which agree with them on every shipped model: the cross-check)."""
    if available():
        return measure(model, batches)
    return hand_counts(model, torch.cat([b[0] for b in batches]))


@torch.no_grad()
def attention_matmuls(model: nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """Ours, where NeuroBench cannot see: the attention's QKᵀ and P·V MACs per sample of a
    whole-sequence forward pass (no cache, no padding).  Dense: every query x key x head dim, as
    torch computes them (the causal mask is applied after QKᵀ); effective: P·V with NeuroBench's
    rule (non-zero inputs x fan-out), where the masked probabilities are exactly zero -- the
    gates never zero an unmasked one (leak > 0).  Zero for a model without attention."""
    from ember_neuro.models.transformer import CausalSelfAttention

    count = {"qk": 0, "pv_dense": 0, "pv_effective": 0}

    def hook(m: CausalSelfAttention, args: tuple) -> None:
        b, t, c = args[0].shape
        if len(args) > 2 and args[2] is not None:
            raise ValueError("attention_matmuls counts whole-sequence forward passes only (no cache)")
        hd = c // m.n_head
        causal = t * (t + 1) // 2
        count["qk"] += b * m.n_head * t * t * hd
        count["pv_dense"] += b * m.n_head * t * t * hd
        count["pv_effective"] += b * m.n_head * causal * hd

    attention = [m for m in model.modules() if isinstance(m, CausalSelfAttention)]
    handles = [m.register_forward_pre_hook(hook) for m in attention]
    try:
        model(torch.as_tensor(x))
    finally:
        for h in handles:
            h.remove()
    n = len(x)
    return {"qk_macs": count["qk"] / n, "pv_dense_macs": count["pv_dense"] / n,
            "pv_effective_macs": count["pv_effective"] / n,
            "dense_macs": (count["qk"] + count["pv_dense"]) / n,
            "effective_macs": (count["qk"] + count["pv_effective"]) / n}


@torch.no_grad()
def torch_matmul_macs(model: nn.Module, x: torch.Tensor) -> float:
    """Every matmul MAC of a forward pass per sample, by torch's own FlopCounterMode (FLOPs / 2):
    an independent check that NeuroBench's Dense plus :func:`attention_matmuls` is the whole."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        model(torch.as_tensor(x))
    return counter.get_total_flops() / 2 / len(x)
