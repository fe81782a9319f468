"""The host part of a hybrid Ember model as ONNX graphs, split where the gates run on neurons.

A gate sits in the middle of every layer, so each layer is exported as the graphs
before and after it (opset 17, PyTorch's TorchScript-based exporter: the default
torch.export-based one needs onnxscript, which this package does not depend on):

Transformer Ember (lif-learnable, lif-fixed, lif-refractory, temporal-lif):

    embed.onnx          idx (B, T) int64, pos (T,) int64          -> x (B, T, C)
    layer{l}.pre.onnx   x (B, T, C), past_k, past_v (B, H, P, hd)  -> p (B, H, T, P+T),
                                                                      k, v (B, H, P+T, hd)
                        lif-refractory also                        -> col_load (B, H, 1, P+T),
                                                                      load (B, P+T) (the next
                                                                      layer's prev_load)
    layer{l}.post.onnx  x, p, fire (B, H, T, P+T), v               -> x (B, T, C)
                        temporal-lif instead                        -> x_mid, importance (B, T)
    layer{l}.mlp.onnx   temporal-lif: x_mid, fire (B, T)           -> x (B, T, C)
    head.onnx           x                                          -> logits (B, T, V)

Liquid Ember (cfc-lif), one token per call (the CfC state carries the past):

    embed.onnx          idx (B, 1)                                 -> x (B, 1, C)
    layer{l}.cfc.onnx   x, hx (B, units)                           -> h (B, 1, C), hx
    layer{l}.post.onnx  x, h, fire (B, 1, C)                       -> x
    head.onnx           x                                          -> logits

B, T and P are dynamic (P = 0 for a prompt: pass (B, H, 0, hd) arrays).  Between
the graphs the host sends the gate inputs to the neurons (p and the loads; |h|;
the membrane V, which the host integrates: V = V sigmoid(decay) + importance) and
feeds their decoded fire back.  Every graph reuses the model's own methods
(model.py: probabilities, gate_loads, gate_with_fire, attend), so nothing of the
model is written twice.  :func:`check` runs the graphs in onnxruntime against
PyTorch on validation text with the trained sigmoid as the fire.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ember_neuro import gates

OPSET = 17
FORMAT = "ember-neuro/onnx-host-graphs"
FORMAT_VERSION = 1


class _Embed(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        tr = self.model.transformer
        return tr.wte(idx) + tr.wpe(pos)


class _Pre(nn.Module):
    def __init__(self, block: nn.Module, refractory: bool):
        super().__init__()
        self.block, self.refractory = block, refractory

    def forward(self, x, past_k, past_v):
        attn = self.block.attn
        p, k, v = attn.probabilities(self.block.ln_1(x), past_k, past_v)
        if not self.refractory:
            return p, k, v
        return p, k, v, attn.gate_loads(p, None)["col_load"], gates.layer_load(p)


class _Post(nn.Module):
    def __init__(self, block: nn.Module, temporal: bool):
        super().__init__()
        self.block, self.temporal = block, temporal

    def forward(self, x, p, fire, v):
        attn = self.block.attn
        attn_out = attn.attend(attn.gate_with_fire(p, fire), v, self.block.ln_1(x))
        x = x + attn_out
        if self.temporal:
            return x, attn_out.norm(dim=-1)
        return x + self.block.mlp(self.block.ln_2(x))


class _Mlp(nn.Module):
    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x, fire):
        return x + fire.unsqueeze(-1) * self.block.mlp(self.block.ln_2(x))


class _Head(nn.Module):
    def __init__(self, ln_f: nn.Module, lm_head: nn.Module):
        super().__init__()
        self.ln_f, self.lm_head = ln_f, lm_head

    def forward(self, x):
        return self.lm_head(self.ln_f(x))


class _LiquidEmbed(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, idx):
        return self.model.wte(idx)


class _Cfc(nn.Module):
    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x, hx):
        return self.layer.cfc(self.layer.ln(x), hx)


class _LiquidPost(nn.Module):
    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x, h, fire):
        theta, leak, k = self.layer.gate.transformed()
        return x + gates.hidden_gate(h, theta, leak, k, fire=fire)


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
            dynamic: dict[str, dict[int, str]]) -> None:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(module.eval(), args, buf, dynamo=False, input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic, opset_version=OPSET, do_constant_folding=True)
    path.write_bytes(buf.getvalue())


AXES = {  # dynamic axes of every named graph input/output: batch B, new tokens T, keys Tk, past P
    "idx": {0: "B", 1: "T"}, "pos": {0: "T"}, "x": {0: "B", 1: "T"}, "past_k": {0: "B", 2: "P"},
    "past_v": {0: "B", 2: "P"}, "p": {0: "B", 2: "T", 3: "Tk"}, "k": {0: "B", 2: "Tk"},
    "v": {0: "B", 2: "Tk"},
    "col_load": {0: "B", 3: "Tk"}, "load": {0: "B", 1: "Tk"}, "fire": {0: "B", 2: "T", 3: "Tk"},
    "x_out": {0: "B", 1: "T"}, "x_mid": {0: "B", 1: "T"}, "importance": {0: "B", 1: "T"},
    "logits": {0: "B", 1: "T"}, "hx": {0: "B"}, "hx_out": {0: "B"}, "h": {0: "B"},
}


def _graph(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
           axes: dict[str, dict[int, str]] | None = None) -> None:
    """Export with the dynamic axes of AXES (or `axes` where a name differs, e.g. the membrane fire)."""
    table = {**AXES, **(axes or {})}
    _export(module, args, path, inputs, outputs, {n: table[n] for n in inputs + outputs if n in table})


def export_graphs(model: nn.Module, folder: Path) -> dict[str, Any]:
    """Write the host graphs of `model` into `folder`; returns the manifest (also graphs.json)."""
    cfg = model.config
    folder.mkdir(parents=True, exist_ok=True)
    b, t = 2, 5
    with torch.no_grad():
        if cfg.is_transformer:
            h, hd = cfg.n_head, cfg.n_embd // cfg.n_head
            refractory, temporal = cfg.variant == "lif-refractory", cfg.variant == "temporal-lif"
            idx = torch.zeros(b, t, dtype=torch.long)
            _graph(_Embed(model), (idx, torch.arange(t)), folder / "embed.onnx", ["idx", "pos"], ["x"])
            x, past = torch.randn(b, t, cfg.n_embd), torch.randn(b, h, 3, hd)
            p, v = torch.softmax(torch.randn(b, h, t, 3 + t), -1), torch.randn(b, h, 3 + t, hd)
            for layer, block in enumerate(model.transformer.h):
                loads = ["col_load", "load"] if refractory else []
                _graph(_Pre(block, refractory), (x, past, past), folder / f"layer{layer}.pre.onnx",
                       ["x", "past_k", "past_v"], ["p", "k", "v", *loads])
                post = (x, p, torch.rand_like(p), v)
                _graph(_Post(block, temporal), post, folder / f"layer{layer}.post.onnx",
                       ["x", "p", "fire", "v"], ["x_mid", "importance"] if temporal else ["x_out"])
                if temporal:
                    _graph(_Mlp(block), (x, torch.rand(b, t)), folder / f"layer{layer}.mlp.onnx",
                           ["x_mid", "fire"], ["x_out"], {"fire": {0: "B", 1: "T"}})
            ln_f = model.transformer.ln_f
        else:
            x = torch.randn(b, 1, cfg.n_embd)
            _graph(_LiquidEmbed(model), (torch.zeros(b, 1, dtype=torch.long),), folder / "embed.onnx",
                   ["idx"], ["x"], {"idx": {0: "B"}, "x": {0: "B"}})
            for layer, mod in enumerate(model.layers):
                _graph(_Cfc(mod), (x, torch.randn(b, cfg.cfc_units)), folder / f"layer{layer}.cfc.onnx",
                       ["x", "hx"], ["h", "hx_out"], {"x": {0: "B"}})
                _graph(_LiquidPost(mod), (x, x, torch.rand_like(x)), folder / f"layer{layer}.post.onnx",
                       ["x", "h", "fire"], ["x_out"], {"x": {0: "B"}, "fire": {0: "B"}, "x_out": {0: "B"}})
        _graph(_Head(ln_f if cfg.is_transformer else model.ln_f, model.lm_head), (x,), folder / "head.onnx",
               ["x"], ["logits"])
    files = {path.name: path.stat().st_size for path in sorted(folder.glob("*.onnx"))}
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "opset": OPSET, "variant": cfg.variant,
                "config": cfg.to_dict(), "files": files, "membrane_decay": membrane_decay(model),
                "layout": __doc__}
    (folder / "graphs.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def membrane_decay(model: nn.Module) -> list[float]:
    """temporal-lif's sigmoid(decay) per layer, as the float32 values PyTorch multiplies by."""
    return [float(torch.sigmoid(block.temporal_decay.detach().float()))
            for block in model.transformer.h] if model.config.variant == "temporal-lif" else []


@torch.no_grad()
def check(model: nn.Module, folder: Path, net: Any, windows: list[np.ndarray]) -> dict[str, Any]:
    """onnxruntime vs PyTorch on text windows, the trained sigmoid as every gate's fire.

    Whole windows, and (transformers that decode causally) the second half token by
    token on the KV cache built from the first half; Liquid Ember token by token on
    its state.  lif-refractory only whole windows: its column load is not causal.
    Returns max |logits difference| and what was compared.
    """
    from ember_neuro.hybrid.onnx_host import OnnxHost, SigmoidGates

    host = OnnxHost(folder, SigmoidGates(net))
    incremental = model.config.is_transformer and model.config.variant != "lif-refractory"
    worst, tokens = 0.0, 0
    for ids in windows:
        ref = model(torch.as_tensor(ids[None], dtype=torch.long))[0][0].double().numpy()
        full, _ = host.forward(ids[None], None)
        worst = max(worst, float(np.abs(full[0] - ref).max()))
        tokens += ids.size
        if incremental:
            half = ids.size // 2
            _, cache = host.forward(ids[None, :half], None)
            for i in range(half, ids.size):
                step, cache = host.forward(ids[None, i:i + 1], cache)
                worst = max(worst, float(np.abs(step[0, 0] - ref[i]).max()))
    return {"max_abs_logit_diff": worst, "tokens": tokens, "windows": len(windows),
            "incremental": bool(incremental)}


def write_graphs(ck: Any, net: Any, folder: Path, data: str | None = None,
                 windows: int = 2) -> dict[str, Any]:
    """Graphs of a loaded checkpoint into `folder`, with graphs.json, checked on validation text."""
    from ember_neuro.models.data import load_data

    text = load_data(data, vocab=ck.vocab)
    batch = text.val_batches(1, windows, ck.config.block_size, seed=0)[0][0].numpy()
    manifest = export_graphs(ck.model, folder)  # graphs.json: what OnnxHost reads for the check
    manifest["checkpoint"] = {"path": ck.path, "sha256": ck.sha256}
    manifest["check"] = check(ck.model, folder, net, list(batch))
    (folder / "graphs.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def load_gated(checkpoint: str) -> Any:
    """A checkpoint with an LIF gate, or a one-line refusal naming why not."""
    from ember_neuro.mappers.registry import check_variant
    from ember_neuro.models.checkpoint import load_checkpoint

    ck = load_checkpoint(checkpoint)
    check_variant(ck.config.variant)
    return ck


def export_onnx(checkpoint: str, out: str, force: bool = False, data: str | None = None,
                windows: int = 2) -> dict[str, Any]:
    """What ``export onnx`` does: the graphs into `out` (atomically), checked on validation text."""
    import time

    from ember_neuro.atomic import atomic_dir, check_output_dir
    from ember_neuro.deploy.mapping import map_checkpoint
    from ember_neuro.mappers import MappingOptions

    t0 = time.time()
    dest = check_output_dir(out, force)
    ck = load_gated(checkpoint)
    net = map_checkpoint(ck, MappingOptions(timesteps=8), data=data)  # the float gates for the check
    with atomic_dir(dest, force=force) as tmp:
        manifest = write_graphs(ck, net, tmp, data, windows)
    return {"out": str(dest), "variant": ck.config.variant, "opset": OPSET, "files": manifest["files"],
            **manifest["check"], "seconds": round(time.time() - t0, 2)}
