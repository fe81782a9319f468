"""Run the exported host stages (export/onnx.py) in onnxruntime, with the gates anywhere -- no torch.

What the INRC bundle's generate.py runs, and what ``export onnx`` checks against PyTorch.
graphs.json lists the stages and, after each, the gates whose inputs it produced; the host
runs them in order, handing each gate's inputs to a gates object -- the neurons
(hybrid/paths.GatePaths on Lava or the numpy reference) or the trained sigmoids
(export/onnx.TorchGates: the model's own gate modules, for the ONNX check) -- and feeding
the fire back.  Nothing here knows a
variant: the manifest says what the input is (token ids, or a keyword spotter's log-mel
frames), what carries between calls and how many tokens a call takes.
Implements decoding.LogitSource (text) and :meth:`OnnxHost.classify` (whole clips).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np

from ember_neuro.errors import BadInput


class Gates(Protocol):
    """The fire of one gate's hook inputs (the same protocol as hybrid/paths.GatePaths)."""

    def fire(self, hook: str, layer: int, inputs: dict[str, np.ndarray]) -> np.ndarray: ...


class OnnxHost:
    """The host stages of one model in onnxruntime; a decoding.LogitSource (a batch of sequences)."""

    def __init__(self, folder: str | Path, gates: Gates):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BadInput("onnxruntime is not installed: pip install -r requirements.txt") from exc
        folder = Path(folder)
        self.meta = json.loads((folder / "graphs.json").read_text())
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        self.sessions = {name: ort.InferenceSession(str(folder / name), opts,
                                                    providers=["CPUExecutionProvider"])
                         for name in self.meta["files"]}
        self.gates = gates
        self.io = self.meta["io"]
        self.block_size = self.meta.get("block_size")
        self.cache: list | None = None

    @property
    def input(self) -> dict:
        """The graph's input: name, dtype, shape (a graphs.json without ``io.input``: token ids)."""
        return self.io.get("input", {"name": "idx", "dtype": "int64", "shape": ["B", "T"]})

    @property
    def classifier(self) -> bool:
        """Whether the model classifies whole clips (logits (B, C)) rather than predicting tokens."""
        return self.input["dtype"] != "int64"

    @property
    def cached(self) -> bool:
        """Whether calls carry state (a KV cache or a recurrent state): decoding may then step."""
        return bool(self.io["state"])

    @property
    def recurrent(self) -> bool:
        return self.io["tokens_per_call"] == 1

    def _state(self, batch: int) -> list[np.ndarray]:
        return [np.zeros([batch if d == "B" else d for d in s["shape"]],
                         np.float32) for s in self.io["state"]]

    def _call(self, idx: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """One run of every stage and gate on the input (token ids or features): logits, new state."""
        env: dict[str, np.ndarray] = {self.input["name"]: np.asarray(idx).astype(self.input["dtype"])}
        env.update(zip((s["input"] for s in self.io["state"]), state, strict=True))
        for step in self.meta["plan"]:
            if step["file"]:
                out = self.sessions[step["file"]].run(step["outputs"], {n: env[n] for n in step["inputs"]})
                env.update(zip(step["outputs"], out, strict=True))
            for g in step["gates"]:
                values = {s: env[n] for s, n in zip(g["sources"], g["inputs"], strict=True)}
                env[g["output"]] = np.asarray(self.gates.fire(g["hook"], int(g["layer"]), values), np.float32)
        return env["logits"], [env[s["output"]] for s in self.io["state"]]

    def forward(self, idx: np.ndarray, cache: list | None) -> tuple[np.ndarray, list]:
        """Logits (B, T, V) of new tokens `idx` (B, T) after `cache` (None: from the start); a
        keyword spotter's: class logits (B, C) of clips (B, F, n_mels), no state."""
        b, t = idx.shape[:2]
        state = self._state(b) if cache is None else list(cache)
        axis = self.io["state"][0]["length_axis"] if self.io["state"] else None
        past = 0 if axis is None or not state else state[0].shape[axis]
        if self.block_size is not None and past + t > self.block_size:
            raise BadInput(f"sequence length {past + t} exceeds block_size {self.block_size}")
        if not self.recurrent:
            return self._call(idx, state)
        logits = []
        for i in range(t):  # one token per call: the state carries the past
            out, state = self._call(idx[:, i:i + 1], state)
            logits.append(out)
        return np.concatenate(logits, axis=1), state

    def classify(self, features: np.ndarray) -> np.ndarray:
        """Class logits (B, C) of whole clips: log-mel frames (B, F, n_mels), every gate called once
        per layer for the whole batch."""
        if not self.classifier:
            raise BadInput("these host graphs take token ids, not audio features")
        want = self.input["shape"][1:]
        if features.ndim != 3 or list(features.shape[1:]) != want:
            raise BadInput(f"features of shape {tuple(features.shape)}; the graphs take "
                           f"(B, {want[0]}, {want[1]})")
        return self._call(features, [])[0]

    # -- decoding.LogitSource -----------------------------------------------------------------
    def prefill(self, ids: list[list[int]]) -> np.ndarray:
        logits, self.cache = self.forward(np.array(ids), None)
        return logits[:, -1]

    def step(self, tokens: list[int]) -> np.ndarray:
        logits, self.cache = self.forward(np.array(tokens)[:, None], self.cache)
        return logits[:, -1]

    def window(self, ids: list[list[int]]) -> np.ndarray:
        return self.forward(np.array(ids), None)[0][:, -1]

    def decode_settings(self) -> tuple[str, bool]:
        """(decode mode, recurrent) from the manifest: "whole" where the gates are not causal."""
        from ember_neuro.hybrid.decoding import decode_mode

        mode = decode_mode("auto", self.meta.get("noncausal", ""), self.meta.get("variant", ""))
        return mode, self.recurrent
