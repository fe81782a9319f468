"""The host part of a hybrid Ember model as ONNX graphs, cut where the gates run on neurons.

The whole forward pass is exported once (opset 17, PyTorch's TorchScript-based exporter: the
torch.export-based one needs onnxscript, which this package does not depend on) with the model's
gate hook marking every gate as one custom node, ``ember::Gate(hook, layer, sources)``, whose
inputs are the gate's host inputs and whose output is its fire.  The graph is then cut at those
nodes into stages that onnxruntime runs, each taking what earlier stages and gates produced:

    stage 0 -> gates -> stage 1 -> gates -> ... -> stage S      (graphs.json lists the plan)

so the host graphs of any variant -- any gate kind, at any site -- come from the model's own
forward, and nothing of the model is written twice.  Between the stages the host sends each
gate's inputs to its neurons and feeds the decoded fire back (hybrid/onnx_host.py).

Inputs and outputs: ``idx`` (B, T) int64 token ids -> ``logits`` (B, T, V), plus the decoding
state: a causal transformer's keys and values ``cache.{2l}``, ``cache.{2l+1}`` (B, H, P, hd) in
and ``cache_out.*`` (B, H, P+T, hd) out (P = 0 for a prompt); Liquid Ember's CfC state
``cache.{l}`` (B, units), one token per call; a variant whose gates are not causal
(lif-refractory) none (whole windows).  B, T and P are dynamic.  Audio Liquid Ember (a keyword
spotter): ``features`` (B, F, n_mels) float32 log-mel frames of whole clips -> ``logits`` (B, C),
no state; B is dynamic, F the model's frames per clip (the CfC loop is unrolled over them).  The
family's input (name, dtype, shape) is in graphs.json (``io.input``).  :func:`check` runs the
stages in onnxruntime against PyTorch on validation data (text windows, or clips) with the
trained sigmoid as every fire.
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

OPSET = 17
FORMAT = "ember-neuro/onnx-host-graphs"
FORMAT_VERSION = 2  # 2: one forward pass cut at ember::Gate nodes into stages (1: hand-split per layer)
GATE_DOMAIN = "ember"


class GateNode(torch.autograd.Function):
    """A gate in the exported graph.  Tracing needs a value, so its forward returns the trained fire;
    the ONNX node it becomes carries the hook inputs, and the graph is cut there."""

    @staticmethod
    def forward(ctx, fire, hook, layer, sources, *inputs):  # noqa: ANN001, ANN205 - autograd.Function
        return fire

    @staticmethod
    def symbolic(g, fire, hook, layer, sources, *inputs):  # noqa: ANN001, ANN205 - the ONNX exporter's API
        out = g.op(f"{GATE_DOMAIN}::Gate", *inputs, hook_s=hook, layer_i=int(layer), sources_s=list(sources))
        out.setType(inputs[0].type())  # the fire has the shape of the gate's first input
        return out


def export_hook(gate: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's gate hook while exporting: every gate becomes a GateNode."""
    return GateNode.apply(gate.fire(inputs), gate.hook, gate.layer, tuple(inputs), *inputs.values())


def model_input(cfg: Any) -> dict[str, Any]:
    """The exported graph's input and logits, by model family: name, dtype and shape of the input
    ("B" the dynamic batch, "T" a dynamic token count) and the logits' shape.

    Text: token ids (one per call for Liquid Ember, which carries its CfC state); a keyword spotter:
    the log-mel frames of whole clips, F fixed at the model's frames per clip."""
    if cfg.is_classifier:
        return {"name": "features", "dtype": "float32", "shape": ["B", cfg.block_size, cfg.n_mels],
                "logits": ["B", cfg.num_classes]}
    length = "T" if cfg.is_transformer else 1
    return {"name": "idx", "dtype": "int64", "shape": ["B", length], "logits": ["B", length, cfg.vocab_size]}


def _axes(shape: list[Any]) -> dict[int, str]:
    """The dynamic axes of a shape: its symbolic dimensions."""
    return {i: d for i, d in enumerate(shape) if isinstance(d, str)}


def _example(spec: dict[str, Any], batch: int, length: int) -> torch.Tensor:
    """A tracing example of the family's input (zeros; symbolic dimensions: `batch`, `length`)."""
    dims = [batch if d == "B" else length if d == "T" else int(d) for d in spec["shape"]]
    return torch.zeros(dims, dtype=getattr(torch, spec["dtype"]))


def torch_input(spec: dict[str, Any], array: np.ndarray) -> torch.Tensor:
    """An array as the model's input tensor (token ids as int64, features as float32)."""
    return torch.as_tensor(np.asarray(array), dtype=getattr(torch, spec["dtype"]))


class _Forward(nn.Module):
    """The model's forward over explicit tensors: the family's input (token ids or log-mel frames)
    and the decoding state in, logits and state out."""

    def __init__(self, model: nn.Module, state: list[tuple[str, str]]):
        super().__init__()
        self.model, self.state = model, state  # (cache dict key, per layer) of each state tensor

    def forward(self, idx: torch.Tensor, *state: torch.Tensor):
        if not self.state:
            return self.model(idx, hook=export_hook)[0]
        n = len(self.state)
        caches = [{key: state[layer * n + j] for j, key in enumerate(self.state)}
                  for layer in range(len(state) // n)]
        logits, _ = self.model(idx, hook=export_hook, caches=caches)
        return (logits, *(c[key] for c in caches for key in self.state))


def decoding_state(model: nn.Module, batch: int) -> tuple[list[str], list[torch.Tensor], list[dict]]:
    """What the exported graph carries between calls: per layer the cache keys, example tensors, and
    their shapes ("B" for the batch) and dynamic axes."""
    cfg = model.config
    if cfg.is_classifier:  # whole clips: nothing carries between calls
        return [], [], []
    if cfg.is_transformer:
        if _noncausal(cfg):  # whole windows only: nothing carries between calls
            return [], [], []
        hd = cfg.n_embd // cfg.n_head
        keys = [("k", "kv"), ("v", "kv")]
        example = [torch.randn(batch, cfg.n_head, 3, hd) for _ in range(2 * cfg.n_layer)]
        info = [{"shape": ["B", cfg.n_head, 0, hd], "axes": {0: "B", 2: "P"},
                 "length_axis": 2}] * 2 * cfg.n_layer
    else:
        keys = [("hx", "hx")]
        example = [torch.randn(batch, cfg.cfc_units) for _ in range(cfg.n_layer)]
        info = [{"shape": ["B", cfg.cfc_units], "axes": {0: "B"}, "length_axis": None}] * cfg.n_layer
    return [k for k, _ in keys], example, info


def _noncausal(cfg: Any) -> str:
    from ember_neuro.kinds import registry

    return registry.get(cfg.variant).noncausal


def export_forward(model: nn.Module) -> tuple[Any, dict[str, Any]]:
    """The whole forward pass as one ONNX model with ember::Gate nodes, and its input/output plan."""
    import onnx

    cfg = model.config
    recurrent = not cfg.is_transformer and not cfg.is_classifier  # Liquid Ember: one token per call
    spec = model_input(cfg)
    b = 2
    keys, state, info = decoding_state(model, b)
    names_in = [f"cache.{i}" for i in range(len(state))]
    names_out = [f"cache_out.{i}" for i in range(len(state))]
    dynamic = {spec["name"]: _axes(spec["shape"]), "logits": _axes(spec["logits"])}
    for i, s in enumerate(info):
        dynamic[names_in[i]] = s["axes"]
        dynamic[names_out[i]] = {a: ("Tk" if name == "P" else name) for a, name in s["axes"].items()}
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(_Forward(model.eval(), keys), (_example(spec, b, 5), *state), buf,
                          dynamo=False, input_names=[spec["name"], *names_in],
                          output_names=["logits", *names_out], dynamic_axes=dynamic, opset_version=OPSET,
                          do_constant_folding=True, custom_opsets={GATE_DOMAIN: 1})
    io_plan = {"inputs": [spec["name"], *names_in], "outputs": ["logits", *names_out],
               "state": [{"input": i, "output": o, "shape": s["shape"], "length_axis": s["length_axis"]}
                         for i, o, s in zip(names_in, names_out, info, strict=True)],
               "tokens_per_call": 1 if recurrent else None,
               "input": {k: spec[k] for k in ("name", "dtype", "shape")}, "logits": spec["logits"]}
    return onnx.load_from_string(buf.getvalue()), io_plan


def split_at_gates(model: Any) -> tuple[list[Any], list[dict[str, Any]]]:
    """Cut an ONNX model at its ember::Gate nodes: (stage models, plan).

    A tensor's level is the number of gates on its longest path from the graph inputs; stage s
    holds the nodes of level s and takes from earlier levels exactly the tensors its nodes read.
    The plan lists, per stage, its inputs and outputs and the gates that run after it (their
    hook, layer, sources, input tensors and fire output).
    """
    import onnx
    from onnx import TensorProto, helper, shape_inference

    graph = model.graph
    typed = shape_inference.infer_shapes(model).graph
    known = {vi.name: vi.type.tensor_type for vi in (*typed.value_info, *typed.input, *typed.output)}
    elem = {name: tt.elem_type for name, tt in known.items()}
    rank = {name: len(tt.shape.dim) for name, tt in known.items() if tt.HasField("shape")}
    inits = {i.name: i for i in graph.initializer}
    level: dict[str, int] = {i.name: 0 for i in graph.input} | {name: 0 for name in inits}
    stages: dict[int, list[Any]] = {}
    gates: dict[int, list[Any]] = {}
    for node in graph.node:
        lv = max([level.get(i, 0) for i in node.input if i] or [0])
        if node.domain == GATE_DOMAIN:
            gates.setdefault(lv, []).append(node)
            for o in node.output:
                level[o] = lv + 1
                elem.setdefault(o, elem.get(node.input[0], TensorProto.FLOAT))
                if o not in rank and node.input[0] in rank:
                    rank[o] = rank[node.input[0]]
        else:
            stages.setdefault(lv, []).append(node)
            for o in node.output:
                level[o] = lv
    consumed_after: dict[str, int] = {}  # the last level that reads each tensor (gates count as theirs)
    for lv in sorted(set(stages) | set(gates)):
        for node in (*stages.get(lv, []), *gates.get(lv, [])):
            for i in node.input:
                consumed_after[i] = max(consumed_after.get(i, -1), lv)
    outputs = [o.name for o in graph.output]

    def info(name: str) -> Any:
        """A cut tensor's type, every dimension symbolic (the stages take any batch and length)."""
        if name not in elem or name not in rank:
            raise ValueError(f"ONNX export: no type for the cut tensor {name!r}")
        return helper.make_tensor_value_info(name, elem[name], [f"{name}_{i}" for i in range(rank[name])])

    models, plan = [], []
    for lv in range(max(set(stages) | set(gates)) + 1):
        nodes = stages.get(lv, [])
        own = {o for n in nodes for o in n.output}
        gate_inputs = {i for g in gates.get(lv, []) for i in g.input}
        ins = list(dict.fromkeys(i for n in nodes for i in n.input if i and i not in own and i not in inits))
        outs = [o for n in nodes for o in n.output
                if consumed_after.get(o, -1) > lv or o in outputs or o in gate_inputs]
        step: dict[str, Any] = {"file": None, "inputs": ins, "outputs": outs, "gates": [
            {"hook": _attr(g, "hook"), "layer": _attr(g, "layer"), "sources": _attr(g, "sources"),
             "inputs": list(g.input), "output": g.output[0]} for g in gates.get(lv, [])]}
        if nodes:
            used = list(dict.fromkeys(i for n in nodes for i in n.input if i in inits))
            sub = helper.make_graph(nodes, f"stage{lv}", [info(i) for i in ins], [info(o) for o in outs],
                                    initializer=[inits[i] for i in used])
            opsets = [o for o in model.opset_import if o.domain != GATE_DOMAIN]
            stage = helper.make_model(sub, ir_version=model.ir_version, opset_imports=opsets)
            onnx.checker.check_model(stage)
            step["file"] = f"stage{lv}.onnx"
            models.append(stage)
        plan.append(step)
    return models, plan


def _attr(node: Any, name: str) -> Any:
    from onnx import helper

    value = helper.get_attribute_value(next(a for a in node.attribute if a.name == name))
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [v.decode() if isinstance(v, bytes) else v for v in value]
    return int(value) if isinstance(value, int) else value


def export_graphs(model: nn.Module, folder: Path) -> dict[str, Any]:
    """Write the host stages of `model` into `folder`; returns the manifest (also graphs.json)."""
    cfg = model.config
    folder.mkdir(parents=True, exist_ok=True)
    full, io_plan = export_forward(model)
    stages, plan = split_at_gates(full)
    for stage, step in zip(stages, [s for s in plan if s["file"]], strict=True):
        (folder / step["file"]).write_bytes(stage.SerializeToString())
    files = {s["file"]: (folder / s["file"]).stat().st_size for s in plan if s["file"]}
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "opset": OPSET, "variant": cfg.variant,
                "config": cfg.to_dict(), "files": files, "io": io_plan, "plan": plan,
                "block_size": cfg.block_size if cfg.is_transformer else None,
                "noncausal": _noncausal(cfg), "layout": __doc__}
    (folder / "graphs.json").write_text(json.dumps(manifest, indent=1))
    return manifest


class TorchGates:
    """Every gate's trained fire from the model's own gate modules (the check's reference: the
    sigmoid of a soft gate, the 0/1 spike of a hard membrane), for OnnxHost."""

    def __init__(self, model: nn.Module):
        from ember_neuro.models.hooks import gate_modules

        self.modules = {(m.hook, m.layer): m for _, m in gate_modules(model)}

    @torch.no_grad()
    def fire(self, hook: str, layer: int, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.modules[(hook, layer)].fire({k: torch.as_tensor(v) for k, v in inputs.items()}).numpy()


@torch.no_grad()
def check(model: nn.Module, folder: Path, windows: list[np.ndarray]) -> dict[str, Any]:
    """onnxruntime vs PyTorch on validation windows, the model's trained fire as every gate's.

    Text: whole windows, and (with a KV cache: a causal transformer) the second half token by
    token on the cache built from the first half; Liquid Ember token by token on its state.  A
    keyword spotter: each clip alone and all of them as one batch (B is dynamic).  Returns max
    |logits difference| and what was compared.
    """
    from ember_neuro.hybrid.onnx_host import OnnxHost

    host = OnnxHost(folder, TorchGates(model))
    if model.config.is_classifier:
        return _check_clips(model, host, windows)
    incremental = host.cached and not host.recurrent
    worst, tokens = 0.0, 0
    for ids in windows:
        ref = model(torch_input(host.input, ids[None]))[0][0].double().numpy()
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


def _check_clips(model: nn.Module, host: Any, clips: list[np.ndarray]) -> dict[str, Any]:
    """A keyword spotter's check: class logits of each clip alone and of the batch of all clips."""
    batch = np.stack(clips)
    ref = model(torch_input(host.input, batch))[0].double().numpy()
    worst = float(np.abs(host.classify(batch) - ref).max())
    for i, clip in enumerate(clips):
        worst = max(worst, float(np.abs(host.classify(clip[None])[0] - ref[i]).max()))
    return {"max_abs_logit_diff": worst, "clips": len(clips), "windows": len(clips), "incremental": False}


def write_graphs(ck: Any, net: Any, folder: Path, text: Any, windows: int = 2) -> dict[str, Any]:
    """Graphs of a loaded checkpoint into `folder`, with graphs.json, checked on validation `text`
    (models.data.CharData in the checkpoint's vocabulary, or an audio model's AudioData: then
    `windows` clips)."""
    batch = text.val_batches(1, windows, ck.config.block_size, seed=0)[0][0].numpy()
    manifest = export_graphs(ck.model, folder)  # graphs.json: what OnnxHost reads for the check
    manifest["checkpoint"] = {"path": ck.path, "sha256": ck.sha256}
    manifest["check"] = check(ck.model, folder, list(batch))
    (folder / "graphs.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def export_onnx(checkpoint: str, out: str, force: bool = False, data: str | None = None,
                windows: int = 2) -> dict[str, Any]:
    """What ``export onnx`` does: the graphs into `out` (atomically), checked on validation text (an
    audio model: validation clips)."""
    import time

    from ember_neuro.atomic import atomic_dir, check_output_dir
    from ember_neuro.deploy.mapping import prepare
    from ember_neuro.mappers import MappingOptions

    t0 = time.time()
    dest = check_output_dir(out, force)
    prep = prepare(checkpoint, data)
    net = prep.map(MappingOptions(timesteps=8))  # the float gates for the check
    with atomic_dir(dest, force=force) as tmp:
        manifest = write_graphs(prep.ck, net, tmp, prep.text, windows)
    return {"out": str(dest), "variant": prep.ck.config.variant, "opset": OPSET, "files": manifest["files"],
            **manifest["check"], "seconds": round(time.time() - t0, 2)}
