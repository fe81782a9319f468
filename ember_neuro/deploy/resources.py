"""What the gate network needs on Loihi 2, and what a token costs there: counts, then estimates.

Counts come from the deployed layout (neurons, synapses) and from the windows a real
hybrid generation exchanged with Lava's bit-accurate simulator (synaptic operations,
neuron updates, spikes; ember_neuro.golden.Activity).  Estimates multiply counts by
published constants, each with its source (../shared/SPEC.md section 7):

* Intel has published no per-operation energies for Loihi 2.  The per-operation
  figures are Loihi 1's pre-silicon numbers (Davies et al., IEEE Micro 2018, Table 2)
  -- Loihi 2 is at least this efficient per operation, so they give an upper bound,
  labelled as such.
* Static power is Loihi 2's measured board figure from lava-dl's PilotNet LIF
  benchmark (0.232 W static at about 153 us per step).  Our network's step time on a
  board is not known without hardware; the static energy per token uses PilotNet's
  step time as an illustration, labelled as such.
* Synaptic memory per core is not published unambiguously for Loihi 2 (128 KB and
  192 KB both appear); we use the lower, 128 KiB (Loihi 1's documented figure), and
  assume 4 bytes per one-to-one sparse synapse (8-bit weight plus index and
  bookkeeping; an assumption, stated).  Numpy only: this module ships in the bundle.
"""

from __future__ import annotations

import math
from typing import Any

from ember_neuro.hybrid.golden import Activity
from ember_neuro.mappers import NeuronArray, loihi

SOURCE_LOIHI2 = "Intel public material via open-neuromorphic.org (SPEC section 7)"
SOURCE_LOIHI1 = "Davies et al., IEEE Micro 2018, Table 2 (Loihi 1, pre-silicon)"
SOURCE_PILOTNET = "lava-dl netx/pilotnet_snn/benchmark.ipynb, Oheo Gulch board (Loihi 2)"

CONSTANTS: dict[str, dict[str, Any]] = {
    "cores_per_chip": {"value": loihi.CORES_PER_CHIP, "unit": "neuro cores", "source": SOURCE_LOIHI2},
    "neurons_per_chip": {"value": loihi.NEURONS_PER_CHIP, "unit": "neurons",
                         "source": SOURCE_LOIHI2 + " (up to 1 M)"},
    "neurons_per_core": {"value": loihi.NEURONS_PER_CORE, "unit": "neurons",
                         "source": "1 M neurons / 128 cores (" + SOURCE_LOIHI2 + ")"},
    "synapses_per_chip": {"value": 120_000_000, "unit": "synapses", "source": SOURCE_LOIHI2},
    "synaptic_memory_per_core": {"value": 128 * 1024, "unit": "bytes",
                                 "source": "128 KiB: Loihi 1's documented figure, the lower of the two "
                                           "published for Loihi 2 (128 KB / 192 KB; SPEC section 7)"},
    "bytes_per_synapse": {"value": 4, "unit": "bytes",
                          "source": "assumption: 8-bit weight plus index for a one-to-one sparse synapse"},
    "graded_spike_bits": {"value": loihi.PAYLOAD_BITS, "unit": "bits",
                          "source": "Lava's Python ports (Loihi 2: up to 32)"},
    "synop_energy": {"value": 23.6e-12, "unit": "J", "source": SOURCE_LOIHI1},
    "neuron_update_active_energy": {"value": 81e-12, "unit": "J", "source": SOURCE_LOIHI1},
    "neuron_update_inactive_energy": {"value": 52e-12, "unit": "J", "source": SOURCE_LOIHI1},
    "spike_energy": {"value": 1.7e-12, "unit": "J", "source": SOURCE_LOIHI1 + " (spike within a tile)"},
    "static_power": {"value": 0.232, "unit": "W", "source": SOURCE_PILOTNET + ": 0.232 W static"},
    "step_time": {"value": 153e-6, "unit": "s",
                  "source": SOURCE_PILOTNET + ": 408.9 fps x 16 steps/sample = about 153 us/step"},
}

# Host FLOPs of one gated attention value (the trained sigmoid): k(p - theta) 2, sigmoid 3
# (exp, add, divide), leak + (1 - leak) fire 2, times p 1.
HOST_GATE_FLOPS_PER_VALUE = 8


def _c(name: str) -> float:
    return float(CONSTANTS[name]["value"])


def chip_footprint(arrays: dict[str, NeuronArray]) -> dict[str, Any]:
    """Neurons, synapses, synaptic memory and neuro cores of the deployed layouts."""
    groups = {}
    for name, a in arrays.items():
        groups[name] = {"neurons": a.size, "synapses": a.size * len(a.synapses),
                        "connections": [s.source for s in a.synapses],
                        "timesteps": a.timesteps, "neurons_per_gate": a.neurons_per_gate}
    neurons = sum(g["neurons"] for g in groups.values())
    synapses = sum(g["synapses"] for g in groups.values())
    memory = synapses * _c("bytes_per_synapse")
    cores_neurons = math.ceil(neurons / _c("neurons_per_core"))
    cores_memory = math.ceil(memory / _c("synaptic_memory_per_core"))
    cores = max(1, cores_neurons, cores_memory)
    return {"groups": groups, "neurons": neurons, "synapses": synapses, "synaptic_memory_bytes": int(memory),
            "cores_by_neurons": cores_neurons, "cores_by_synaptic_memory": cores_memory, "cores": cores,
            "chip_fraction": {"neurons": neurons / _c("neurons_per_chip"),
                              "synapses": synapses / _c("synapses_per_chip"),
                              "cores": cores / _c("cores_per_chip")},
            "fits_one_chip": cores <= _c("cores_per_chip") and synapses <= _c("synapses_per_chip")}


def per_token(activity: dict[str, Activity], tokens: int) -> dict[str, float]:
    """Activity of the whole run divided by the tokens it generated."""
    total = Activity()
    for a in activity.values():
        total.add(a)
    d = total.as_dict()
    return {k: v / tokens for k, v in d.items()}


def energy_per_token(tok: dict[str, float]) -> dict[str, Any]:
    """Per-token energy: a Loihi 1 per-operation upper bound plus an illustrative static share.

    Neuron updates: those of a step where the neuron spiked count as active (81 pJ), the
    rest inactive (52 pJ) -- a simplification, stated.
    """
    active = tok["spikes"]
    inactive = max(0.0, tok["neuron_updates"] - active)
    dynamic = (tok["synops"] * _c("synop_energy") + active * _c("neuron_update_active_energy")
               + inactive * _c("neuron_update_inactive_energy") + tok["spikes"] * _c("spike_energy"))
    static = tok["steps"] * _c("step_time") * _c("static_power")
    return {"dynamic_upper_bound_J": dynamic,
            "dynamic_label": "upper bound from Loihi 1 per-operation energies (Loihi 2 unpublished)",
            "static_J": static,
            "static_label": "Loihi 2 measured static power x PilotNet's step time x our steps per token "
                            "(illustration: our step time on a board is unmeasured)",
            "total_J": dynamic + static}


def estimate(arrays: dict[str, NeuronArray], activity: dict[str, Activity], tokens: int,
             host_flops_per_token: float) -> dict[str, Any]:
    """resources.json: footprint, per-token counts, energy, host comparison, every constant sourced."""
    tok = per_token(activity, tokens)
    return {"footprint": chip_footprint(arrays), "per_token": tok, "tokens": tokens,
            "per_path": {k: v.as_dict() for k, v in activity.items()},
            "energy_per_token": energy_per_token(tok),
            "host_gate_flops_per_token": host_flops_per_token,
            "host_gate_flops_definition": f"{HOST_GATE_FLOPS_PER_VALUE} FLOPs per gated value "
                                          "(k(p - theta) 2, sigmoid 3, leak blend 2, product 1)",
            "constants": CONSTANTS}


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def markdown(res: dict[str, Any]) -> str:
    """The resource and energy section of the bundle's README."""
    f, t, e = res["footprint"], res["per_token"], res["energy_per_token"]
    rows = [
        "| quantity | value | Loihi 2 limit / source |",
        "|---|---|---|",
        f"| neurons | {f['neurons']:,} | {f['chip_fraction']['neurons']:.2%} of 1 M per chip |",
        f"| synapses | {f['synapses']:,} | {f['chip_fraction']['synapses']:.3%} of 120 M per chip |",
        f"| synaptic memory | {f['synaptic_memory_bytes'] / 1024:,.0f} KiB | 4 B/synapse (assumption), "
        "128 KiB per core |",
        f"| neuro cores | {f['cores']} (neurons: {f['cores_by_neurons']}, memory: "
        f"{f['cores_by_synaptic_memory']}) | of 128 per chip; 8,192 neurons per core |",
        f"| Lava steps per token | {_fmt(t['steps'])} | measured (lava-sim) |",
        f"| synaptic operations per token | {_fmt(t['synops'])} | measured (lava-sim) |",
        f"| neuron updates per token | {_fmt(t['neuron_updates'])} | measured (lava-sim) |",
        f"| spikes per token | {_fmt(t['spikes'])} | measured (lava-sim) |",
        f"| dynamic energy per token | <= {_fmt(e['dynamic_upper_bound_J'] * 1e6)} uJ | upper bound, "
        "Loihi 1 per-op energies (Davies 2018) |",
        f"| static energy per token | {_fmt(e['static_J'] * 1e6)} uJ | 0.232 W (Loihi 2, measured) x 153 "
        "us/step (PilotNet) x steps: illustration |",
        f"| host FLOPs of the same gates per token | {_fmt(res['host_gate_flops_per_token'])} | "
        f"{res['host_gate_flops_definition']} |",
    ]
    return "\n".join(rows)
