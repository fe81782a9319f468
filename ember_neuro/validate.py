"""Validate a checkpoint's mapped gates on six simulators, spike for spike, and through NIR.

    python -m ember_neuro.validate ckpt.pt [--timesteps 32] [--out DIR] [--force] [--json]
                                           [--nir FILE] [--grid-only] [--data TEXT]

Why: a spike-rate gate is only trustworthy if simulators written by other people
produce the same spikes from the same neurons.  One neuron array -- every gate
unit at a 1,001-point p grid (input i = b*U + u, the NIR layout) plus observed
attention probabilities -- runs on lava-float, lava-fixed (one Lava run per
arithmetic), emulator-float, emulator-fixed, snntorch and norse.  Every pair
gets the fraction of identical (step, neuron) slots and the rate cosine; every
slot where two float simulators differ is listed with its distance to threshold
and cause (reference.find_mismatches).  Float and fixed point legitimately
differ near threshold; those slots are explained by recomputing the fixed-point
drive.  The NIR round trip exports the gates (or reads --nir FILE), imports them
in snnTorch and Norse (dt passed explicitly) and compares with Lava float.
Error vs T (8..64) uses the fixed-point emulator (bit-exact with Lava).

DIR (default runs/validate-<ckpt stem>-T<T>) gets report.md, report.json,
gates.nir and the figures, all or nothing.  Exit 0: every bar met; 1: a bar
missed (report still written); 2: bad input; 3: a simulator failed at run time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ember_neuro import reference as R
from ember_neuro.cli import package_versions
from ember_neuro.validation_compare import (
    BAR_AGREE,
    BAR_EXCESS,
    FIXED_SIMS,
    FLOAT_SIMS,
    GRID_POINTS,
    SIMULATORS,
    SWEEP_T,
    build_inputs,
    compare,
    fixed_drive,
    head_errors,
    nir_roundtrip,
    pair_key,
    run_all,
    sweep_error,
)
from ember_neuro.validation_report import capped, render_markdown, write_figures

# The CLI's own names, and the computation's that callers (and tests) read from here.
__all__ = ["GRID_POINTS", "SIMULATORS", "SWEEP_T", "ValidateError", "bars", "build_inputs", "build_parser",
           "compare", "fixed_drive", "main", "nir_roundtrip", "run", "summary"]

OBSERVED_PER_UNIT = 2000


class ValidateError(RuntimeError):
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


def run(args: argparse.Namespace, step: Any, t0: float | None = None) -> dict:
    from ember_neuro.atomic import atomic_dir, check_output_dir
    from ember_neuro.checkpoint import load_checkpoint
    from ember_neuro.map import MAX_TIMESTEPS, mappable_units, observed_probs
    from ember_neuro.mappers.lif_gate import MAX_LEVELS, MappingOptions, map_gates

    t0 = time.time() if t0 is None else t0
    t, n = args.timesteps, args.neurons_per_gate
    if t < 1 or n < 1 or t > MAX_TIMESTEPS or t * n > MAX_LEVELS:
        raise ValidateError(f"--timesteps {t} / --neurons-per-gate {n} out of range "
                            f"(T in 1..{MAX_TIMESTEPS}, N >= 1, N*T <= {MAX_LEVELS})")
    dest = Path(args.out or f"runs/validate-{Path(args.checkpoint).stem}-T{t}")
    check_output_dir(dest, args.force)
    for module in ("snntorch", "norse.torch", "nir"):
        R.require(module)
    from ember_neuro.export import nir_gates as G

    external = G.read_gates(args.nir) if args.nir else None  # refuse a foreign file before any run
    ck = load_checkpoint(args.checkpoint)
    units = tuple(mappable_units(ck))
    step("map")
    mapped = map_gates(units, MappingOptions(timesteps=t, neurons_per_gate=n))
    step("observed p")
    observed, source = {}, None
    if not args.grid_only:
        try:
            observed, source = observed_probs(ck, args.data, OBSERVED_PER_UNIT)
        except Exception as exc:  # noqa: BLE001 - observed p are optional: say so, use the grid
            print(f"warning: no observed probabilities ({exc}); grid only", file=sys.stderr)
    obs = [np.abs(observed.get((u.layer, u.head), np.empty(0))) for u in units]
    unit_index, p = build_inputs(len(units), obs)
    rasters, fa, qa = run_all(mapped, unit_index, p, args.timeout, step)
    step("compare")
    xf, xq = mapped.encode(p, False), mapped.encode(p, True)
    _, v_float = R.lava_float_reference(fa, xf)
    v_fixed, v_fixed_logit = fixed_drive(mapped, qa, xq)
    pairs = compare(rasters, fa, xf, v_float, v_fixed, v_fixed_logit, int(qa.vth) << 6)
    errors = head_errors(mapped, rasters, unit_index, p)
    fp = mapped.fixed_params
    result: dict[str, Any] = {
        "checkpoint": {"path": str(args.checkpoint), "sha256": ck.sha256, "variant": ck.config.variant},
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
                   "k": u.k, "w_in": int(fp.w_in[i]), "w_dither": int(fp.w_dither[i]),
                   **{s: float(errors[s][i]) for s in SIMULATORS}} for i, u in enumerate(units)],
        "max_abs_error": float(errors["lava-fixed"].max()), "bound": mapped.bound,
        "max_abs_error_by_simulator": {s: float(e.max()) for s, e in errors.items()},
        "warnings": list(mapped.warnings), "versions": versions(),
    }
    with atomic_dir(dest, force=args.force) as tmp:
        step("NIR round trip")
        graph = external
        if graph is None:
            graph = G.read_gates(G.write_gates(mapped, tmp / "gates.nir"))
        nir = nir_roundtrip(mapped, graph, fa, rasters["lava-float"], args.timeout)
        nir.update(file=str(args.nir or dest / "gates.nir"), external=external is not None)
        result["nir"] = nir
        result["nir_roundtrip"] = dict(nir["agreement"])
        step("error vs T")
        result["error_vs_T"] = sweep_error(units, unit_index, p, n)
        step("figures")
        result["figures"] = write_figures(tmp, mapped, rasters, result["error_vs_T"])
        step("write")
        result["failures"] = bars(result)
        result["passed"] = not result["failures"]
        result["out"] = str(dest)
        result["seconds"] = round(time.time() - t0, 2)
        (tmp / "report.json").write_text(json.dumps(capped(result), indent=1))
        (tmp / "report.md").write_text(render_markdown(result, unit_index, p))
    result["seconds"] = round(time.time() - t0, 2)
    return result


def summary(result: dict) -> dict:
    """The one JSON object --json prints."""
    keys = ("timesteps", "neurons_per_gate", "agreement", "rate_cosine", "max_abs_error", "bound",
            "nir_roundtrip", "passed", "failures", "out", "seconds")
    out = {k: result[k] for k in keys}
    out["mismatches"] = {k: v["mismatches"] for k, v in result["pairs"].items()}
    out["error_vs_T"] = result["error_vs_T"]
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m ember_neuro.validate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="Ember checkpoint (.pt) with LIF gates")
    ap.add_argument("--timesteps", "-T", type=int, default=32, help="window length T (default 32)")
    ap.add_argument("--neurons-per-gate", "-N", type=int, default=1, help="neurons per gate (default 1)")
    ap.add_argument("--out", help="report folder (default runs/validate-<ckpt stem>-T<T>)")
    ap.add_argument("--force", action="store_true", help="replace --out if it exists")
    ap.add_argument("--json", action="store_true", help="print one JSON summary object on stdout")
    ap.add_argument("--nir", help="validate this existing NIR gate file instead of exporting one")
    ap.add_argument("--grid-only", action="store_true", help="skip observed attention probabilities")
    ap.add_argument("--data", help="text for observed probabilities (default: the checkpoint's corpus)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a Lava run is stopped")
    return ap


def main(argv: list[str] | None = None) -> int:
    from ember_neuro.atomic import OutputExists
    from ember_neuro.checkpoint import CheckpointError
    from ember_neuro.map import MapError

    t0 = time.time()
    args = build_parser().parse_args(argv)
    progress = Progress(enabled=not args.json)
    # --json: stdout carries exactly one object, so anything a library prints goes to stderr
    quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    try:
        with quiet:
            result = run(args, progress, t0)
    except (CheckpointError, MapError, ValidateError, OutputExists, PermissionError, ValueError,
            ImportError) as exc:
        progress.close()
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except (TimeoutError, RuntimeError) as exc:
        progress.close()
        print(f"error: a simulator failed: {' '.join(str(exc).split())}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        progress.close()
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
    progress.close()
    if args.json:
        print(json.dumps(summary(result)))
    else:
        for key in (pair_key("lava-fixed", "emulator-fixed"), pair_key("lava-float", "snntorch"),
                    pair_key("lava-float", "norse"), pair_key("lava-float", "lava-fixed")):
            print(f"{key:<30} agreement {result['agreement'][key]:.7f}")
        print(f"NIR round trip vs lava-float: {result['nir_roundtrip']}")
        print(f"max_abs_error {result['max_abs_error']:.6f} (bound {result['bound']:.6f}); "
              f"{'all bars met' if result['passed'] else 'MISSED: ' + '; '.join(result['failures'])}; "
              f"{result['seconds']:.1f} s")
        print(f"wrote {result['out']}/report.md")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
