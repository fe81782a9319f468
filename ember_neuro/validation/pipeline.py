"""One validation run: the same mapped neurons and inputs on six simulators, NIR, error vs T.

The library behind ``python -m ember_neuro.validate`` (the CLI only parses and
prints): :func:`validate_checkpoint` maps the checkpoint (or loads a saved
mapping), runs every validated backend of the registry on one neuron array,
compares every pair spike for spike (validation/compare.py), exports and
re-imports the NIR graph, sweeps the error over T and writes the report
(validation/report.py) atomically.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ember_neuro.backends import references
from ember_neuro.cli import package_versions
from ember_neuro.errors import BadInput
from ember_neuro.mappers import loihi
from ember_neuro.mappers.registry import check_variant
from ember_neuro.validation.compare import (
    BAR_AGREE,
    BAR_EXCESS,
    FIXED_SIMS,
    FLOAT_SIMS,
    SIMULATORS,
    build_inputs,
    compare,
    fixed_drive,
    float_reference,
    head_errors,
    nir_roundtrip,
    pair_key,
    run_all,
    sweep_error,
)
from ember_neuro.validation.report import capped, render_markdown, write_figures

OBSERVED_PER_UNIT = 2000


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


def bars(result: dict) -> list[str]:
    """The acceptance bars; each missed one as a line."""
    fails = []
    pairs = result["pairs"]
    if pairs[pair_key("lava-fixed", "emulator-fixed")]["agreement"] != 1.0:
        fails.append("lava-fixed vs emulator-fixed is not bit-exact")
    for key, rec in pairs.items():
        a, b = key.split("/")
        if a in FLOAT_SIMS and b in FLOAT_SIMS and rec["agreement"] < BAR_AGREE:
            fails.append(f"{key}: agreement {rec['agreement']:.6f} < {BAR_AGREE}")
        if rec["causes"].get("unexplained"):
            fails.append(f"{key}: {rec['causes']['unexplained']} unexplained mismatches")
    for name, frac in result["nir"]["agreement"].items():
        if frac < BAR_AGREE or result["nir"]["details"][name]["causes"].get("unexplained"):
            fails.append(f"NIR round trip via {name}: agreement {frac:.6f} vs Lava float "
                         f"({result['nir']['details'][name]['causes']})")
    if not result["max_abs_error"] <= result["bound"] + BAR_EXCESS:
        fails.append(f"max_abs_error {result['max_abs_error']:.5f} > bound + {BAR_EXCESS}")
    return list(dict.fromkeys(fails))


def validate_checkpoint(checkpoint: str, timesteps: int | None = None, neurons_per_gate: int | None = None,
                        out: str | None = None, force: bool = False, nir: str | None = None,
                        grid_only: bool = False, data: str | None = None, timeout_s: float = 120.0,
                        mapped: str | None = None, step: Any = lambda name: None,
                        t0: float | None = None) -> dict[str, Any]:
    """Validate a checkpoint's mapped gates; writes the report folder and returns the result."""
    from ember_neuro.atomic import atomic_dir, check_output_dir
    from ember_neuro.checkpoint import load_checkpoint
    from ember_neuro.export import nir_gates as G
    from ember_neuro.mapping import check_window, mapping_for, observed_probs

    t0 = time.time() if t0 is None else t0
    check_window(32 if timesteps is None else timesteps,
                 1 if neurons_per_gate is None else neurons_per_gate)
    stem = Path(checkpoint).stem
    default = f"runs/validate-{stem}-" + ("mapped" if mapped and timesteps is None else f"T{timesteps or 32}")
    dest = Path(out or default)
    check_output_dir(dest, force)
    for module in ("snntorch", "norse.torch", "nir"):
        references.require(module)
    external = G.read_gates(nir) if nir else None  # refuse a foreign file before any run
    ck = load_checkpoint(checkpoint)
    check_variant(ck.config.variant)  # refuse before the progress bar appears
    step("map")
    net = mapping_for(ck, mapped, timesteps, neurons_per_gate)
    group = net.group("attention")
    units, t, n = group.units, group.timesteps, group.neurons_per_gate
    step("observed p")
    observed, source = {}, None
    if not grid_only:
        try:
            observed, source = observed_probs(ck, data, OBSERVED_PER_UNIT)
        except Exception as exc:  # noqa: BLE001 - observed p are optional: say so, use the grid
            print(f"warning: no observed probabilities ({exc}); grid only", file=sys.stderr)
    obs = [np.abs(observed.get((u.layer, u.head), np.empty(0))) for u in units]
    unit_index, p = build_inputs(len(units), obs)
    rasters, fa, qa = run_all(group, unit_index, p, timeout_s, step)
    step("compare")
    xf, xq = group.encode(p, False), group.encode(p, True)
    _, v_float = float_reference(fa, xf)
    v_fixed, v_fixed_logit = fixed_drive(group, qa, xq)
    pairs = compare(rasters, fa, xf, v_float, v_fixed, v_fixed_logit, loihi.threshold(int(qa.vth)))
    errors = head_errors(group, rasters, unit_index, p)
    fp = group.fixed_params
    w_in, w_d = fp.connection("input").weight, fp.connection("dither").weight
    result: dict[str, Any] = {
        "checkpoint": {"path": str(checkpoint), "sha256": ck.sha256, "variant": ck.config.variant},
        "mapped": str(mapped) if mapped else None,
        "timesteps": t, "neurons_per_gate": n, "unit_names": [u.name for u in units],
        "inputs": int(p.size), "observed_per_unit": int(max(len(o) for o in obs)),
        "observed_source": source, "neurons": fa.size, "slots": fa.size * t,
        "simulators": list(SIMULATORS), "pairs": pairs,
        "agreement": {k: v["agreement"] for k, v in pairs.items()},
        "rate_cosine": {k: v["rate_cosine"] for k, v in pairs.items()},
        "closest_margin": float(np.abs(v_float - fa.vth).min()),
        "float_fixed_same_slots": all(
            np.array_equal(rasters[f] != rasters[x], rasters["lava-float"] != rasters["lava-fixed"])
            for f in FLOAT_SIMS for x in FIXED_SIMS),
        "heads": [{"name": u.name, "layer": u.layer, "head": u.head, "theta": u.theta, "leak": u.leak,
                   "k": u.k, "w_in": int(w_in[i]), "w_dither": int(w_d[i]),
                   **{s: float(errors[s][i]) for s in SIMULATORS}} for i, u in enumerate(units)],
        "max_abs_error": float(errors["lava-fixed"].max()), "bound": group.bound,
        "max_abs_error_by_simulator": {s: float(e.max()) for s, e in errors.items()},
        "warnings": list(group.warnings), "versions": versions(),
    }
    with atomic_dir(dest, force=force) as tmp:
        step("NIR round trip")
        graph = external
        if graph is None:
            graph = G.read_gates(G.write_gates(group, tmp / "gates.nir"))
        nir_result = nir_roundtrip(group, graph, fa, rasters["lava-float"], timeout_s)
        nir_result.update(file=str(nir or dest / "gates.nir"), external=external is not None)
        result["nir"] = nir_result
        result["nir_roundtrip"] = dict(nir_result["agreement"])
        step("error vs T")
        result["error_vs_T"] = sweep_error(units, unit_index, p, n)
        step("figures")
        result["figures"] = write_figures(tmp, group, rasters, result["error_vs_T"])
        step("write")
        result["failures"] = bars(result)
        result["passed"] = not result["failures"]
        result["out"] = str(dest)
        result["seconds"] = round(time.time() - t0, 2)
        (tmp / "report.json").write_text(json.dumps(capped(result), indent=1))
        (tmp / "report.md").write_text(render_markdown(result, unit_index, p))
    result["seconds"] = round(time.time() - t0, 2)
    return result


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The one JSON object --json prints."""
    keys = ("timesteps", "neurons_per_gate", "agreement", "rate_cosine", "max_abs_error", "bound",
            "nir_roundtrip", "passed", "failures", "out", "seconds")
    out = {k: result[k] for k in keys}
    out["mismatches"] = {k: v["mismatches"] for k, v in result["pairs"].items()}
    out["error_vs_T"] = result["error_vs_T"]
    return out
