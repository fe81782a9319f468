"""Run the exported host graphs (export/onnx.py) in onnxruntime, with the gates anywhere -- no torch.

What the INRC bundle's generate.py runs, and what ``export onnx`` checks against
PyTorch.  The gates come from a :class:`Gates` object: the neurons
(ember_neuro.hybrid.paths on Lava or the numpy reference) or the trained sigmoids
(:class:`SigmoidGates`, for the ONNX check).  Implements decoding.LogitSource.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ember_neuro.errors import BadInput
from ember_neuro.hybrid import paths as gatepath
from ember_neuro.mappers import MappedNetwork


class Gates:
    """The fire of every gate kind; subclasses implement the kinds their network has."""

    def attention(self, layer: int, p: np.ndarray, loads: dict | None) -> np.ndarray:
        raise NotImplementedError

    def hidden(self, layer: int, h: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def membrane(self, layer: int, v: np.ndarray, importance: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class SigmoidGates(Gates):
    """The trained fire itself (float64), from the mapped network's float neurons."""

    def __init__(self, net: MappedNetwork):
        self.net = net

    def _target(self, name: str, units: np.ndarray, values: dict[str, np.ndarray]) -> np.ndarray:
        return self.net.group(name).target(values, units)

    def attention(self, layer, p, loads):
        g = self.net.group("attention")
        unit_of = {(u.layer, u.head): i for i, u in enumerate(g.units)}
        heads = np.broadcast_to(np.arange(p.shape[1]).reshape(1, -1, 1, 1), p.shape)
        units = np.array([unit_of[(layer, h)] for h in range(p.shape[1])])[heads]
        values = {"input": p, **{k: np.broadcast_to(v, p.shape) for k, v in (loads or {}).items()}}
        return self._target("attention", units, values)

    def hidden(self, layer, h):
        g = self.net.group("hidden")
        first = next(i for i, u in enumerate(g.units) if u.layer == layer)
        units = first + np.broadcast_to(np.arange(h.shape[-1]), h.shape)
        return self._target("hidden", units, {"input": np.abs(h)})

    def membrane(self, layer, v, importance):
        return self._target("membrane", np.full(v.shape, layer), {"input": v})


class SpikingGates(Gates, gatepath.GatePaths):
    """The gates on neurons: the gate paths of ember_neuro.hybrid.paths on one backend."""

    def __init__(self, net: MappedNetwork, backend: str, slots: int, timeout_s: float = 60.0,
                 membrane: str = "rate"):
        self.paths: dict[str, Any] = {}
        kw = {"slots": slots, "timeout_s": timeout_s}
        if "attention" in net.groups:
            self.paths["attention"] = gatepath.AttentionPath(net.group("attention"), backend, **kw)
        if "hidden" in net.groups:
            self.paths["hidden"] = gatepath.HiddenPath(net.group("hidden"), backend, **kw)
        if "membrane" in net.groups:
            self.hard = membrane == "hard"
            if self.hard:
                self.paths["membrane"] = gatepath.HardMembrane(net.group("membrane_hard"), backend, **kw)
            else:
                self.paths["membrane"] = gatepath.MembraneRate(net.group("membrane"), backend, **kw)

    def _paths(self) -> list:
        return list(self.paths.values())

    def attention(self, layer, p, loads):
        return self.paths["attention"].fire(layer, p, loads)

    def hidden(self, layer, h):
        return self.paths["hidden"].fire(layer, h)

    def membrane(self, layer, v, importance):
        path = self.paths["membrane"]
        return path.fire(layer, importance) if self.hard else path.fire(layer, v)


class OnnxHost:
    """The host graphs of one model in onnxruntime; a decoding.LogitSource (a batch of sequences)."""

    def __init__(self, folder: str | Path, gates: Gates):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BadInput("onnxruntime is not installed: pip install -r requirements.txt") from exc
        folder = Path(folder)
        self.meta = json.loads((folder / "graphs.json").read_text())
        self.cfg = self.meta["config"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        cpu = ["CPUExecutionProvider"]
        self.sessions = {name: ort.InferenceSession(str(folder / name), opts, providers=cpu)
                         for name in self.meta["files"]}
        self.gates = gates
        self.transformer = self.cfg["variant"] != "cfc-lif"
        self.decay = np.asarray(self.meta.get("membrane_decay", []), np.float32)
        self.cache: list = []

    def _run(self, name: str, **inputs: np.ndarray) -> list[np.ndarray]:
        return self.sessions[name].run(None, inputs)

    def forward(self, idx: np.ndarray, cache: list | None) -> tuple[np.ndarray, list]:
        """Logits (B, T, V) of new tokens `idx` (B, T) after `cache` (None: from the start)."""
        return self._transformer(idx, cache) if self.transformer else self._liquid(idx, cache)

    def _transformer(self, idx: np.ndarray, cache: list | None) -> tuple[np.ndarray, list]:
        c = self.cfg
        b, t = idx.shape
        h, hd = c["n_head"], c["n_embd"] // c["n_head"]
        past = 0 if not cache else cache[0][0].shape[2]
        if past + t > c["block_size"]:
            raise BadInput(f"sequence length {past + t} exceeds block_size {c['block_size']}")
        pos = np.arange(past, past + t, dtype=np.int64)
        x = self._run("embed.onnx", idx=idx.astype(np.int64), pos=pos)[0]
        refractory, temporal = c["variant"] == "lif-refractory", c["variant"] == "temporal-lif"
        prev_load = None
        v_mem = np.zeros((b, t), np.float32)
        new_cache = []
        for layer in range(c["n_layer"]):
            pk, pv = cache[layer] if cache else (np.zeros((b, h, 0, hd), np.float32),) * 2
            out = self._run(f"layer{layer}.pre.onnx", x=x, past_k=pk, past_v=pv)
            p, k, v = out[:3]
            new_cache.append((k, v))
            loads = None
            if refractory:
                prev = np.zeros_like(p[:, :1, :1]) if prev_load is None else prev_load[:, None, None, :]
                loads = {"col_load": out[3], "prev_load": prev}
                prev_load = out[4]
            fire = self.gates.attention(layer, p, loads).astype(np.float32)
            post = self._run(f"layer{layer}.post.onnx", x=x, p=p, fire=fire, v=v)
            if temporal:
                x_mid, importance = post
                v_mem = v_mem * self.decay[layer] + importance
                fire_m = self.gates.membrane(layer, v_mem, importance).astype(np.float32)
                x = self._run(f"layer{layer}.mlp.onnx", x_mid=x_mid, fire=fire_m)[0]
                v_mem = v_mem * (np.float32(1.0) - fire_m)
            else:
                x = post[0]
        return self._run("head.onnx", x=x)[0], new_cache

    def _liquid(self, idx: np.ndarray, cache: list | None) -> tuple[np.ndarray, list]:
        c = self.cfg
        b, t = idx.shape
        state = list(cache) if cache else [np.zeros((b, c["cfc_units"]), np.float32)] * c["n_layer"]
        logits = []
        for i in range(t):  # the CfC is recurrent: one token at a time
            x = self._run("embed.onnx", idx=idx[:, i:i + 1].astype(np.int64))[0]
            for layer in range(c["n_layer"]):
                hid, state[layer] = self._run(f"layer{layer}.cfc.onnx", x=x, hx=state[layer])
                fire = self.gates.hidden(layer, hid).astype(np.float32)
                x = self._run(f"layer{layer}.post.onnx", x=x, h=hid, fire=fire)[0]
            logits.append(self._run("head.onnx", x=x)[0])
        return np.concatenate(logits, axis=1), state

    # -- decoding.LogitSource -----------------------------------------------------------------
    def prefill(self, ids: list[list[int]]) -> np.ndarray:
        logits, self.cache = self.forward(np.array(ids), None)
        return logits[:, -1]

    def step(self, tokens: list[int]) -> np.ndarray:
        logits, self.cache = self.forward(np.array(tokens)[:, None], self.cache)
        return logits[:, -1]

    def window(self, ids: list[list[int]]) -> np.ndarray:
        return self.forward(np.array(ids), None)[0][:, -1]
