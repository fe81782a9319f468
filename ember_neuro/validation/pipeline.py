"""One validation run: the same mapped neurons and inputs on every validated simulator, NIR, error vs T.

The library behind ``python -m ember_neuro.validate`` (the CLI only parses and
prints): :func:`validate_checkpoint` maps the checkpoint (or loads a saved
mapping), runs every validated backend of the registry on one neuron array,
compares every pair spike for spike (validation/compare.py), exports and
re-imports the NIR graph, sweeps the error over T and writes the report
(validation/report.py) atomically.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ember_neuro.backends import references, registry
from ember_neuro.cli import package_versions
from ember_neuro.deploy.fidelity import GRID_POINTS, UnitInputs, chip_side_exact, points_per_unit
from ember_neuro.errors import BadInput
from ember_neuro.mappers import NeuronArray, NeuronGroup, loihi
from ember_neuro.validation.compare import (
    BAR_AGREE,
    BAR_EXCESS,
    Roles,
    compare,
    fixed_drive,
    float_reference,
    head_errors,
    nir_roundtrip,
    pair_key,
    roles,
    run_all,
    sweep_error,
)
from ember_neuro.validation.report import capped, render_markdown, write_figures


class ValidateError(BadInput):
    """A request the validator refuses; the message is one line."""


class Progress:
    """tqdm stage bar on stderr (silent with --json); step(name) closes the previous stage.

    The bar appears at the first step, after every input check, so a refused input
    leaves exactly one line on stderr.
    """

    STAGES = 12

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.bar = enabled, None

    def __call__(self, name: str) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=self.STAGES, file=sys.stderr, unit="stage", leave=False,
                            bar_format="{desc:<16} {bar} {n_fmt}/{total_fmt} [{elapsed}]")
        else:
            self.bar.update(1)
        self.bar.set_description_str(name)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def versions() -> dict[str, str | None]:
    return package_versions(("ember-neuro", "lava-nc", "torch", "numpy", "snntorch", "norse",
                             "nir", "nirtorch"))


def pair_bars(pairs: dict[str, dict], sims: Roles, prefix: str = "") -> list[str]:
    """The spike-agreement bars: fixed-point pairs bit-exact, float pairs at BAR_AGREE or better."""
    fails = [f"{prefix}{key} is not bit-exact" for key in sims.fixed_pairs() if pairs[key]["mismatches"]]
    return fails + [f"{prefix}{key}: agreement {rec['agreement']:.6f} < {BAR_AGREE}"
                    for key, rec in pairs.items() if sims.both_float(key) and rec["agreement"] < BAR_AGREE]


def bars(result: dict) -> list[str]:
    """The acceptance bars of one gate group; each missed one as a line."""
    pairs = result["pairs"]
    fails = pair_bars(pairs, roles())
    for key, rec in pairs.items():
        if rec["causes"].get("unexplained"):
            fails.append(f"{key}: {rec['causes']['unexplained']} unexplained mismatches")
    for name, frac in result["nir"]["agreement"].items():
        if frac < BAR_AGREE or result["nir"]["details"][name]["causes"].get("unexplained"):
            fails.append(f"NIR round trip via {name}: agreement {frac:.6f} vs Lava float "
                         f"({result['nir']['details'][name]['causes']})")
    if not result["max_abs_error"] <= result["bound"] + BAR_EXCESS:
        fails.append(f"max_abs_error {result['max_abs_error']:.5f} > bound + {BAR_EXCESS}")
    if result.get("chip_side_exact") is False:
        fails.append("the chip-side window's spike counts differ from the fixed-point reference's rasters")
    return list(dict.fromkeys(fails))


def validate_group(group: NeuronGroup, inputs: UnitInputs, remap: Any, graph: Any, nir_file: str,
                   external: bool, folder: Path, timeout_s: float, step: Any) -> dict[str, Any]:
    """One gate group on every validated simulator: pairs, per-unit errors, NIR round trip, error vs T,
    figures."""
    units, t, n, sims = group.units, group.timesteps, group.neurons_per_gate, roles()
    rasters, fa, qa = run_all(group, inputs, timeout_s, step)
    step(f"compare {group.name}")
    xf = group.encode(inputs.values, False, inputs.unit_index)
    xq = group.encode(inputs.values, True, inputs.unit_index)
    _, v_float = float_reference(fa, xf)
    v_fixed, logit_unit = fixed_drive(group, qa, xq)
    pairs = compare(rasters, fa, xf, v_float, v_fixed, logit_unit, loihi.threshold(int(qa.vth)))
    errors = head_errors(group, rasters, inputs)
    step(f"chip-side window {group.name}")
    ref = registry.reference(True)
    chip = chip_side_exact(ref, group, inputs.unit_index, np.atleast_2d(xq), rasters[ref.label][None],
                           timeout_s)
    fp = group.fixed_params
    w_in, w_d = fp.connection("input").weight, fp.connection("dither").weight
    result: dict[str, Any] = {
        "group": group.name, "timesteps": t, "neurons_per_gate": n, "unit_names": [u.name for u in units],
        "inputs": int(inputs.unit_index.size), "neurons": fa.size, "slots": fa.size * t,
        "host_sources": list(fp.host_sources), "simulators": list(sims.simulators), "pairs": pairs,
        "agreement": {k: v["agreement"] for k, v in pairs.items()},
        "rate_cosine": {k: v["rate_cosine"] for k, v in pairs.items()},
        "closest_margin": float(np.abs(v_float - fa.vth).min()),
        "float_fixed_same_slots": all(
            np.array_equal(rasters[f] != rasters[x], rasters[sims.ref_float] != rasters[sims.ref_fixed])
            for f in sims.float_sims for x in sims.fixed_sims),
        "heads": [{"name": u.name, "layer": u.layer, "head": u.head, "theta": u.theta, "leak": u.leak,
                   "k": u.k, "w_in": int(w_in[i]), "w_dither": int(w_d[i]),
                   **{s: float(errors[s][i]) for s in sims.simulators}} for i, u in enumerate(units)],
        "max_abs_error": float(errors[sims.ref_fixed].max()), "bound": group.bound,
        "max_exact_worst_case": float(group.fixed_worst_error.max()),
        "max_abs_error_by_simulator": {s: float(e.max()) for s, e in errors.items()},
        "warnings": list(group.warnings),
        "chip_side_exact": chip,  # the default Lava network's counts vs the reference's rasters (None: none)
    }
    step(f"NIR {group.name}")
    nir_result = nir_roundtrip(group, graph, fa, rasters[sims.ref_float], timeout_s,
                               points=points_per_unit(group, GRID_POINTS))
    nir_result.update(file=nir_file, external=external)
    result["nir"] = nir_result
    result["nir_roundtrip"] = dict(nir_result["agreement"])
    step(f"error vs T {group.name}")
    result["error_vs_T"] = sweep_error(remap, inputs, n)
    step(f"figures {group.name}")
    result["figures"] = write_figures(folder, group, rasters, result["error_vs_T"])
    result["failures"] = bars(result)
    return result


def validate_sequence(group: NeuronGroup, sequence: np.ndarray, timeout_s: float) -> dict[str, Any]:
    """A group whose state carries across its layer steps (the hard membrane) on every validated simulator.

    Its layer sequence for each token becomes one window of n_layer steps whose input
    is a chip table (docs/architecture.md: a table presents row t at step t), so every
    simulator runs the carried state as one ordinary window from rest.
    """
    seq_array = {f: as_window(group, sequence, f) for f in (False, True)}
    rasters = {}
    for backend in registry.validated():
        f = bool(backend.fixed)
        a = seq_array[f]
        zeros = np.zeros((1, a.payload_width), np.int64 if f else np.float64)
        rasters[backend.label] = np.asarray(backend.rasters(a, zeros, timeout_s)[0], dtype=bool)
    sims, pairs = roles(), {}
    for i, a in enumerate(sims.simulators):
        for b in sims.simulators[i + 1:]:
            diff = rasters[a] != rasters[b]
            pairs[pair_key(a, b)] = {"agreement": float(1.0 - diff.mean()), "mismatches": int(diff.sum())}
    fails = pair_bars(pairs, sims, prefix=f"{group.name}: ")
    return {"group": group.name, "tokens": int(sequence.shape[1]), "steps": int(sequence.shape[0]),
            "pairs": pairs, "spike_fraction": {k: float(r.mean()) for k, r in rasters.items()},
            "failures": fails, "nir": "not exported: the NIR gate format holds memoryless gate neurons; a "
            "leaky neuron whose state resets every n_layer steps needs its own graph (not built)"}


def as_window(group: NeuronGroup, sequence: np.ndarray, fixed: bool) -> NeuronArray:
    """A carried-state sequence (steps, tokens) as one window whose input is a per-neuron table."""
    from ember_neuro.mappers import Synapses

    steps, tokens = sequence.shape
    array = group.layout(np.zeros(tokens, np.int64), fixed)
    syn = array.synapse("input")
    payload = np.stack([group.encode(row, fixed, array.unit_index) for row in sequence])  # (steps, tokens)
    held = Synapses("input", np.zeros_like(syn.weight), syn.weight_exp, syn.column, None)  # adds 0
    table = Synapses("sequence", syn.weight, syn.weight_exp, np.arange(tokens), payload)
    return dataclasses.replace(array, timesteps=steps, synapses=(held, table), reset_windows=1)


@dataclass(frozen=True)
class ValidateRequest:
    """What ``validate`` was asked (the CLI's options, by the same names)."""

    checkpoint: str
    timesteps: int | None = None
    neurons_per_gate: int | None = None
    levels: str | None = None
    min_top1: float | None = None  # percent: the window search's target (deploy/faithful.py)
    max_rel_delta: float | None = None
    mapped: str | None = None
    out: str | None = None
    force: bool = False
    nir: str | None = None
    grid_only: bool = False
    data: str | None = None
    timeout: float = 120.0


@dataclass
class ValidationRun:
    """A validation ready to run: the checkpoint prepared once, its mapping, where the report goes,
    the observed inputs, and an external NIR graph if one was given."""

    req: ValidateRequest
    prep: Any  # deploy.mapping.Prepared
    net: Any  # MappedNetwork
    dest: Path
    external: Any  # the --nir graph, or None
    observed: dict[str, UnitInputs]
    source: str | None

    @property
    def first(self) -> str:
        """The group whose files sit at the top of the report (the others go in subfolders)."""
        from ember_neuro.deploy.fidelity import gate_groups

        return next(iter(gate_groups(self.net)))

    def remap(self, name: str) -> Any:
        """Group `name` mapped again at another T (same N, levels and calibration): the error sweep."""
        from ember_neuro.mappers import MappingOptions

        o = self.net.mapping_options
        n, lv = o.neurons_per_gate, o.levels
        return lambda t: self.prep.map(MappingOptions(timesteps=t, neurons_per_gate=n, levels=lv)).group(name)


def prepare_validation(req: ValidateRequest, step: Any, prep: Any = None) -> ValidationRun:
    """Every refusal first (window, output folder, reference simulators, a foreign --nir file, a
    variant without gates), then the checkpoint, its mapping and the observed inputs, each once.
    ``prep``: the checkpoint already prepared (deploy.mapping.prepare of ``req.checkpoint`` with
    ``req.data``: the INRC bundle validates what it just exported without loading it again)."""
    from ember_neuro.atomic import check_output_dir
    from ember_neuro.deploy.calibrate import observed_inputs
    from ember_neuro.deploy.fidelity import gate_groups
    from ember_neuro.deploy.mapping import Window, mapping_for, model_target, prepare
    from ember_neuro.export import nir_gates as G

    window = Window(req.timesteps, req.neurons_per_gate, req.levels)
    window.check()  # refuse a bad window before anything else
    target = model_target(req.min_top1, req.max_rel_delta)
    window_name = "mapped" if req.mapped and req.timesteps is None else \
        "chosen" if req.timesteps is None else f"T{req.timesteps}"
    dest = Path(req.out or f"runs/validate-{Path(req.checkpoint).stem}-{window_name}")
    check_output_dir(dest, req.force)
    for module in ("snntorch", "norse.torch", "nir"):
        references.require(module)
    external = G.read_gates(req.nir) if req.nir else None  # refuse a foreign file before any run
    if prep is None:
        prep = prepare(req.checkpoint, req.data)  # refuses a variant without a gate before the progress bar
    step("map")
    net = mapping_for(prep, window, req.mapped, target)
    groups = gate_groups(net)
    if external is not None and len(groups) > 1:
        raise ValidateError("--nir validates one gate group; this checkpoint maps several "
                            f"({', '.join(groups)})")
    step("observed inputs")
    observed, source = {}, None
    if not req.grid_only:
        try:
            observed, source = observed_inputs(prep.ck.model, net, prep.text), prep.text.source
        except Exception as exc:  # noqa: BLE001 - observed inputs are optional: say so, use the grid
            print(f"warning: no observed inputs ({exc}); grid only", file=sys.stderr)
    return ValidationRun(req, prep, net, dest, external, observed, source)


def run_groups(v: ValidationRun, tmp: Path, step: Any) -> tuple[dict[str, dict], dict[str, UnitInputs]]:
    """Every group on every validated simulator, its files written under `tmp`: (results, inputs)."""
    from ember_neuro.deploy.fidelity import carried_groups, gate_groups, grid_inputs
    from ember_neuro.export import nir_gates as G

    results: dict[str, dict] = {}
    inputs_of: dict[str, UnitInputs] = {}
    for name, group in gate_groups(v.net).items():
        inputs = grid_inputs(group)
        if name in v.observed:
            inputs = inputs + v.observed[name]
        prefix = "" if name == v.first else f"{name}_"
        nir_file = str(v.req.nir) if v.external is not None else str(v.dest / f"{prefix}gates.nir")
        graph = v.external if v.external is not None else \
            G.read_gates(G.write_gates(group, tmp / f"{prefix}gates.nir"))
        folder = tmp if name == v.first else tmp / name
        folder.mkdir(exist_ok=True)
        inputs_of[name] = inputs
        r = validate_group(group, inputs, v.remap(name), graph, nir_file, v.external is not None, folder,
                           v.req.timeout, step)
        r["subfolder"] = folder != tmp
        seen = v.observed.get(name)
        r["observed_per_unit"] = 0 if seen is None else \
            int(max(np.bincount(seen.unit_index, minlength=len(group.units))))
        results[name] = r
    for name, group in carried_groups(v.net).items():
        if name in v.observed:
            step(name)
            results[name] = validate_sequence(group, v.observed[name].values["input"], v.req.timeout)
    return results, inputs_of


def summarise(v: ValidationRun, results: dict[str, dict], t0: float) -> dict[str, Any]:
    """The result record: the first group's numbers at the top, every group's, every failure."""
    ck = v.prep.ck
    result: dict[str, Any] = {
        **results[v.first],
        "checkpoint": {"path": str(v.req.checkpoint), "sha256": ck.sha256, "variant": ck.config.variant},
        "mapped": str(v.req.mapped) if v.req.mapped else None, "observed_source": v.source,
        "groups": results, "versions": versions(),
    }
    result["failures"] = [f if name == v.first else f"{name}: {f}"
                          for name, r in results.items() for f in r["failures"]]
    result["passed"] = not result["failures"]
    result["levels"] = v.net.mapping_options.levels
    if "window_choice" in v.net.options:
        result["window_choice"] = v.net.options["window_choice"]
    result["out"] = str(v.dest)
    result["seconds"] = round(time.time() - t0, 2)
    return result


def validate_checkpoint(req: ValidateRequest, step: Any = lambda name: None,
                        t0: float | None = None, prep: Any = None) -> dict[str, Any]:
    """Validate every gate group of a checkpoint's mapping: prepare (``prep``: already done, see
    :func:`prepare_validation`), run the groups, summarise, and write the report folder all or
    nothing; returns the result."""
    from ember_neuro.atomic import atomic_dir

    t0 = time.time() if t0 is None else t0
    v = prepare_validation(req, step, prep)
    with atomic_dir(v.dest, force=req.force) as tmp:
        results, inputs_of = run_groups(v, tmp, step)
        step("write")
        result = summarise(v, results, t0)
        (tmp / "report.json").write_text(json.dumps(capped(result), indent=1))
        (tmp / "report.md").write_text(render_markdown(result, inputs_of))
    result["seconds"] = round(time.time() - t0, 2)
    return result


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The one JSON object --json prints."""
    keys = ("timesteps", "neurons_per_gate", "agreement", "rate_cosine", "max_abs_error", "bound",
            "nir_roundtrip", "passed", "failures", "out", "seconds")
    out = {k: result[k] for k in keys}
    out.update({k: result[k] for k in ("levels", "window_choice") if k in result})
    out["mismatches"] = {k: v["mismatches"] for k, v in result["pairs"].items()}
    out["error_vs_T"] = result["error_vs_T"]
    return out
