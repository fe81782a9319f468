"""What the gate network needs on Loihi 2, and what a token (or, for a keyword spotter, an
inference: one clip) costs there: counts, then estimates.

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
  bookkeeping; an assumption, stated).
* A token's latency on a board is dominated by the host<->chip exchanges, not the chip's
  steps (:func:`board_latency`): exchanges x a per-exchange cost + on-chip steps x the step
  time, and the static energy is the static power over that time.  The per-exchange cost is
  bracketed by three measured anchors (SPEC section 7); the closest to this design -- a Python
  host process exchanging a few hundred graded values with a Loihi 2 board through the
  embedded-IO adapters -- is the Kapoho Point ring buffer (about 8 ms per step with one message
  each way, so 4 ms per exchange).  The exchanges are counted at the bridge processes of the
  recorded run (processes/host_bridge.py), for both network designs.  Numpy only: this module
  ships in the bundle.

One model for every family: a text bundle's figures are per generated token, an audio bundle's
per inference (one 1-s clip through every layer); ``unit`` names which, in the keys too
(``per_token`` / ``per_inference``).  An audio bundle also reports its figures under NeuroBench's
metric names (:func:`neurobench`), with how each maps onto a hybrid host + chip model.
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
                  "source": SOURCE_PILOTNET + ": 408.9 fps x 16 steps/sample = about 153 us/step, with no "
                                              "per-step I/O (the input written once as a bias)"},
}

# The cost of one host<->chip exchange (a message one way), from measured runs (SPEC section 7).
EXCHANGE_ANCHORS: dict[str, dict[str, Any]] = {
    "nengo_loihi_kws": {
        "value": 0.95e-3 / 2, "unit": "s per exchange",
        "source": "nengo-loihi keyword spotting on Loihi 1 (issues #51, #12): 24,640 steps in 23.3 s, about "
                  "0.95 ms per step with host I/O every step, one message each way",
        "note": "lower anchor: Loihi 1, small messages, nengo's C host interface"},
    "kapoho_point_ring_buffer": {
        "value": 16.09 / 2000 / 2, "unit": "s per exchange",
        "source": "200-channel Python ring buffer in and out through the embedded-IO adapters, Kapoho Point "
                  "(Loihi 2): 2,000 steps in 16.09 s, about 8 ms per step, one message each way (a "
                  "published measurement; verify before citing, SPEC section 7)",
        "note": "closest to this design: Loihi 2, a Python host process, a few hundred values per message"},
    "pilotnet_sdnn_streamed": {
        "value": 59e-3, "unit": "s per exchange",
        "source": "lava-dl netx/pilotnet_sdnn/benchmark.ipynb, Oheo Gulch (Loihi 2): 16.87 fps with frames "
                  "streamed from the host every step, 'bottlenecked by the communication of input frames'",
        "note": "upper anchor: a 200 x 66 x 3 frame per message"},
}
CLOSEST_ANCHOR = "kapoho_point_ring_buffer"

# Host FLOPs of one gated attention value (the trained sigmoid): k(p - theta) 2, sigmoid 3
# (exp, add, divide), leak + (1 - leak) fire 2, times p 1.
HOST_GATE_FLOPS_PER_VALUE = 8

# What a figure is counted per: unit -> (the board-time word, its plural for rates).
UNITS = {"token": ("step", "tokens"), "inference": ("inference", "inferences")}


def _c(name: str) -> float:
    return float(CONSTANTS[name]["value"])


def layout_footprint(layout: Any) -> dict[str, Any]:
    """Neurons and synapses of one deployed network: a per-step NeuronArray, or a chip-side window
    (backends/chip_window.py: its LIF neurons, the lanes' graded neurons, the dither holder)."""
    if isinstance(layout, NeuronArray):
        return {"design": "per-step", "neurons": layout.size, "synapses": layout.size * len(layout.synapses),
                "connections": [s.source for s in layout.synapses], "timesteps": layout.timesteps,
                "neurons_per_gate": layout.neurons_per_gate, "lanes": layout.n_inputs}
    conns = (*layout.host, *layout.dither, layout.readout)
    src = layout.source
    return {"design": "chip-side", "neurons": layout.size + layout.lanes + int(layout.dither_values.size),
            "synapses": sum(int(c.weights.size) for c in conns),
            "connections": [s.source for s in src.synapses] + ["readout"], "timesteps": src.timesteps,
            "neurons_per_gate": src.neurons_per_gate, "lanes": layout.lanes,
            "neurons_per_value": layout.per_lane + layout.flags_per_lane + 1}


def chip_footprint(arrays: dict[str, Any]) -> dict[str, Any]:
    """Neurons, synapses, synaptic memory and neuro cores of the deployed layouts."""
    groups = {name: layout_footprint(a) for name, a in arrays.items()}
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
    """Activity of the whole run divided by the tokens it generated (or the clips it classified)."""
    total = Activity()
    for a in activity.values():
        total.add(a)
    d = total.as_dict()
    return {k: v / tokens for k, v in d.items()}


def energy_per_token(tok: dict[str, float], unit: str = "token") -> dict[str, Any]:
    """Energy per token (or inference): a Loihi 1 per-operation upper bound plus an illustrative
    static share.

    Neuron updates: those of a step where the neuron spiked count as active (81 pJ), the
    rest inactive (52 pJ) -- a simplification, stated.
    """
    step = UNITS[unit][0]
    active = tok["spikes"]
    inactive = max(0.0, tok["neuron_updates"] - active)
    dynamic = (tok["synops"] * _c("synop_energy") + active * _c("neuron_update_active_energy")
               + inactive * _c("neuron_update_inactive_energy") + tok["spikes"] * _c("spike_energy"))
    static = board_latency(tok, unit=unit)[CLOSEST_ANCHOR][f"static_J_per_{step}"]
    return {"dynamic_upper_bound_J": dynamic,
            "dynamic_label": "upper bound from Loihi 1 per-operation energies (Loihi 2 unpublished)",
            "static_J": static,
            "static_label": f"Loihi 2 measured static power x the {unit}'s board time (exchanges x 4 ms, "
                            "Kapoho Point anchor, + steps x 153 us): an estimate, the board time is "
                            "unmeasured",
            "total_J": dynamic + static}


def exchanges(tok: dict[str, float]) -> float:
    """Host<->chip messages per token (or inference), both ways."""
    return float(tok.get("to_chip_messages", 0) + tok.get("from_chip_messages", 0))


def board_latency(tok: dict[str, float], batch: int = 1, unit: str = "token") -> dict[str, Any]:
    """A generated step's (or an inference's) time on a board, per anchor: exchanges x cost + steps
    x step time.

    One step serves every prompt of a batch (a message carries all of them; the lanes grow with
    the batch, the messages and steps do not), so tokens/s = batch / step time; likewise one
    forward pass classifies a batch of clips.
    """
    step, plural = UNITS[unit]
    steps_s = tok["steps"] * _c("step_time")
    out = {}
    for name, anchor in EXCHANGE_ANCHORS.items():
        seconds = exchanges(tok) * float(anchor["value"]) + steps_s
        out[name] = {f"seconds_per_{step}": seconds, f"{plural}_per_s": batch / seconds if seconds else None,
                     f"static_J_per_{step}": seconds * _c("static_power")}
    return out


def board_estimate(tok: dict[str, float], unit: str = "token") -> dict[str, Any]:
    """The latency and static energy of a token (or inference) on a board, at batch 1 and batch 8,
    every anchor."""
    what = "generated step" if unit == "token" else "inference (one clip)"
    return {f"exchanges_per_{unit}": exchanges(tok), f"chip_steps_per_{unit}": tok["steps"],
            "batch_1": board_latency(tok, 1, unit), "batch_8": board_latency(tok, 8, unit),
            "closest_anchor": CLOSEST_ANCHOR,
            "model": f"seconds per {what} = host<->chip exchanges x the anchor's cost per exchange + "
                     "on-chip steps x 153 us (PilotNet LIF); static energy = 0.232 W x that time"}


def neurobench(per: dict[str, float], footprint: dict[str, Any], per_path: dict[str, dict[str, int]],
               calls: int, host: dict[str, Any]) -> dict[str, Any]:
    """An inference's figures under NeuroBench's metric names (its ``Benchmark`` result keys), per
    sample as NeuroBench reports them, with how each maps onto this hybrid model.

    The host's figures (``host``, measured at export on the golden clips) come from the neurobench
    package's own classes (deploy/neurobench_metrics.py; ``counted_by`` says so): Footprint,
    ConnectionSparsity, and SynapticOperations over the nn.Linear layers it hooks, which here do
    MACs only (no host layer is fed spikes).  What it cannot see is ours: the chip's synaptic
    events (measured on lava-sim) are the ACs, and every chip synapse at every step of its network
    joins the host's Dense.  ActivationSparsity: the fraction of the gate neurons' updates without
    a spike (lava-sim); NeuroBench's own class sees only the CfC's nn.Sigmoid modules on the host
    (``host_activation_sparsity``), never the gates."""
    groups = footprint["groups"]
    chip_dense = sum(groups[k]["synapses"] * v["steps"] for k, v in per_path.items() if k in groups) / calls
    updates = per.get("neuron_updates", 0)
    counted_by = host.get("counted_by", "ember-neuro (NeuroBench's rules, own hooks)")
    host_acs = host.get("effective_acs", 0.0)
    return {
        "footprint": host["footprint_bytes"],
        "connection_sparsity": host["connection_sparsity"],
        "activation_sparsity": 1.0 - per["spikes"] / updates if updates else 0.0,
        "host_activation_sparsity": host.get("activation_sparsity"),
        "synaptic_operations": {"Effective_MACs": host["effective_macs"],
                                "Effective_ACs": per["synops"] + host_acs,
                                "Dense": host["dense_macs"] + chip_dense},
        "per": "sample (one clip), as NeuroBench reports its workload metrics",
        "host_counted_by": counted_by,
        "definitions": {
            "footprint": f"bytes of the PyTorch model's parameters and buffers (Footprint, {counted_by}); "
                         "the chip's synaptic memory is footprint.synaptic_memory_bytes",
            "connection_sparsity": f"zero weights / all weights of the nn.Linear layers (ConnectionSparsity, "
                                   f"{counted_by}; rounded to 4 decimals by it)",
            "activation_sparsity": "1 - spikes / neuron updates of the gate neurons on the chip (lava-sim)",
            "host_activation_sparsity": f"ActivationSparsity ({counted_by}) on the host model: zero outputs "
                                        "of the nn.Sigmoid modules it hooks (the CfC's time interpolation; "
                                        "the gates' sigmoid is functional and not seen)",
            "Effective_MACs": f"host: nn.Linear MACs with a non-zero input and weight (SynapticOperations, "
                              f"{counted_by}, on the golden clips)",
            "Effective_ACs": "chip: synaptic events delivered (per_inference.synops, lava-sim), plus the "
                             f"host's ACs (SynapticOperations: {host_acs:,.0f}, layers fed spikes only)",
            "Dense": "host nn.Linear MACs at dense input (SynapticOperations) + every chip synapse at every "
                     "step of its network"},
        "not_counted": "NeuroBench counts nn.Linear, nn.Conv and RNN cells only (the ncps CfC is not one: it "
                       "is seen as its nn.Linear layers): the CfC's element-wise products, the LayerNorms, "
                       "the pooling and the softmax are in neither count"}


def estimate(arrays: dict[str, Any], activity: dict[str, Activity], tokens: int,
             host_flops_per_token: float, per_step: dict[str, float] | None = None, unit: str = "token",
             host: dict[str, Any] | None = None) -> dict[str, Any]:
    """resources.json: footprint, per-token (per-inference) counts, exchanges and board latency (this
    design and, if measured, the per-step one), energy, host comparison, every constant sourced;
    with ``host`` (an audio bundle's host operations) the NeuroBench-named figures too."""
    tok = per_token(activity, tokens)
    foot = chip_footprint(arrays)
    per_path = {k: v.as_dict() for k, v in activity.items()}
    out = {"footprint": foot, f"per_{unit}": tok, UNITS[unit][1]: tokens,
           "per_path": per_path,
           f"energy_per_{unit}": energy_per_token(tok, unit), "board": board_estimate(tok, unit),
           f"host_gate_flops_per_{unit}": host_flops_per_token,
           "host_gate_flops_definition": f"{HOST_GATE_FLOPS_PER_VALUE} FLOPs per gated value "
                                         "(k(p - theta) 2, sigmoid 3, leak blend 2, product 1)",
           "constants": CONSTANTS, "exchange_anchors": EXCHANGE_ANCHORS}
    if host is not None:
        out["neurobench"] = neurobench(tok, foot, per_path, tokens, host)
    if per_step is not None:
        out["per_step_design"] = {f"per_{unit}": per_step, "board": board_estimate(per_step, unit),
                                  f"energy_per_{unit}": energy_per_token(per_step, unit)}
    return out


def unit_of(res: dict[str, Any]) -> str:
    """What a resources.json counts per: "inference" (an audio bundle) or "token"."""
    return "inference" if "per_inference" in res else "token"


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e3:,.1f} ms"


def _rate(x: float | None) -> str:
    """A rate per second; "-" where nothing is exchanged or stepped (every gate host-constant)."""
    return "-" if x is None else f"{x:.3g}"


def board_table(res: dict[str, Any]) -> str:
    """Latency and energy per token (inference) on a board, both designs, every anchor (the
    bundle's README)."""
    unit = unit_of(res)
    step, plural = UNITS[unit]
    names = {"chip-side": "chip-side window", "per-step": "per-step network"}
    built = sorted({names[g["design"]] for g in res["footprint"]["groups"].values()})
    designs = [(" + ".join(built) + " (this bundle)", res[f"per_{unit}"], res["board"])]
    if "per_step_design" in res:
        ps = res["per_step_design"]
        designs.append(("per-step network", ps[f"per_{unit}"], ps["board"]))
    rows = [f"| design | exchanges / {unit} | values to chip / from chip | chip steps / {unit} | anchor | "
            f"latency / {unit} (batch 1) | {plural}/s batch 1 / batch 8 | static energy / {unit} |",
            "|---|---|---|---|---|---|---|---|"]
    for label, tok, board in designs:
        for name, anchor in EXCHANGE_ANCHORS.items():
            b1, b8 = board["batch_1"][name], board["batch_8"][name]
            mark = " (closest)" if name == CLOSEST_ANCHOR else ""
            values = f"{_fmt(tok.get('to_chip_values', 0))} / {_fmt(tok.get('from_chip_values', 0))}"
            rows.append(f"| {label} | {_fmt(board[f'exchanges_per_{unit}'])} | {values} | "
                        f"{_fmt(tok['steps'])} | "
                        f"{name}{mark}: {anchor['value'] * 1e3:.3g} ms | {_ms(b1[f'seconds_per_{step}'])} | "
                        f"{_rate(b1[f'{plural}_per_s'])} / {_rate(b8[f'{plural}_per_s'])} | "
                        f"{b1[f'static_J_per_{step}'] * 1e3:.3g} mJ |")
    return "\n".join(rows)


def markdown(res: dict[str, Any]) -> str:
    """The resource and energy section of the bundle's README (per token, or per inference)."""
    u = unit_of(res)
    f, t, e = res["footprint"], res[f"per_{u}"], res[f"energy_per_{u}"]
    rows = [
        "| quantity | value | Loihi 2 limit / source |",
        "|---|---|---|",
        f"| neurons | {f['neurons']:,} | {f['chip_fraction']['neurons']:.2%} of 1 M per chip |",
        f"| synapses | {f['synapses']:,} | {f['chip_fraction']['synapses']:.3%} of 120 M per chip |",
        f"| synaptic memory | {f['synaptic_memory_bytes'] / 1024:,.0f} KiB | 4 B/synapse (assumption), "
        "128 KiB per core |",
        f"| neuro cores | {f['cores']} (neurons: {f['cores_by_neurons']}, memory: "
        f"{f['cores_by_synaptic_memory']}) | of 128 per chip; 8,192 neurons per core |",
        f"| Lava steps per {u} | {_fmt(t['steps'])} | measured (lava-sim) |",
        f"| synaptic operations per {u} | {_fmt(t['synops'])} | measured (lava-sim) |",
        f"| neuron updates per {u} | {_fmt(t['neuron_updates'])} | measured (lava-sim) |",
        f"| spikes per {u} | {_fmt(t['spikes'])} | measured (lava-sim) |",
        f"| dynamic energy per {u} | <= {_fmt(e['dynamic_upper_bound_J'] * 1e6)} uJ | upper bound, "
        "Loihi 1 per-op energies (Davies 2018) |",
        f"| host<->chip messages per {u} | {_fmt(t.get('to_chip_messages', 0))} to the chip, "
        f"{_fmt(t.get('from_chip_messages', 0))} back ({_fmt(t.get('to_chip_bytes', 0))} B / "
        f"{_fmt(t.get('from_chip_bytes', 0))} B) | counted at the bridge processes (lava-sim) |",
        f"| static energy per {u} | {_fmt(e['static_J'] * 1e6)} uJ | 0.232 W (Loihi 2, measured) x the "
        "board time below (Kapoho Point anchor): estimate |",
        f"| host FLOPs of the same gates per {u} | {_fmt(res[f'host_gate_flops_per_{u}'])} | "
        f"{res['host_gate_flops_definition']} |",
    ]
    rows += neurobench_rows(res)
    intro = (f"Per {u} on a board (seconds = exchanges x cost per exchange + chip steps x 153 us; sources "
             "in `resources.json`, `exchange_anchors`):")
    return "\n".join(rows) + "\n\n" + intro + "\n\n" + board_table(res)


def _host_sparsity(x: float | None) -> str:
    return "no activation module hooked" if x is None else f"{x:.3f} (the CfC's nn.Sigmoid modules)"


def neurobench_rows(res: dict[str, Any]) -> list[str]:
    """The README rows of the NeuroBench-named figures (an audio bundle's; none for text)."""
    nb = res.get("neurobench")
    if nb is None:
        return []
    ops = nb["synaptic_operations"]
    return [
        f"| NeuroBench footprint | {nb['footprint']:,} B | parameters and buffers of the model "
        f"({nb.get('host_counted_by', 'NeuroBench rules')}) |",
        f"| NeuroBench connection sparsity | {nb['connection_sparsity']:.3f} | zero weights of nn.Linear |",
        f"| NeuroBench activation sparsity | {nb['activation_sparsity']:.3f} | gate neuron updates without a "
        f"spike (lava-sim); its own class on the host: "
        f"{_host_sparsity(nb.get('host_activation_sparsity'))} |",
        "| NeuroBench synaptic operations per inference | "
        f"Effective_MACs {_fmt(ops['Effective_MACs'])} (host), Effective_ACs {_fmt(ops['Effective_ACs'])} "
        f"(chip), Dense {_fmt(ops['Dense'])} | "
        "`resources.json` `neurobench.definitions` |",
    ]
