# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A hybrid run on Lava: attention in PyTorch, gates as spiking neurons
#
# In a hybrid deployment the dense parts of the model (embeddings, Q/K/V, the softmax, the
# MLPs) stay on the host in PyTorch, and every learned LIF gate runs as spiking neurons. Here
# the neurons run in **Lava's bit-accurate Loihi 2 simulator** (`lava-sim`: Lava's
# `Loihi2SimCfg` with fixed-point process models), the same process graph that would run on
# a board.
#
# The plan:
#
# 1. the float model's greedy text: the reference;
# 2. the same prompt with the gates on the **emulator**, ember-neuro's vectorised copy of the
#    Loihi 2 arithmetic;
# 3. the same prompt on **Lava**, streamed token by token;
# 4. what the run reports: host↔chip exchanges per token, Lava steps, spikes per layer;
# 5. the per-step network for comparison, and a check that Lava stopped cleanly.
#
# The window is pinned (`timesteps`, `neurons_per_gate`, `levels`), so no window search runs
# and the result is reproducible. A small window keeps Lava quick. The first cell prints the
# command-line version of the Lava run.

# %%
# ruff: noqa: E402 -- the imports follow the warnings filter
import warnings

# tqdm's notebook progress bar needs ipywidgets; nothing here draws one, so its import warning is noise
warnings.filterwarnings("ignore", message="IProgress not found")

import json
import time
from pathlib import Path

import psutil

import ember_neuro
from ember_neuro.hybrid.session import Deployment, Generation, run_hybrid

CKPT = str(Path(ember_neuro.__file__).parent / "checkpoints" / "lif-learnable-strong.pt")
WINDOW = {"timesteps": 4, "neurons_per_gate": 4, "levels": "auto"}
TIMEOUT_S = 60.0  # a Lava run that stalls this long is stopped, and the run fails (exit 4 on the CLI)
GREEDY = Generation(prompts=("ROMEO:",), tokens=24, temperature=0.0)  # temperature 0: greedy
print(f"python -m ember_neuro.run {CKPT} --backend lava-sim -T {WINDOW['timesteps']} "
      f"-N {WINDOW['neurons_per_gate']} --levels {WINDOW['levels']} --greedy --tokens {GREEDY.tokens} "
      f"--prompt {GREEDY.prompts[0]!r} --timeout {TIMEOUT_S:g} --json")

# %% [markdown]
# ## 1. The float model
#
# Backend `float` runs the trained sigmoid itself: no neurons, no mapping. Greedy decoding
# always takes the most likely next character, so the text is a deterministic function of
# the gate values, and any change in a gate that flips a prediction shows up in it.

# %%
ref = run_hybrid(Deployment(CKPT, backend="float"), gen=GREEDY)
print(repr(GREEDY.prompts[0] + ref["text"]))

# %% [markdown]
# ## 2. The emulator
#
# The same model with every gate rate-coded at the pinned window, computed by the emulator.
# It counts each gate's spikes without stepping through time
# ([mapping §9](../mapping.md#9-counting-without-stepping)), so it is fast; it is bit-exact
# with Lava's fixed point, which is what makes it a useful stand-in for sweeps.

# %%
emu = run_hybrid(Deployment(CKPT, backend="emulator", timeout=TIMEOUT_S, **WINDOW), gen=GREEDY)
print(repr(GREEDY.prompts[0] + emu["text"]))

# %% [markdown]
# ## 3. Lava
#
# Now the gates run in Lava. Each gated layer gets its own network of Lava processes, started
# once for the run: with the default **chip-side window** a token costs one message to the
# neurons and one back per gated layer
# ([mapping §10](../mapping.md#10-the-chip-side-window-one-exchange-each-way-per-gated-layer-and-token)).
# Lava runs its processes in child processes of this kernel. `Deployment.timeout` bounds
# every exchange, and the run stops them all when it ends, also on an error.
#
# (`run_hybrid(..., stream=sys.stdout)` would print each token as it comes back, as the
# command line does; here the text is printed once at the end.)

# %%
before = {p.pid for p in psutil.Process().children(recursive=True)}
lava = run_hybrid(Deployment(CKPT, backend="lava-sim", timeout=TIMEOUT_S, **WINDOW), gen=GREEDY)
print(repr(GREEDY.prompts[0] + lava["text"]))
print(f"Lava start-up {lava['startup_seconds']:.2f} s, whole run {lava['seconds']:.2f} s, "
      f"{lava['tokens_per_s']:.1f} tokens/s")

# %%
texts = {"float": ref["text"], "emulator": emu["text"], "lava-sim": lava["text"]}
for name, text in texts.items():
    print(f"{name:>9}: {text!r}")
first_diff = next((i for i, (a, b) in enumerate(zip(ref["text"], lava["text"], strict=True)) if a != b), None)
print(f"\nlava-sim == emulator: {lava['text'] == emu['text']}")
where = f"all {GREEDY.tokens} tokens" if first_diff is None else f"first difference at token {first_diff}"
print(f"lava-sim == float:    {lava['text'] == ref['text']} ({where})")
assert lava["text"] == emu["text"], "Lava and the emulator are twins: their spikes, and so their text, agree"

# %% [markdown]
# Lava and the emulator must agree token for token: they compute the same integer arithmetic,
# and the cell above fails if they do not. Whether the spiking text equals the float text
# depends on the window. Greedy decoding flips wherever the two most likely characters are
# close, so a small window may diverge after a while even though almost every prediction
# agrees (tutorial 01 measures that agreement on validation text).
#
# ## 4. What the run reports
#
# `run_hybrid` returns one record, the one `python -m ember_neuro.run --json` prints. Its
# gate-side fields:

# %%
keys = ("backend", "variant", "timesteps", "neurons_per_gate", "levels", "decode", "tokens", "tokens_per_s",
        "designs", "lava_steps", "lava_steps_per_s", "saturated_inputs", "startup_seconds", "seconds")
print(json.dumps({k: lava[k] for k in keys}, indent=1))

# %% [markdown]
# * `designs`: which Lava network ran. `chip-side` evaluates a gate value's N·T levels at
#   once and sums its spike count on the neurons' side, so only the count crosses back.
# * `lava_steps`: simulator steps over the whole run, for every layer's network.
# * `saturated_inputs`: host values beyond what the fixed-point payload can carry (clipped).
#
# `exchanges_per_token` divides what crossed each network's bridge by the forward passes it
# served (one per generated token; the first one also reads the prompt). A *message* is one
# step in which the bridge sends (or receives) a non-zero vector; *values* are the gate
# values in it, each a 24-bit graded spike (3 bytes).

# %%
per_token = lava["exchanges_per_token"]
print(f"{'network':>14} {'msgs in':>8} {'msgs out':>9} {'values in':>10} {'values out':>11} {'steps':>7}")
for name, ex in {**per_token["per_network"], "total": per_token["total"]}.items():
    print(f"{name:>14} {ex['to_chip_messages']:8.2f} {ex['from_chip_messages']:9.2f} "
          f"{ex['to_chip_values']:10.1f} {ex['from_chip_values']:11.1f} {ex['steps']:7.2f}")

total = lava["exchanges"]["total"]
print(f"\nwhole run: {total['to_chip_messages']} messages to the neurons ({total['to_chip_bytes']:,} B), "
      f"{total['from_chip_messages']} back ({total['from_chip_bytes']:,} B), {total['steps']} Lava steps")

# %% [markdown]
# `spike_stats` is per gated layer: how many gate values were evaluated, how many fired at
# all (`fire > 0`), and `spikes`, the decoded fires times N·T, summed. With `uniform` levels
# that is the spike count itself. With `auto` levels, which are not evenly spaced, a count of
# n decodes to a fire other than n/(NT), so `spikes` is a rate-equivalent figure rather than
# a count.

# %%
print(f"{'layer':>5} {'gate values':>11} {'fired':>7} {'spikes':>9} {'spikes/token':>12}")
for layer, st in lava["spike_stats"].items():
    print(f"{layer:>5} {st['gates']:11,} {st['firing'] / st['gates']:7.1%} {st['spikes']:9.0f} "
          f"{st['spikes'] / GREEDY.tokens:12.1f}")

# %% [markdown]
# ## 5. The per-step network, and a clean stop
#
# Before the chip-side window, the host fed every step of a window: the payload and one
# dither row per step in, one spike raster per step back, so 2·T messages per gated layer and
# token instead of 2. On a board each exchange costs milliseconds while a chip step costs a
# fraction of one, so the message count is what sets the latency there. `bridge="per-step"`
# runs that network for comparison; its text must be the same.

# %%
step = run_hybrid(Deployment(CKPT, backend="lava-sim", timeout=TIMEOUT_S, bridge="per-step", **WINDOW),
                  gen=GREEDY)
print(f"same text as chip-side: {step['text'] == lava['text']}")
print(f"{'network':>10} {'messages/token (in + out)':>26} {'values/token (in + out)':>24} {'Lava steps':>11}")
for name, r in (("chip-side", lava), ("per-step", step)):
    t = r["exchanges_per_token"]["total"]
    print(f"{name:>10} {t['to_chip_messages'] + t['from_chip_messages']:26.1f} "
          f"{t['to_chip_values'] + t['from_chip_values']:24.1f} {r['lava_steps']:11,}")
assert step["text"] == lava["text"]

# %% [markdown]
# Every run above started Lava's processes as children of this kernel and stopped them when
# it ended. What may remain is Python's own `multiprocessing` resource tracker, a helper that
# Lava's shared memory starts once and that exits with the Python process. Anything else
# still running would be a leak:

# %%
time.sleep(0.5)  # give exiting children a moment to be reaped
left = [p for p in psutil.Process().children(recursive=True)
        if p.pid not in before and p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
helpers = [p for p in left if "resource_tracker" in " ".join(p.cmdline())]
others = [p for p in left if p not in helpers]
print(f"child processes left: {len(left)} ({len(helpers)} resource tracker, {len(others)} other)")
for p in others:
    print("  left running:", p.pid, " ".join(p.cmdline()))
assert not others, "a Lava process outlived its run"

# %% [markdown]
# ## Summary
#
# * `run_hybrid(Deployment(ckpt, backend=..., timesteps=T, neurons_per_gate=N, levels=L,
#   timeout=s), gen=Generation(...))` runs the model with every gate on the backend; it is
#   what `python -m ember_neuro.run` calls.
# * The emulator and `lava-sim` are twins: same spikes, same text. The emulator is the fast
#   way to explore windows; Lava is the process graph a chip would run.
# * The record counts what crosses between host and neurons. The chip-side window needs one
#   message each way per gated layer and token, the per-step network 2·T.
# * Tutorial 03 packs this same deployment into a bundle that runs without torch.
