"""The INRC submission bundle: everything a Loihi 2 reviewer needs, runnable with numpy, Lava
and onnxruntime on Python 3.10 -- no torch, no ember-neuro install.

    BUNDLE/
      README.md           for the reviewer: what runs where, how to reproduce, what needs hardware
      verify.py           gate network from the saved mapping, golden windows replayed, bit-exact check
      generate.py         hybrid text generation: onnxruntime host graphs + Lava gates
      requirements.txt    the bundle's own environment (Python 3.10)
      resources.json      Loihi 2 footprint, per-token activity, energy estimate (sourced constants)
      SHA256SUMS          every other file; verify.py checks it first
      model/mapped.npz    the saved mapped network (docs/mapped-format.md)
      model/onnx/         the host graphs split at the gates (export/onnx.py), graphs.json
      model/vocab.json    the character vocabulary
      golden/golden.npz   recorded gate windows and their Lava spikes (ember_neuro/hybrid/golden.py)
      golden/golden.json  the recording run: prompt (validation text), greedy tokens, activity
      report/             the fidelity report of `validate` on this mapping
      lib/ember_neuro/    the torch-free part of this package that the scripts import

The golden windows come from a greedy generation whose prompt is validation text, run
with the exported graphs in onnxruntime and the gates on Lava's bit-accurate
simulator (lava-sim); the same run's activity gives the per-token counts.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
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


def record_golden(net: Any, onnx_dir: Path, block: int, prompt: list[int], tokens: int, temporal: str,
                  timeout_s: float, max_windows: int = GOLDEN_MAX_WINDOWS,
                  bridge: str = "chip-side") -> dict[str, Any]:
    """Greedy generation with the exported graphs and the gates on lava-sim, every window tapped
    (one trace per gate path, named by the group that answers it)."""
    from ember_neuro.hybrid.onnx_host import OnnxHost
    from ember_neuro.hybrid.paths import GatePaths

    recorder = golden.Recorder(max_windows)
    phases: dict[str, dict[str, golden.Activity]] = {}
    with GatePaths(net, "lava-sim", slots=block, timeout_s=timeout_s, mode=temporal,
                   bridge=bridge) as gates:
        host = OnnxHost(onnx_dir, gates)
        source = _PhaseSource(host, list(gates.paths.values()))
        for path in gates.paths.values():
            recorder.attach(path)
            path.tap = _phased(path.tap, path, phases, source)
        mode, recurrent = host.decode_settings()
        t0 = time.perf_counter()
        out = decoding.decode(source, [list(prompt)], tokens, block, mode, recurrent, decoding.greedy)[0]
        seconds = time.perf_counter() - t0
        arrays = {path.trace_name(k): getattr(r, "window", None) or path.layout(k)
                  for path in gates.paths.values() for k, r in path.runners.items()}
        lava_steps = gates.lava_steps
        exchanges = gates.exchanges()
    return {"recorder": recorder, "phases": phases, "calls": source.calls, "values": source.values,
            "tokens": out, "mode": mode, "seconds": seconds, "arrays": arrays, "lava_steps": lava_steps,
            "exchanges": exchanges}


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
    window for whole-sequence decoding (lif-refractory)."""
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
        validated = None
        if req.report:
            step("validate")
            from ember_neuro.validation.pipeline import ValidateRequest, validate_checkpoint

            validated = validate_checkpoint(ValidateRequest(req.checkpoint, out=str(tmp / "report"),
                                                            mapped=str(tmp / "model" / "mapped.npz"),
                                                            data=req.data, timeout=req.timeout),
                                            prep=prep)["passed"]  # the checkpoint loaded once
        step("scripts")
        write_scripts(tmp)
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
        "checkpoint_sha256": ck.sha256, "files": files, "bytes": size, "greedy_text": meta["greedy_text"],
        "prompt": meta["prompt"], "max_abs_logit_diff": manifest["check"]["max_abs_logit_diff"],
        "golden_windows": {k: t.windows for k, t in rec["recorder"].traces.items()},
        "resources": {"neurons": res["footprint"]["neurons"], "synapses": res["footprint"]["synapses"],
                      "cores": res["footprint"]["cores"], "per_token": res["per_token"],
                      "energy_per_token": {k: v for k, v in res["energy_per_token"].items()
                                           if k.endswith("_J")}},
        "seconds": round(time.time() - t0, 1)}
    if validated is not None:
        summary["validate_passed"] = validated
    if "window_choice" in net.options:
        summary["window_choice"] = net.options["window_choice"]
    foot = res["footprint"]
    if why:
        summary["bridge_note"] = why
    if not foot["fits_one_chip"]:
        summary["warnings"] = [f"the gate network needs {foot['neurons']:,} neurons on {foot['cores']} neuro "
                               "cores, more than one Loihi 2 chip (128 cores); --bridge per-step needs N, "
                               "not N*T + 2, neurons per gate value"]
    return summary


def bundle_bridge(net: Any, block: int, temporal: str | None, asked: str | None) -> tuple[str, str | None]:
    """(the gate network the bundle records, why it is not the chip-side window or None): as asked,
    else what a run would pick (hybrid/paths.GatePaths.fit_bridge): a bundle whose network no chip
    holds checks nothing there."""
    from ember_neuro.hybrid.paths import GatePaths

    if asked is not None:
        return asked, None
    return GatePaths(net, "lava-sim", slots=block, mode=temporal or "rate").fit_bridge()


def write_model(folder: Path, prep: Any, net: Any) -> dict[str, Any]:
    """model/: the saved mapping, the ONNX host stages (checked against PyTorch), the vocabulary."""
    from ember_neuro.mappers import save_mapped

    from .onnx import write_graphs

    folder.mkdir()
    save_mapped(net, folder / "mapped.npz")
    manifest = write_graphs(prep.ck, net, folder / "onnx", prep.text)
    cfg = prep.ck.config
    (folder / "vocab.json").write_text(json.dumps({"chars": prep.ck.vocab, "block_size": cfg.block_size,
                                                   "variant": cfg.variant}, indent=1))
    return manifest


def write_golden(folder: Path, prep: Any, net: Any, req: BundleRequest) -> tuple[dict, dict]:
    """golden/: a greedy generation from validation text on lava-sim, every gate window recorded."""
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
    """resources.json: the footprint and the steady-state per-token activity of the golden run, and
    the per-step network's exchanges for the same windows (measured at its bridge)."""
    phase = per_token_phase(rec)
    n_tok = max(1, rec["calls"].get(phase, 0))
    activity = rec["phases"].get(phase, {})
    per_step = per_step_exchanges(net, rec, activity, n_tok, timeout_s) if net is not None else None
    host_flops = resources.HOST_GATE_FLOPS_PER_VALUE * rec["values"].get(phase, 0) / n_tok
    res = resources.estimate(rec["arrays"], activity, n_tok, host_flops, per_step)
    res["measured_on"] = {"backend": "lava-sim", "prompt_chars": len(meta["prompt_ids"]),
                          "generated": len(rec["tokens"]), "decode": rec["mode"], "per_token_phase": phase,
                          "per_token_calls": n_tok, "lava_steps": rec["lava_steps"]}
    path.write_text(json.dumps(res, indent=1))
    return res


def write_scripts(root: Path) -> None:
    """lib/ (the torch-free modules), verify.py, generate.py and requirements.txt."""
    copy_lib(root / "lib")
    for name in ("verify.py", "generate.py"):
        shutil.copy2(TEMPLATES / name, root / name)
    (root / "requirements.txt").write_text(REQUIREMENTS)


def readme(info: dict[str, Any], res: dict[str, Any], meta: dict[str, Any], rec: dict[str, Any],
           net: Any) -> str:
    """The reviewer-facing README, with this bundle's numbers filled in."""
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
