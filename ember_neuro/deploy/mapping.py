"""A checkpoint's gates -> a :class:`MappedNetwork`, and how faithfully a backend runs it.

The library behind ``python -m ember_neuro.map`` (and what run, validate, the bundle and the
benchmarks map through), in three steps that each happen once:

    prepare(checkpoint, data)      load the checkpoint, read its gate arrays, calibrate on text
    Prepared.map(options)          the mapping at one window (a pure function of the above)
    measure(...)                   every unit over its grid and observed inputs, on a backend

:func:`mapping_for` returns a saved mapping instead (the checkpoint's sha256 checked);
:func:`choose_window` searches windows for a budget on one Prepared (no reload, no recalibration).
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ember_neuro.backends import registry
from ember_neuro.cli import package_versions
from ember_neuro.kinds import registry as kinds
from ember_neuro.kinds.spec import Variant
from ember_neuro.mappers import MappedNetwork, MappingError, MappingOptions, NeuronGroup, load_mapped
from ember_neuro.mappers.gate import check_window
from ember_neuro.mappers.loihi import NEURONS_PER_CHIP
from ember_neuro.models.checkpoint import Checkpoint
from ember_neuro.models.hooks import part_state

DEFAULT_LEVELS = "auto"  # a pinned window's level set unless --levels says otherwise (docs/mapping.md §7)
SAVED_LEVELS = "uniform"  # what a saved mapping without a "levels" entry (format 1) was made with


def versions() -> dict[str, Any]:
    return {"python": platform.python_version(),
            **package_versions(("ember-neuro", "lava-nc", "torch", "numpy"))}


def gate_params(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """A model's raw gate arrays by checkpoint key (float64 numpy), the only input a mapper gets."""
    return {k: v.detach().double().cpu().numpy() for k, v in part_state(model).items()}


@dataclass(frozen=True)
class Window:
    """The window a user asked for.  What is None is chosen: by the model-level search
    (deploy/faithful.py), or with a saved mapping, the mapping's."""

    timesteps: int | None = None
    neurons_per_gate: int | None = None
    levels: str | None = None

    @property
    def pinned(self) -> bool:
        """Both T and N given: nothing to search."""
        return self.timesteps is not None and self.neurons_per_gate is not None

    def check(self) -> None:
        """Refuse an impossible window (one line) before anything loads."""
        if self.timesteps is not None or self.neurons_per_gate is not None:
            check_window(1 if self.timesteps is None else self.timesteps,
                         1 if self.neurons_per_gate is None else self.neurons_per_gate)

    def given(self) -> dict[str, Any]:
        return {"timesteps": self.timesteps, "neurons_per_gate": self.neurons_per_gate, "levels": self.levels}

    def options(self) -> MappingOptions:
        """The mapping options of a pinned window (levels: as given, else auto)."""
        if not self.pinned:
            raise MappingError("the window is not pinned: give -T and -N, or let the search choose")
        check_window(self.timesteps, self.neurons_per_gate)
        return MappingOptions(timesteps=self.timesteps, neurons_per_gate=self.neurons_per_gate,
                              levels=self.levels or DEFAULT_LEVELS)


@dataclass
class Prepared:
    """A checkpoint read once, with what its mapping needs from validation text (measured once)."""

    ck: Checkpoint
    data: str | None = None
    variant: Variant = field(init=False)
    params: dict[str, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        self.variant = kinds.check_variant(self.ck.config.variant)
        self.params = gate_params(self.ck.model)

    @cached_property
    def text(self) -> Any:
        """The validation data in the checkpoint's vocabulary -- text, or an audio model's keyword
        clips (models/data.data_for) -- loaded on first use, once."""
        from ember_neuro.models.data import data_for

        return data_for(self.ck, self.data)

    @cached_property
    def calibration(self) -> dict[str, Any]:
        """The payload scales the variant's kinds need ({} for none), measured on the text once."""
        from ember_neuro.deploy.calibrate import calibrate

        if not any(k.calibrate for k in self.variant.kinds):
            return {}
        return calibrate(self.ck.model, self.variant, self.text)

    def groups(self, options: MappingOptions) -> dict[str, NeuronGroup]:
        """The neuron groups at one window (budget searches call this many times)."""
        return kinds.map_variant(self.variant.name, self.params, self.ck.config.n_layer, options,
                                 self.calibration)

    def map(self, options: MappingOptions) -> MappedNetwork:
        check_window(options.timesteps, options.neurons_per_gate)
        return MappedNetwork(
            variant=self.variant.name, groups=self.groups(options),
            options={"timesteps": options.timesteps, "neurons_per_gate": options.neurons_per_gate,
                     "input_bits": options.input_bits, "dither_bits": options.dither_bits,
                     "levels": options.levels, "level_floor": options.level_floor,
                     "calibration": self.calibration},
            checkpoint={"path": self.ck.path, "sha256": self.ck.sha256, "iter_num": self.ck.iter_num,
                        "val_loss": self.ck.best_val_loss},
            versions=versions())


def prepare(checkpoint: str | Checkpoint, data: str | None = None) -> Prepared:
    """Load (unless given) a checkpoint with an LIF gate; MappingError (one line) for other variants."""
    from ember_neuro.models.checkpoint import load_checkpoint

    ck = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    return Prepared(ck, data)


def mapping_for(prep: Prepared, window: Window, mapped: str | Path | None = None,
                target: Any = None) -> MappedNetwork:
    """The saved mapping at `mapped` (refused if made from another checkpoint, or for another window
    than asked), or a fresh mapping at the window.  What the window leaves free is chosen by the
    model-level search (deploy/faithful.py: `target`, default top-1 >= 99.8 % and |rel. delta| <=
    0.1 %); the choice is printed on stderr and kept in the mapping's options as ``window_choice``."""
    if mapped is None:
        if window.pinned:
            if target is not None:
                raise MappingError("a model-level target (--min-top1 / --max-rel-delta) chooses the "
                                   "window; drop it, or drop -T/-N")
            return prep.map(window.options())
        from ember_neuro.deploy import faithful
        from ember_neuro.hybrid.session import temporal_mode

        # scored in the membrane's trained form: the float model it is compared with runs that form
        choice = faithful.choose(prep, window.given(), target, temporal_mode(None, prep.ck.config))
        print(choice.line(), file=sys.stderr)
        net = prep.map(MappingOptions(timesteps=choice.timesteps, neurons_per_gate=choice.neurons_per_gate,
                                      levels=choice.levels))
        net.options["window_choice"] = choice.as_dict()
        return net
    if target is not None:
        raise MappingError(f"{mapped} holds a mapping whose window is made; a model-level target "
                           "(--min-top1 / --max-rel-delta) chooses one: drop one of them")
    net = load_mapped(mapped, expect_sha256=prep.ck.sha256)
    saved = {**net.options, "levels": net.options.get("levels", SAVED_LEVELS)}
    for name in ("timesteps", "neurons_per_gate", "levels"):
        asked = getattr(window, name)
        if asked is not None and saved.get(name) != asked:
            raise MappingError(f"{mapped} was mapped with {name} = {saved.get(name)}, not {asked}; "
                               "drop the option or map again")
    return net


def choose_window(prep: Prepared, max_error: float | None = None, timesteps: int | None = None,
                  budget: int = NEURONS_PER_CHIP, levels: str = SAVED_LEVELS) -> Any:
    """budget.choose for a prepared checkpoint: the (T, N) with the fewest timesteps meeting `max_error`
    (or the most N at `timesteps`) within `budget` neurons of the generation layout (every unit
    owns block_size input slots); one mapping per (T, N) tried."""
    from ember_neuro.deploy import budget as B

    def map_at(t: int, n: int) -> dict[str, Any]:
        return prep.groups(MappingOptions(timesteps=t, neurons_per_gate=n, levels=levels))

    shape = map_at(1, 1)
    block = prep.ck.config.block_size
    return B.choose(map_at, lambda n: B.deployed_neurons(shape, block, n), max_error, timesteps, budget)


def format_table(rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """The per-unit fidelity table `map` prints (Liquid Ember: per layer, its worst neuron)."""
    lines = [f"{'unit':>8} {'theta':>7} {'leak':>6} {'k':>6} {'N':>3} {'w_in/w_d':>9} "
             f"{'max err':>9} {'exact':>9} {'bound':>8}  ok"]
    shown = rows
    if len(rows) > 48:  # per-neuron gates: the worst unit of each (group, layer)
        worst: dict[tuple, dict] = {}
        for r in rows:
            key = (r["group"], r["layer"])
            if key not in worst or r["max_abs_error"] > worst[key]["max_abs_error"]:
                worst[key] = r
        shown = list(worst.values())
        lines[0] += "   (worst neuron of each layer; --json lists all)"
    for r in shown:
        weights = str(r['w_in']) + '/' + str(r['w_dither']) if "host_constant" not in r else "host"
        note = f"  host constant {r['host_constant']:.5f}: no neurons" if "host_constant" in r else ""
        lines.append(
            f"{r['name']:>8} {r['theta']:7.3f} {r['leak']:6.3f} {r['k']:6.3f} {r['neurons']:3d} "
            f"{weights:>9} {r['max_abs_error']:9.5f} "
            f"{r['fixed_worst_case_error']:9.5f} {r['bound']:8.5f}  {'yes' if r['within'] else 'NO'}{note}")
    be = summary["emulator_bit_exact"]
    lines.append(
        f"target {summary['target']}, T={summary['timesteps']}, N={summary['neurons_per_gate']}, "
        f"{summary.get('levels', 'uniform')} levels: max error {summary['max_abs_error']:.5f} vs bound "
        f"{summary['bound']:.5f} ({summary['max_abs_error'] - summary['bound']:+.5f}); twin bit-exact: "
        f"{'n/a' if be is None else be}; {summary['seconds']:.1f} s")
    return "\n".join(lines)


def write_map_outputs(dest: Path, force: bool, net: MappedNetwork, summary: dict[str, Any],
                      measured: dict[str, Any]) -> None:
    """DIR: mapped.npz (save_mapped), manifest.json and one transfer-curve plot per group and layer,
    all written atomically."""
    import json

    from ember_neuro import plots
    from ember_neuro.atomic import atomic_dir
    from ember_neuro.deploy.fidelity import GRID_POINTS, points_per_unit
    from ember_neuro.mappers import save_mapped

    manifest = {
        "versions": dict(net.versions), "checkpoint": {**net.checkpoint, "variant": net.variant},
        "options": {"target": summary["target"], **dict(net.options)},
        "fidelity": {k: v for k, v in summary.items() if k not in ("heads", "units")},
        "heads": summary["heads"], "units": summary["units"],
    }
    first = next(iter(measured["groups"]))  # the first group's plots are transfer_L*.png
    with atomic_dir(dest, force=force) as tmp:
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        save_mapped(net, tmp / "mapped.npz")
        for name, m in measured["groups"].items():
            group = net.group(name)
            u, points = len(group.units), points_per_unit(group, GRID_POINTS)
            grid_rates = m["rates"][: points * u].reshape(points, u)
            grid_x = m["inputs"].values["input"][: points * u].reshape(points, u)
            for layer, idx in plots.units_by_layer(group.units):
                prefix = "transfer" if name == first else f"transfer_{name}"
                plots.transfer_curves(
                    tmp / f"{prefix}_L{layer}.png",
                    f"{name}, layer {layer}: mapped spike-rate gate vs trained sigmoid [{summary['target']}]",
                    [group.units[i] for i in idx], grid_x[:, idx],
                    {f"spike rate, NT={group.timesteps * group.neurons_per_gate}": grid_rates[:, idx]},
                    group.bound, errors=(f"spike rate, NT={group.timesteps * group.neurons_per_gate}",),
                    xlabel=group.address.label or f"{name} input")


@dataclass(frozen=True)
class MapRequest:
    """What ``map`` was asked (the CLI's options, by the same names)."""

    checkpoint: str
    target: str = "lava-sim"
    timesteps: int | None = None
    neurons_per_gate: int | None = None
    levels: str | None = None  # None: auto (or, with --max-error, uniform)
    max_error: float | None = None
    neuron_budget: int | None = None
    min_top1: float | None = None  # percent; the model-level target of the default search
    max_rel_delta: float | None = None  # percent
    out: str | None = None
    force: bool = False
    data: str | None = None
    grid_only: bool = False
    timeout: float = 120.0
    bit_exact_check: bool = True


def model_target(min_top1: float | None, max_rel_delta: float | None) -> Any:
    """The model-level target from percentages (None: neither given, the search's default)."""
    from ember_neuro.deploy.faithful import REL_DELTA, TOP1, ModelTarget

    if min_top1 is None and max_rel_delta is None:
        return None
    return ModelTarget(TOP1 if min_top1 is None else min_top1 / 100,
                       REL_DELTA if max_rel_delta is None else max_rel_delta / 100)


def resolve_window(req: MapRequest, prep: Prepared) -> tuple[Window, Any]:
    """The window asked for (what it leaves free, mapping_for's search chooses), or the one
    --max-error / --neuron-budget choose by the per-gate error."""
    from ember_neuro.errors import BadInput

    if req.max_error is None and req.neuron_budget is None:
        return Window(req.timesteps, req.neurons_per_gate, req.levels), None
    if req.min_top1 is not None or req.max_rel_delta is not None:
        raise BadInput("--max-error / --neuron-budget choose by the per-gate error, --min-top1 / "
                       "--max-rel-delta by the model's; give one kind of target")
    if req.neurons_per_gate is not None:
        raise BadInput("--neurons-per-gate is what --max-error / --neuron-budget choose; drop one")
    if req.max_error is None and req.timesteps is None:
        raise BadInput("--neuron-budget needs a target: --max-error E, or -T T (the most N it holds)")
    if req.neuron_budget is not None and req.neuron_budget < 1:
        raise BadInput(f"--neuron-budget must be >= 1, got {req.neuron_budget}")
    levels = req.levels or SAVED_LEVELS  # the per-gate bound is uniform levels' unless asked
    choice = choose_window(prep, req.max_error, req.timesteps, req.neuron_budget or NEURONS_PER_CHIP,
                           levels)
    print(f"chose T={choice.timesteps}, N={choice.neurons_per_gate}: exact worst case "
          f"{choice.worst_error:.5f}, "
          f"{choice.neurons:,} Loihi 2 neurons ({choice.cores} cores) in the generation layout; "
          f"{len(choice.tried)} mappings tried", file=sys.stderr)
    return Window(choice.timesteps, choice.neurons_per_gate, levels), choice


def map_and_measure(req: MapRequest) -> dict[str, Any]:
    """What ``map`` does: prepare the checkpoint once, choose the window, map, run every gate unit
    over its input grid (+ observed inputs) on the target and its twin, and write the mapped
    network (with manifest and plots) to ``req.out``.  Returns the summary."""
    from ember_neuro.atomic import check_output_dir
    from ember_neuro.deploy.calibrate import observed_inputs
    from ember_neuro.deploy.fidelity import measure

    t0 = time.time()
    Window(req.timesteps, req.neurons_per_gate).check()  # refuse a bad window before loading
    target = model_target(req.min_top1, req.max_rel_delta)
    backend = registry.require(req.target)
    if not backend.spiking:
        raise MappingError(f"target {req.target!r} does not spike; choose one of "
                           f"{', '.join(registry.names(spiking=True))}")
    dest = Path(req.out) if req.out else None
    if dest is not None:
        check_output_dir(dest, req.force)
    prep = prepare(req.checkpoint, req.data)
    window, choice = resolve_window(req, prep)
    net = mapping_for(prep, window, target=target)
    options = net.mapping_options
    for w in net.warnings:
        print(f"warning: {w}", file=sys.stderr)
    observed, data_source = None, None
    if not req.grid_only:
        try:
            observed, data_source = observed_inputs(prep.ck.model, net, prep.text), prep.text.source
        except Exception as exc:  # noqa: BLE001 - data is optional for mapping: say so, use the grid
            print(f"warning: no observed inputs ({exc}); using the grid only", file=sys.stderr)
    measured = measure(net, req.target, observed, req.timeout, req.bit_exact_check)
    summary = summarise(net, measured, req.target, options, data_source, t0)
    if choice is not None:
        summary["choice"] = choice.as_dict()
    if "window_choice" in net.options:
        summary["window_choice"] = net.options["window_choice"]
    if dest is not None:
        write_map_outputs(dest, req.force, net, summary, measured)
        summary["out"] = str(dest)
        summary["seconds"] = round(time.time() - t0, 2)
    return summary


def summarise(net: MappedNetwork, measured: dict[str, Any], target: str, options: MappingOptions,
              data_source: str | None, t0: float) -> dict[str, Any]:
    """The summary ``map`` prints and writes: every unit's row, the worst, the bound, bit-exactness."""
    rows = measured["rows"]
    exact = [v for v in measured["bit_exact"].values() if v is not None]
    first_name, first = next(iter(measured["groups"].items()))
    summary: dict[str, Any] = {
        "target": target, "variant": net.variant, "timesteps": options.timesteps,
        "neurons_per_gate": options.neurons_per_gate, "levels": options.levels,
        "heads": [r for r in rows if r["group"] == first_name], "units": rows,
        "max_abs_error": max(r["max_abs_error"] for r in rows),
        "max_exact_worst_case": max(r["fixed_worst_case_error"] for r in rows),
        "bound": min(net.group(g).bound for g in measured["groups"]),
        "emulator_bit_exact": all(exact) if exact else None,
        "bit_exact_by_group": measured["bit_exact"],
        "host_constant_units": [r["name"] for r in rows if "host_constant" in r],
        "saturated": [s for g in net.groups.values() for s in g.saturated],
        "warnings": list(net.warnings),
        "inputs_per_head": int(max(np.bincount(first["inputs"].unit_index))),
        "observed_source": data_source, "seconds": round(time.time() - t0, 2),
    }
    summary.update({k: v for k, v in measured.items() if k.endswith("_spike_fraction")})
    return summary
