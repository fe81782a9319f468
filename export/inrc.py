"""The INRC submission bundle: everything a Loihi 2 reviewer needs, runnable with numpy, Lava
and onnxruntime on Python 3.10 -- no torch, no ember-neuro install.

    BUNDLE/
      README.md           for the reviewer: what runs where, how to reproduce, what needs hardware
      verify.py           gate network from the saved mapping, golden windows replayed, bit-exact check
      generate.py         hybrid text generation: onnxruntime host graphs + Lava gates
      classify.py         (an audio model, instead of generate.py) keyword spotting of wav files
      requirements.txt    the bundle's own environment (Python 3.10)
      resources.json      Loihi 2 footprint, per-token (audio: per-inference) activity, energy estimate
      SHA256SUMS          every other file; verify.py checks it first
      model/mapped.npz    the saved mapped network (docs/mapped-format.md)
      model/onnx/         the host graphs split at the gates (export/onnx.py), graphs.json
      model/vocab.json    the character vocabulary (audio: model/labels.json, the class names and the
                          front end, and model/mel_basis.npy, the mel filterbank: no librosa needed)
      golden/golden.npz   recorded gate windows and their Lava spikes (ember_neuro/hybrid/golden.py)
      golden/golden.json  the recording run: prompt (validation text), greedy tokens, activity
                          (audio: the validation clips, golden/clips/*.wav, and their classes)
      report/             the fidelity report of `validate` on this mapping
      lib/ember_neuro/    the torch-free part of this package that the scripts import

The golden windows come from a greedy generation whose prompt is validation text (an audio
model: from classifying a few seeded validation clips, one per forward pass), run with the
exported graphs in onnxruntime and the gates on Lava's bit-accurate simulator (lava-sim);
the same run's activity gives the per-token (per-inference) counts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ember_neuro.backends.chip_window import BRIDGES
from ember_neuro.deploy import resources
from ember_neuro.export.onnx import OPSET
from ember_neuro.hybrid import decoding, golden

BUNDLE_FORMAT = "ember-neuro/inrc-bundle"
BUNDLE_VERSION = 1
TEMPLATES = Path(__file__).parent / "bundle"

# The torch-free modules the bundle's scripts import (a test imports them with torch blocked).
LIB_MODULES = ("__init__.py", "atomic.py", "cli.py", "errors.py", "gates.py")
LIB_PACKAGES = {"backends": ("__init__.py", "chip_window.py", "lava.py", "numpy_ref.py", "registry.py"),
                "hybrid": ("__init__.py", "decoding.py", "golden.py", "onnx_host.py", "paths.py"),
                "deploy": ("__init__.py", "resources.py"),
                "audio": ("__init__.py", "decisions.py", "features.py", "wav.py"),  # classify.py's
                "mappers": None, "processes": None}  # None: every module of the folder

# Python 3.10, as on INRC machines (helper-verified in a fresh venv: lava-nc 0.10.0 installs natively).
REQUIREMENTS = """\
# The bundle's own environment: Python 3.10 (INRC machines), no torch, no ember-neuro.
#   python3.10 -m venv .venv && .venv/bin/pip install -r requirements.txt
lava-nc==0.10.0
numpy==1.26.4
scipy==1.14.1
networkx==2.8.7
asteval==0.9.33
scikit-learn==1.6.1
joblib==1.6.0
threadpoolctl==3.8.0
cloudpickle==3.1.2
onnxruntime==1.23.2
coloredlogs==15.0.1
humanfriendly==10.0
flatbuffers==25.12.19
mpmath==1.3.0
packaging==26.3
protobuf==7.36.2
sympy==1.14.0
"""

GOLDEN_PROMPT_CHARS = 24
GOLDEN_TOKENS = 16
GOLDEN_MAX_WINDOWS = 64
GOLDEN_CLIPS = 4  # an audio bundle's golden recording: seeded validation clips, one forward pass each
GOLDEN_SEED = 0


def copy_lib(dest: Path) -> None:
    """The torch-free modules into dest/ember_neuro (sources only, no caches)."""
    import importlib

    import ember_neuro

    package = Path(ember_neuro.__file__).parent
    out = dest / "ember_neuro"
    out.mkdir(parents=True)
    for name in LIB_MODULES:
        shutil.copy2(package / name, out / name)
    for pkg, names in LIB_PACKAGES.items():
        src = Path(importlib.import_module(f"ember_neuro.{pkg}").__file__).parent  # mappers/ is package-dir'd
        (out / pkg).mkdir()
        for f in sorted(src.glob("*.py")) if names is None else (src / n for n in names):
            shutil.copy2(f, out / pkg / f.name)


class _PhaseSource:
    """A LogitSource passing through to `inner`, counting calls and gated values per phase
    (prefill, step, window) so per-token figures can leave the prompt's prefill out."""

    def __init__(self, inner: Any, evaluators: list[Any]):
        self.inner, self.evaluators = inner, evaluators
        self.phase = "prefill"
        self.calls: dict[str, int] = {}
        self.values: dict[str, int] = {}

    def _call(self, phase: str, fn: Any, arg: Any) -> Any:
        self.phase = phase
        before = sum(e.values for e in self.evaluators)
        out = fn(arg)
        self.calls[phase] = self.calls.get(phase, 0) + 1
        self.values[phase] = self.values.get(phase, 0) + sum(e.values for e in self.evaluators) - before
        return out

    def prefill(self, ids: list[list[int]]) -> Any:
        return self._call("prefill", self.inner.prefill, ids)

    def step(self, tokens: list[int]) -> Any:
        return self._call("step", self.inner.step, tokens)

    def window(self, ids: list[list[int]]) -> Any:
        return self._call("window", self.inner.window, ids)

    def classify(self, features: Any) -> Any:
        return self._call("clip", self.inner.classify, features)


@contextlib.contextmanager
def _tapped(net: Any, onnx_dir: Path, slots: int, temporal: str, timeout_s: float, max_windows: int,
            bridge: str) -> Iterator[tuple[Any, _PhaseSource, dict[str, Any]]]:
    """The exported graphs with the gates on lava-sim, every window tapped (one trace per gate
    path, named by the group that answers it): (host, counting source, the record filled in as
    the run goes and completed -- layouts, steps, exchanges -- before the networks stop)."""
    from ember_neuro.hybrid.onnx_host import OnnxHost
    from ember_neuro.hybrid.paths import GatePaths

    recorder = golden.Recorder(max_windows)
    phases: dict[str, dict[str, golden.Activity]] = {}
    with GatePaths(net, "lava-sim", slots=slots, timeout_s=timeout_s, mode=temporal,
                   bridge=bridge) as gates:
        host = OnnxHost(onnx_dir, gates)
        source = _PhaseSource(host, list(gates.paths.values()))
        for path in gates.paths.values():
            recorder.attach(path)
            path.tap = _phased(path.tap, path, phases, source)
        rec: dict[str, Any] = {"recorder": recorder, "phases": phases, "calls": source.calls,
                               "values": source.values}
        yield host, source, rec
        rec["arrays"] = {path.trace_name(k): getattr(r, "window", None) or path.layout(k)
                         for path in gates.paths.values() for k, r in path.runners.items()}
        rec["lava_steps"] = gates.lava_steps
        rec["exchanges"] = gates.exchanges()


def record_golden(net: Any, onnx_dir: Path, block: int, prompt: list[int], tokens: int, temporal: str,
                  timeout_s: float, max_windows: int = GOLDEN_MAX_WINDOWS,
                  bridge: str = "chip-side") -> dict[str, Any]:
    """Greedy generation with the exported graphs and the gates on lava-sim, every window tapped."""
    with _tapped(net, onnx_dir, block, temporal, timeout_s, max_windows, bridge) as (host, source, rec):
        mode, recurrent = host.decode_settings()
        t0 = time.perf_counter()
        out = decoding.decode(source, [list(prompt)], tokens, block, mode, recurrent, decoding.greedy)[0]
        rec.update(tokens=out, mode=mode, seconds=time.perf_counter() - t0)
    return rec


def record_golden_clips(net: Any, onnx_dir: Path, block: int, features: Any, temporal: str, timeout_s: float,
                        max_windows: int = GOLDEN_MAX_WINDOWS, bridge: str = "chip-side") -> dict[str, Any]:
    """A keyword spotter's golden run: each clip (F, n_mels) classified alone, one forward pass per
    clip on a network laid out for one clip (block = its frames), so the per-call activity is one
    inference's at batch 1 -- the unit of an audio bundle's resources.json."""
    import numpy as np

    with _tapped(net, onnx_dir, block, temporal, timeout_s, max_windows, bridge) as (_host, source, rec):
        t0 = time.perf_counter()
        logits = np.concatenate([source.classify(x[None]) for x in features])
        rec.update(logits=logits, mode="clip", seconds=time.perf_counter() - t0)
    return rec


def _phased(tap: Any, path: Any, phases: dict, source: _PhaseSource) -> Any:
    """A tap that also adds each exchange's activity (and what crossed the bridge) to the current
    phase's count, per network."""

    def run(key: int, payloads: Any, result: Any, live: Any, crossed: dict) -> None:
        tap(key, payloads, result, live, crossed)
        act = phases.setdefault(source.phase, {}).setdefault(path.trace_name(key), golden.Activity())
        window = getattr(path.runners[key], "window", None)
        if window is not None:
            act.add(golden.chip_window_activity(window, payloads, result, live, crossed))
        else:
            act.add(golden.window_activity(path.layout(key), payloads, result, crossed))

    return run


def per_token_phase(rec: dict[str, Any]) -> str:
    """Per-token figures in steady state: the decode steps (KV cache / CfC state), or every
    window for whole-sequence decoding (lif-refractory); a keyword spotter's: every clip."""
    if rec["mode"] == "clip":
        return "clip"
    return "window" if rec["mode"] == "whole" else "step"


def write_checksums(root: Path) -> int:
    """SHA256SUMS over every other file (verify.py re-checks it with the stdlib alone)."""
    from ember_neuro.models.checkpoint import sha256_of

    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    lines = [f"{sha256_of(p)}  {p.relative_to(root).as_posix()}" for p in files]
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return len(files)


@dataclass(frozen=True)
class BundleRequest:
    """What ``export inrc`` was asked (the CLI's options, by the same names)."""

    checkpoint: str
    out: str
    timesteps: int | None = None  # None: chosen (deploy/faithful.py)
    neurons_per_gate: int | None = None
    levels: str | None = None  # None: auto
    min_top1: float | None = None  # percent: the window search's target
    max_rel_delta: float | None = None
    force: bool = False
    data: str | None = None
    temporal: str | None = None  # None: the checkpoint's trained form (hybrid/session.temporal_mode)
    timeout: float = 120.0
    report: bool = True
    tokens: int = GOLDEN_TOKENS
    bridge: str | None = None  # the gate network recorded and priced (None: chip-side where it fits one chip)


def build_bundle(req: BundleRequest, step: Any = lambda name: None) -> dict[str, Any]:
    """What ``export inrc`` does: check, map once, then write the bundle's parts into a temporary
    folder that replaces ``req.out`` in one rename; returns the summary printed by ``--json``."""
    from ember_neuro.atomic import atomic_dir, check_output_dir
    from ember_neuro.deploy.mapping import Window, mapping_for, model_target, prepare
    from ember_neuro.hybrid.session import RunError, temporal_mode

    t0 = time.time()
    dest = check_output_dir(req.out, req.force)
    window = Window(req.timesteps, req.neurons_per_gate, req.levels)
    window.check()
    target = model_target(req.min_top1, req.max_rel_delta)
    temporal_mode(req.temporal)
    if req.tokens < 1:
        raise RunError(f"--tokens must be >= 1, got {req.tokens}")
    if req.bridge is not None and req.bridge not in BRIDGES:
        raise RunError(f"unknown --bridge {req.bridge!r}; use {' or '.join(BRIDGES)}")
    prep = prepare(req.checkpoint, req.data)
    ck, cfg = prep.ck, prep.ck.config
    req = dataclasses.replace(req, temporal=temporal_mode(req.temporal, cfg))
    step("map")
    net = mapping_for(prep, window, target=target)
    options = net.mapping_options
    bridge, why = bundle_bridge(net, cfg.block_size, req.temporal, req.bridge)
    if why:
        print(f"note: {why}", file=sys.stderr)
    req = dataclasses.replace(req, bridge=bridge)
    with atomic_dir(dest, force=req.force) as tmp:
        step("onnx")
        manifest = write_model(tmp / "model", prep, net)
        step("golden")
        rec, meta = write_golden(tmp / "golden", prep, net, req)
        res = write_resources(tmp / "resources.json", rec, meta, net, req.timeout)
        unit = resources.unit_of(res)
        validated = None
        if req.report:
            step("validate")
            from ember_neuro.validation.pipeline import ValidateRequest, validate_checkpoint

            validated = validate_checkpoint(ValidateRequest(req.checkpoint, out=str(tmp / "report"),
                                                            mapped=str(tmp / "model" / "mapped.npz"),
                                                            data=req.data, timeout=req.timeout),
                                            prep=prep)["passed"]  # the checkpoint loaded once
        step("scripts")
        write_scripts(tmp, "classify.py" if cfg.is_classifier else "generate.py")
        info = {"format": BUNDLE_FORMAT, "format_version": BUNDLE_VERSION, "variant": cfg.variant,
                "timesteps": options.timesteps, "neurons_per_gate": options.neurons_per_gate,
                "levels": options.levels, "temporal": req.temporal, "bridge": req.bridge, "opset": OPSET,
                "checkpoint": {"path": ck.path, "sha256": ck.sha256}, "onnx_check": manifest["check"],
                "window_choice": net.options.get("window_choice"),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (tmp / "bundle.json").write_text(json.dumps(info, indent=1))
        (tmp / "README.md").write_text(readme(info, res, meta, rec, net))
        files = write_checksums(tmp)
        size = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
    summary: dict[str, Any] = {
        "out": str(dest), "variant": cfg.variant, "timesteps": options.timesteps,
        "neurons_per_gate": options.neurons_per_gate, "levels": options.levels, "checkpoint": ck.path,
        "checkpoint_sha256": ck.sha256, "files": files, "bytes": size, **golden_summary(meta),
        "max_abs_logit_diff": manifest["check"]["max_abs_logit_diff"],
        "golden_windows": {k: t.windows for k, t in rec["recorder"].traces.items()},
        "resources": {"neurons": res["footprint"]["neurons"], "synapses": res["footprint"]["synapses"],
                      "cores": res["footprint"]["cores"], f"per_{unit}": res[f"per_{unit}"],
                      f"energy_per_{unit}": {k: v for k, v in res[f"energy_per_{unit}"].items()
                                             if k.endswith("_J")}},
        "seconds": round(time.time() - t0, 1)}
    if "neurobench" in res:
        summary["resources"]["neurobench"] = {k: v for k, v in res["neurobench"].items()
                                              if k not in ("definitions", "not_counted", "per")}
    if validated is not None:
        summary["validate_passed"] = validated
    if "window_choice" in net.options:
        summary["window_choice"] = net.options["window_choice"]
    foot = res["footprint"]
    if why:
        summary["bridge_note"] = why
    warnings = []
    if not foot["neurons"]:
        window = f"T={options.timesteps}, N={options.neurons_per_gate}"
        warnings.append(f"every gate unit is host-constant at {window} (its fire does not vary over the "
                        "calibrated inputs): the gate network is empty, verify.py replays nothing")
    if not foot["fits_one_chip"]:
        warnings.append(f"the gate network needs {foot['neurons']:,} neurons on {foot['cores']} neuro "
                        "cores, more than one Loihi 2 chip (128 cores); --bridge per-step needs N, "
                        "not N*T + 2, neurons per gate value")
    if warnings:
        summary["warnings"] = warnings
    return summary


def golden_summary(meta: dict[str, Any]) -> dict[str, Any]:
    """What the golden run did, for the summary: the greedy text of its prompt, or each golden clip's
    class (true and predicted)."""
    if "clips" in meta:
        return {"golden_clips": [{k: c[k] for k in ("wav", "label", "predicted")} for c in meta["clips"]]}
    return {"greedy_text": meta["greedy_text"], "prompt": meta["prompt"]}


def bundle_bridge(net: Any, block: int, temporal: str | None, asked: str | None) -> tuple[str, str | None]:
    """(the gate network the bundle records, why it is not the chip-side window or None): as asked,
    else what a run would pick (hybrid/paths.GatePaths.fit_bridge): a bundle whose network no chip
    holds checks nothing there."""
    from ember_neuro.hybrid.paths import GatePaths

    if asked is not None:
        return asked, None
    return GatePaths(net, "lava-sim", slots=block, mode=temporal or "rate").fit_bridge()


def write_model(folder: Path, prep: Any, net: Any) -> dict[str, Any]:
    """model/: the saved mapping, the ONNX host stages (checked against PyTorch), the vocabulary (an
    audio model: its classes and front end)."""
    from ember_neuro.mappers import save_mapped

    from .onnx import write_graphs

    folder.mkdir()
    save_mapped(net, folder / "mapped.npz")
    manifest = write_graphs(prep.ck, net, folder / "onnx", prep.text)
    cfg = prep.ck.config
    if cfg.is_classifier:
        write_front_end(folder, prep.ck)
    else:
        (folder / "vocab.json").write_text(json.dumps({"chars": prep.ck.vocab, "block_size": cfg.block_size,
                                                       "variant": cfg.variant}, indent=1))
    return manifest


def write_front_end(folder: Path, ck: Any) -> None:
    """labels.json (the classes, in class order, and the feature spec) and mel_basis.npy: the
    filterbank librosa built for the model's spec, stored so that classify.py computes the very
    features of the package (audio/features.log_mel) with numpy alone."""
    import numpy as np

    from ember_neuro.audio.features import FeatureSpec, mel_basis

    cfg = ck.config
    spec = FeatureSpec.from_config(cfg)
    (folder / "labels.json").write_text(json.dumps({
        "labels": list(ck.labels), "features": spec.as_dict(), "frames": spec.frames,
        "block_size": cfg.block_size, "variant": cfg.variant, "task": str(ck.train_config.get("task", "35"))},
        indent=1))
    np.save(folder / "mel_basis.npy", np.ascontiguousarray(mel_basis(spec)), allow_pickle=False)


def write_golden(folder: Path, prep: Any, net: Any, req: BundleRequest) -> tuple[dict, dict]:
    """golden/: a greedy generation from validation text on lava-sim, every gate window recorded (an
    audio model: a few validation clips classified, :func:`write_golden_clips`)."""
    if prep.ck.config.is_classifier:
        return write_golden_clips(folder, prep, net, req)
    ck, block = prep.ck, prep.ck.config.block_size
    x, _ = prep.text.val_batches(1, 1, block, seed=0)[0]
    prompt = [int(i) for i in x[0, :min(GOLDEN_PROMPT_CHARS, block // 2)]]
    rec = record_golden(net, folder.parent / "model" / "onnx", block, prompt, req.tokens, req.temporal,
                        req.timeout, bridge=req.bridge)
    folder.mkdir()
    meta = {"backend": "lava-sim", "timesteps": int(net.options["timesteps"]),
            "neurons_per_gate": int(net.options["neurons_per_gate"]), "temporal": req.temporal,
            "prompt_ids": prompt, "prompt": "".join(ck.vocab[i] for i in prompt), "greedy_ids": rec["tokens"],
            "greedy_text": "".join(ck.vocab[i] for i in rec["tokens"]), "decode": rec["mode"]}
    golden.save_golden(rec["recorder"].traces, folder / "golden.npz", meta)
    windows = {k: t.windows for k, t in rec["recorder"].traces.items()}
    (folder / "golden.json").write_text(json.dumps({**meta, "windows": windows,
                                                    "generation_seconds": rec["seconds"]}, indent=1))
    return rec, meta


def golden_items(data: Any, count: int = GOLDEN_CLIPS, seed: int = GOLDEN_SEED) -> list[tuple[str, int]]:
    """`count` seeded validation clips that are files (not task 12's silence crops), in set order:
    (path relative to the set's root, class)."""
    import numpy as np

    from ember_neuro.audio.speech_commands import SILENCE

    items = [it for it in data.commands.items("validation") if not it[0].startswith(SILENCE + ":")]
    if not items:
        raise ValueError(f"{data.source} has no validation clips to record the golden windows from")
    pick = np.random.default_rng(seed).choice(len(items), min(count, len(items)), replace=False)
    return [items[i] for i in sorted(pick)]


def clip_features(paths: list[Path], model_dir: Path) -> Any:
    """(n, frames, n_mels) log-mel features of wav files the way classify.py computes them: the
    bundle's stored filterbank and the lib copy's front end (audio/wav.read_clip, features.log_mel)."""
    import numpy as np

    from ember_neuro.audio.features import FeatureSpec, log_mel
    from ember_neuro.audio.wav import read_clip

    spec = FeatureSpec(**json.loads((model_dir / "labels.json").read_text())["features"])
    basis = np.load(model_dir / "mel_basis.npy", allow_pickle=False)
    return np.stack([log_mel(read_clip(p, spec), spec, basis) for p in paths])


def host_operations(model: Any, features: Any, labels: Any = None) -> dict[str, Any]:
    """NeuroBench's host-side figures on the PyTorch model, per clip, from the neurobench package's
    own classes (deploy/neurobench_metrics.py): Footprint, ConnectionSparsity, SynapticOperations
    (the nn.Linear layers' Dense and Effective_MACs) and ActivationSparsity (the nn.Sigmoid modules
    it hooks, the CfC's).  ``labels``: the clips' classes (NeuroBench's loader carries targets)."""
    import torch

    from ember_neuro.deploy.neurobench_metrics import host_counts

    x = torch.as_tensor(features)
    y = torch.zeros(len(x), dtype=torch.long) if labels is None else torch.as_tensor(labels)
    return host_counts(model, [(x, y)])


def _softmax(logits: Any) -> Any:
    import numpy as np

    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def write_golden_clips(folder: Path, prep: Any, net: Any, req: BundleRequest) -> tuple[dict, dict]:
    """golden/: seeded validation clips (copied into golden/clips/) classified on lava-sim with the
    exported graphs, each clip alone, every gate window recorded; the features come from the wav
    files by classify.py's own path, so `classify.py golden/clips/*.wav` reruns the recording."""
    from ember_neuro.audio.features import FeatureSpec

    ck, cfg = prep.ck, prep.ck.config
    clips = folder / "clips"
    clips.mkdir(parents=True)
    items = golden_items(prep.text)
    paths = []
    for ref, _ in items:
        paths.append(clips / ref.replace("/", "-"))
        shutil.copy2(prep.text.commands.root / ref, paths[-1])
    x = clip_features(paths, folder.parent / "model")
    rec = record_golden_clips(net, folder.parent / "model" / "onnx", cfg.block_size, x, req.temporal,
                              req.timeout, bridge=req.bridge)
    rec["host"] = host_operations(ck.model, x, [y for _, y in items])
    probs, labels = _softmax(rec["logits"]), ck.labels
    meta = {"backend": "lava-sim", "timesteps": int(net.options["timesteps"]),
            "neurons_per_gate": int(net.options["neurons_per_gate"]), "temporal": req.temporal,
            "decode": "whole clips, one per forward pass", "split": "validation",
            "data": prep.text.source, "features": {**FeatureSpec.from_config(cfg).as_dict(),
                                                   "frames": FeatureSpec.from_config(cfg).frames},
            "clips": [{"wav": p.relative_to(folder.parent).as_posix(), "source": ref, "label": labels[y],
                       "predicted": labels[int(q.argmax())], "probability": float(q.max())}
                      for p, (ref, y), q in zip(paths, items, probs, strict=True)]}
    golden.save_golden(rec["recorder"].traces, folder / "golden.npz", meta)
    windows = {k: t.windows for k, t in rec["recorder"].traces.items()}
    (folder / "golden.json").write_text(json.dumps({**meta, "windows": windows,
                                                    "classification_seconds": rec["seconds"]}, indent=1))
    return rec, meta


PER_STEP_SAMPLE_WINDOWS = 4  # windows of each trace replayed on the per-step network to count its exchanges


def per_step_exchanges(net: Any, rec: dict[str, Any], activity: dict[str, golden.Activity], tokens: int,
                       timeout_s: float) -> dict[str, float]:
    """The per-step network's per-token activity for the same windows: each trace's first windows
    replayed on it (lava-sim, its bridge counting what crosses), scaled to the windows per token."""
    from ember_neuro.backends import registry

    be, total = registry.require("lava-sim"), golden.Activity()
    for name, tr in rec["recorder"].traces.items():
        act = activity.get(name)
        if not tr.windows or act is None or not act.windows:
            continue
        w = min(PER_STEP_SAMPLE_WINDOWS, tr.windows)
        array = tr.array(net)
        with be.open(array, timeout_s, bridge="per-step") as runner:
            rasters = runner.run_windows(tr.payload()[:w])
            crossed = dict(runner.exchanges or {})
        one = golden.window_activity(array, tr.payload()[:w], rasters, crossed)
        scale = act.windows / w
        for f in fields(golden.Activity):
            setattr(total, f.name, getattr(total, f.name) + getattr(one, f.name) * scale)
    return {k: v / tokens for k, v in total.as_dict().items()}


def write_resources(path: Path, rec: dict[str, Any], meta: dict[str, Any], net: Any = None,
                    timeout_s: float = 120.0) -> dict[str, Any]:
    """resources.json: the footprint and the steady-state per-token (an audio bundle: per-inference,
    one clip per call) activity of the golden run, and the per-step network's exchanges for the
    same windows (measured at its bridge)."""
    phase = per_token_phase(rec)
    unit = "inference" if phase == "clip" else "token"
    n_tok = max(1, rec["calls"].get(phase, 0))
    activity = rec["phases"].get(phase, {})
    per_step = per_step_exchanges(net, rec, activity, n_tok, timeout_s) if net is not None else None
    host_flops = resources.HOST_GATE_FLOPS_PER_VALUE * rec["values"].get(phase, 0) / n_tok
    res = resources.estimate(rec["arrays"], activity, n_tok, host_flops, per_step, unit, rec.get("host"))
    if unit == "inference":
        res["measured_on"] = {"backend": "lava-sim", "clips": len(meta["clips"]), "batch": 1,
                              "decode": meta["decode"], "per_inference_phase": phase,
                              "per_inference_calls": n_tok, "lava_steps": rec["lava_steps"]}
    else:
        res["measured_on"] = {"backend": "lava-sim", "prompt_chars": len(meta["prompt_ids"]),
                              "generated": len(rec["tokens"]), "decode": rec["mode"],
                              "per_token_phase": phase, "per_token_calls": n_tok,
                              "lava_steps": rec["lava_steps"]}
    path.write_text(json.dumps(res, indent=1))
    return res


def write_scripts(root: Path, runner: str = "generate.py") -> None:
    """lib/ (the torch-free modules), verify.py, the runner (generate.py, or an audio bundle's
    classify.py) and requirements.txt."""
    copy_lib(root / "lib")
    for name in ("verify.py", runner):
        shutil.copy2(TEMPLATES / name, root / name)
    (root / "requirements.txt").write_text(REQUIREMENTS)


def readme(info: dict[str, Any], res: dict[str, Any], meta: dict[str, Any], rec: dict[str, Any],
           net: Any) -> str:
    """The reviewer-facing README, with this bundle's numbers filled in (an audio bundle's own
    template: how to classify, what runs where)."""
    if "clips" in meta:
        return readme_audio(info, res, meta, rec, net)
    text = (TEMPLATES / "README.md").read_text()
    fields = {
        "variant": info["variant"], "timesteps": info["timesteps"],
        "neurons_per_gate": info["neurons_per_gate"],
        "temporal_note": "".join(f", {hook} in {info['temporal']} mode" for hook in net.alternatives),
        "sha256": info["checkpoint"]["sha256"],
        "opset": info["opset"], "max_abs_logit_diff": f"{info['onnx_check']['max_abs_logit_diff']:.2e}",
        "prompt": json.dumps(meta["prompt"]), "greedy_text": json.dumps(meta["greedy_text"]),
        "tokens": len(meta["greedy_ids"]), "decode": meta["decode"],
        "windows": ", ".join(f"{k}: {t.windows} windows" for k, t in rec["recorder"].traces.items()),
        "resources": resources.markdown(res),
    }
    return text.format(**fields)


def built_designs(res: dict[str, Any], rec: dict[str, Any], info: dict[str, Any]) -> str:
    """The gate networks the golden run actually built, and why Lava chose the per-step one where it
    did (the bridge asked for may be the chip-side window where Lava finds it inexact)."""
    designs = sorted({g["design"] for g in res["footprint"]["groups"].values()}) or [info["bridge"]]
    why = sorted({v["why_per_step"] for v in rec.get("exchanges", {}).values()
                  if isinstance(v, dict) and v.get("why_per_step")})
    return " + ".join(designs) + (f" ({'; '.join(why)})" if why else "")


def readme_audio(info: dict[str, Any], res: dict[str, Any], meta: dict[str, Any], rec: dict[str, Any],
                 net: Any) -> str:
    """The README of an audio bundle (template README-audio.md): how to classify, what runs where."""
    rows = ["| golden clip | class | predicted (lava-sim) | probability |", "|---|---|---|---|"]
    rows += [f"| `{c['wav']}` | {c['label']} | {c['predicted']} | {c['probability']:.3f} |"
             for c in meta["clips"]]
    check, spec = info["onnx_check"], meta["features"]
    fields = {
        "variant": info["variant"], "timesteps": info["timesteps"],
        "neurons_per_gate": info["neurons_per_gate"], "sha256": info["checkpoint"]["sha256"],
        "opset": info["opset"], "max_abs_logit_diff": f"{check['max_abs_logit_diff']:.2e}",
        "levels": info["levels"], "check_clips": check.get("clips", 0),
        "classes": int(rec["logits"].shape[-1]),
        "frames": spec["frames"], "n_mels": spec["n_mels"], "sample_rate": spec["sample_rate"],
        "seconds": spec["audio_length"] / spec["sample_rate"], "bridge": built_designs(res, rec, info),
        "windows": ", ".join(f"{k}: {t.windows} windows" for k, t in rec["recorder"].traces.items()),
        "golden_clips": "\n".join(rows), "clips": len(meta["clips"]), "example": meta["clips"][0]["wav"],
        "resources": resources.markdown(res),
    }
    return (TEMPLATES / "README-audio.md").read_text().format(**fields)
