"""The chip-side window: one step per window, one message each way, the same spike counts.

The breadth runs on the numpy statement of the network (backends/chip_window.simulate) against
the numpy reference's T-step counts -- every rate gate kind, level set and window; a focused set
of real Lava runs checks that Lava's own processes compute that statement bit for bit and that
the bridge counts one message each way per window.
"""

from __future__ import annotations

import numpy as np
import pytest

from ember_neuro.backends import chip_window as cw
from ember_neuro.backends import numpy_ref
from ember_neuro.kinds import registry as kinds
from ember_neuro.kinds.membrane import PREFIX as MEMBRANE
from ember_neuro.mappers import MappingOptions, gate_counts

from ..helpers import attention_params, cfc_params, make_array

pytestmark = pytest.mark.torchfree

VARIANTS = {  # variant -> (params, calibration)
    "lif-learnable": (attention_params(2, 3, seed=1), None),
    "lif-refractory": (attention_params(2, 3, refractory=True, seed=2), None),
    "cfc-lif": (cfc_params(2, 5, seed=3), {"hidden_scale": [2.0, 4.0]}),
    "temporal-lif": ({**attention_params(2, 3, seed=4),
                      **{MEMBRANE.format(layer=i) + k: np.array([v]) for i in range(2)
                         for k, v in (("decay", 1.0), ("threshold", 0.0), ("steepness", 1.5))}},
                     {"membrane_scale": [2.0, 3.0], "importance_scale": 5.0}),
}
WINDOWS = [(1, 16, "uniform"), (3, 5, "log"), (8, 4, "auto"), (16, 2, "uniform"), (32, 1, "log")]


def rate_groups(variant: str, t: int, n: int, levels: str):
    params, cal = VARIANTS[variant]
    groups = kinds.map_variant(variant, params, 2, MappingOptions(timesteps=t, neurons_per_gate=n,
                                                                  levels=levels), cal)
    return [g for g in groups.values() if not g.carries_state]


def windows_of(group, rng: np.random.Generator, lanes: int = 4, windows: int = 5):
    """A layout of every unit with `lanes` lanes, random payloads over (and past) the input range,
    random live lanes."""
    ui = np.repeat(np.arange(len(group.units)), lanes)
    array = group.layout(ui, True)
    scale = {src: group.fixed_params.connection(src).scale for src in group.fixed_params.host_sources}
    payload = []
    for _ in range(windows):
        vals = {src: rng.uniform(0, 1.3, ui.size) * (1 if s is None else np.asarray(s)[ui])
                for src, s in scale.items()}
        vals["input"][rng.random(ui.size) < 0.2] = 0.0  # live values whose payload is 0 need the flag
        payload.append(group.encode(vals, True, ui))
    live = rng.random((windows, ui.size)) < 0.7
    return array, np.stack(payload), live


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize(("t", "n", "levels"), WINDOWS)
def test_counts_equal_the_per_step_reference(variant, t, n, levels) -> None:
    rng = np.random.default_rng(t * 100 + n)
    for group in rate_groups(variant, t, n, levels):
        array, payload, live = windows_of(group, rng)
        win = cw.chip_window(array)
        reference = gate_counts(numpy_ref.simulate(array, payload)[0].sum(axis=1), n)
        answers = cw.simulate(win, cw.encode(win, payload, live))
        assert np.array_equal(cw.decode(win, answers, live), np.where(live, reference, 0)), group.name
        # one graded value per live gate value comes back, nothing for an idle lane
        assert np.array_equal(answers != 0, live)
        assert win.size == array.n_inputs * (n * t + win.flags_per_lane)


def test_the_message_carries_one_value_per_live_lane_of_a_one_input_gate() -> None:
    group = rate_groups("lif-learnable", 8, 4, "uniform")[0]
    array, payload, live = windows_of(group, np.random.default_rng(0))
    win = cw.chip_window(array)
    message = cw.encode(win, payload, live)
    assert message.shape[1] == win.message_width == array.payload_width + array.n_inputs
    # a live lane sends its payload, or (payload too small to raise its flag neurons) the flag
    first, flag = message[:, :array.n_inputs], message[:, array.n_inputs:]
    assert np.array_equal((first != 0) | (flag != 0), live)
    assert not np.any(message[:, :array.n_inputs][~live]) and not np.any(flag[~live])


def test_a_wrong_answer_is_an_error_never_a_silent_zero() -> None:
    group = rate_groups("lif-learnable", 8, 4, "uniform")[0]
    array, payload, live = windows_of(group, np.random.default_rng(1))
    win = cw.chip_window(array)
    answers = cw.simulate(win, cw.encode(win, payload, live))
    w, i = np.argwhere(live)[0]
    silent = answers.copy()
    silent[w, i] = 0
    with pytest.raises(cw.ChipWindowError, match="a live lane did not answer"):
        cw.decode(win, silent, live)
    w, i = np.argwhere(~live)[0]
    stray = answers.copy()
    stray[w, i] = win.flag_value
    with pytest.raises(cw.ChipWindowError, match="an idle lane answered"):
        cw.decode(win, stray, live)


def test_arrays_it_cannot_reproduce_are_refused_with_the_reason() -> None:
    groups = kinds.map_variant("temporal-lif", *VARIANTS["temporal-lif"][:1], 2,
                               MappingOptions(timesteps=8, neurons_per_gate=1),
                               VARIANTS["temporal-lif"][1])
    hard = next(g for g in groups.values() if g.carries_state)
    with pytest.raises(cw.ChipWindowError, match="carries across windows"):
        cw.chip_window(hard.layout(np.zeros(4, np.int64), True))
    group = rate_groups("lif-learnable", 8, 2, "uniform")[0]
    with pytest.raises(cw.ChipWindowError, match="fixed point only"):
        cw.chip_window(group.layout(np.arange(3), False))
    fixed = group.layout(np.arange(3), True)
    dither = fixed.synapses[1]
    rising = make_array(True, 8, 2, fixed.unit_index, [("input", fixed.synapses[0].weight, -8)],
                        [("dither", dither.weight, dither.weight_exp, np.asarray(dither.table)[::-1])],
                        fixed.bias_mant, fixed.bias_exp, fixed.du, fixed.dv, fixed.vth)
    with pytest.raises(cw.ChipWindowError, match="not ascending"):
        cw.chip_window(rising)


def test_flag_arithmetic() -> None:
    # the smallest flag that raises a flag neuron through wshift(254 f, e)
    assert cw.flag_payload(254, -8) == 2 and cw.flag_payload(254, -7) == 1 and cw.flag_payload(254, 0) == 1
    for f in (2, 255, 256, 257, 4097):
        w = cw.flag_weights(f)
        assert w.sum() == f and w.max() <= 255 and len(w) == -(-f // 255)


@pytest.mark.lava
@pytest.mark.parametrize(("variant", "t", "n", "levels"), [("lif-learnable", 8, 4, "auto"),
                                                           ("lif-refractory", 3, 5, "log"),
                                                           ("cfc-lif", 1, 16, "uniform")])
def test_lava_answers_the_reference_counts_once_per_window(variant, t, n, levels) -> None:
    from ember_neuro.backends.lava import ChipWindowRunner

    rng = np.random.default_rng(7)
    group = rate_groups(variant, t, n, levels)[0]
    array, payload, live = windows_of(group, rng, windows=6)
    reference = np.where(live, gate_counts(numpy_ref.simulate(array, payload)[0].sum(axis=1), n), 0)
    with ChipWindowRunner(array, timeout_s=60) as runner:
        first = runner.run_counts(payload[:4], live[:4])  # pipelined
        after = dict(runner.exchanges)
        second = runner.run_counts(payload[4:], live[4:])
        crossed = runner.exchanges
    assert np.array_equal(np.concatenate([first, second]), reference)
    # counted at the bridge: one message each way per window, one value per live lane back
    assert after["to_chip_messages"] == after["from_chip_messages"] == 4
    assert crossed["to_chip_messages"] == crossed["from_chip_messages"] == 6
    live_values = int(live.sum())
    assert crossed["from_chip_values"] == live_values and crossed["from_chip_bytes"] == 3 * live_values
    assert crossed["setup_values"] == int(np.count_nonzero(cw.chip_window(array).dither_values))


@pytest.mark.lava
def test_the_per_step_bridge_counts_every_step() -> None:
    from ember_neuro.backends.lava import LavaGateRunner

    group = rate_groups("lif-learnable", 8, 2, "uniform")[0]
    array, payload, _ = windows_of(group, np.random.default_rng(3), windows=3)
    with LavaGateRunner(array, timeout_s=60) as runner:
        rasters = runner.run_windows(payload)
        crossed = runner.exchanges
    assert crossed["to_chip_messages"] == 3 * 8  # the payload and a dither row at every step
    # every window step with a spike is a message back; so may be the pipeline-fill step before the
    # first window (neurons whose bias alone fires them), which no raster holds
    fill = crossed["from_chip_messages"] - int(rasters.any(axis=2).sum())
    assert fill in (0, 1) and crossed["from_chip_values"] >= int(rasters.sum())


@pytest.mark.lava
def test_open_builds_the_chip_side_window_where_it_is_exact_and_says_why_not_elsewhere() -> None:
    from ember_neuro.backends import lava

    group = rate_groups("lif-learnable", 4, 2, "uniform")[0]
    with lava.open(group.layout(np.arange(3), True), 60) as runner:
        assert runner.design == "chip-side"
    with lava.open(group.layout(np.arange(3), False), 60) as runner:
        assert runner.design == "per-step" and "fixed point only" in runner.why_per_step
    with lava.open(group.layout(np.arange(3), True), 60, bridge="per-step") as runner:
        assert runner.design == "per-step" and "asked for" in runner.why_per_step
    with pytest.raises(ValueError, match="unknown bridge"):
        lava.open(group.layout(np.arange(3), True), 60, bridge="sideways")
    one_step = rate_groups("lif-learnable", 1, 8, "uniform")[0].layout(np.arange(3), True)
    with lava.open(one_step, 60) as runner:  # T = 1: the per-step network is one step per window too
        assert runner.design == "per-step" and "T = 1" in runner.why_per_step
    with lava.open(one_step, 60, bridge="chip-side") as runner:
        assert runner.design == "chip-side"


def test_the_activity_counts_the_spikes_that_never_cross() -> None:
    """Idle lanes fire on chip as at input 0 (in a window, and at the steps without a message): the
    activity behind the energy estimate must count them, as a full simulation of the steps does."""
    from ember_neuro.hybrid.golden import chip_window_activity

    group = rate_groups("lif-learnable", 8, 4, "uniform")[0]
    array, payload, live = windows_of(group, np.random.default_rng(2), windows=3)
    win = cw.chip_window(array)
    steps = 3 + cw.ANSWER_STEPS
    counts = cw.decode(win, cw.simulate(win, cw.encode(win, payload, live)), live)
    act = chip_window_activity(win, payload, counts, live, {"steps": steps})
    silent = np.zeros((steps - 3, win.message_width), np.int64)  # the steps without a message
    messages = np.concatenate([cw.encode(win, payload, live), silent])
    assert act.spikes == int(cw.level_spikes(win, messages).sum()) and act.steps == steps
