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
# # The INRC bundle: a deployment someone else can check
#
# Loihi 2 boards are reached through Intel's **Neuromorphic Research Community** (INRC).
# There the hardware backend of Lava (Intel's `lava-loihi` extension) is available, and
# Python is 3.10. A reviewer on that system should not need ember-neuro, torch or this
# repository to run the model and convince themselves it is the one that was measured here.
#
# `python -m ember_neuro.export inrc CKPT --out DIR` makes that self-contained folder:
#
# * the **saved mapping** of every gate (`model/mapped.npz`) and the **host part** of the
#   model as ONNX graphs cut at the gates (run by onnxruntime, no torch);
# * **golden traces**: every window the gate network was sent during a recorded greedy
#   generation, and the spike counts Lava answered;
# * `verify.py`, which rebuilds the gate network in Lava from the mapping, replays the
#   golden windows and demands the same spikes bit for bit (`--hw` does it on a Loihi 2
#   board); `generate.py`, which generates text with the bundle alone;
# * `requirements.txt` (Python 3.10: numpy, lava-nc and its pins, onnxruntime),
#   `resources.json` (neurons, cores, messages, energy estimates), `SHA256SUMS`, and a
#   reviewer README.
#
# This tutorial builds a small bundle in a temporary folder, looks inside and runs its
# `verify.py`. The README's [INRC bundle](../../README.md#the-inrc-bundle) section has the
# numbers of a full-size bundle.

# %%
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import ember_neuro

CKPT = Path(ember_neuro.__file__).parent / "checkpoints" / "lif-learnable-strong.pt"
TEMP = tempfile.TemporaryDirectory(prefix="ember-inrc-")  # removed at the end, or when the kernel exits
WORK = Path(TEMP.name)
BUNDLE = WORK / "bundle"
TIMEOUT_S = 60  # Lava's own timeout inside each command; the subprocesses get a wider one


def run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """A command in its own process group, with a timeout that stops the whole group (Lava's
    processes too); stderr (the command's progress) is shown."""
    proc = subprocess.Popen(cmd, cwd=cwd, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    if err.strip():
        print(err.strip())
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


# %% [markdown]
# ## 1. Build it
#
# The window is pinned with `-T` and `-N` so no window search runs. (Without them the export
# chooses the same window `map` and `run` would, on calibration text; see the README's
# [first command](../../README.md#the-first-command).) `--no-report` skips the `validate`
# report, the slowest part of a full bundle, and `--tokens` keeps the golden recording
# short. A bundle for submission would keep both.

# %%
cmd = [sys.executable, "-m", "ember_neuro.export", "inrc", str(CKPT), "--out", str(BUNDLE),
       "-T", "4", "-N", "4", "--levels", "auto", "--tokens", "8", "--no-report",
       "--timeout", str(TIMEOUT_S), "--json"]
print("$ python -m ember_neuro.export inrc", " ".join(cmd[4:]))
r = run(cmd, cwd=WORK)
assert r.returncode == 0, f"export failed with exit status {r.returncode}"
summary = json.loads(r.stdout)
print(f"\n{summary['files']} files, {summary['bytes'] / 1e6:.2f} MB, in {summary['seconds']:.1f} s")

# %% [markdown]
# ## 2. What is in it

# %%
by_folder: dict[str, list[tuple[str, int]]] = {}
for p in sorted(BUNDLE.rglob("*")):
    if p.is_file():
        rel = p.relative_to(BUNDLE)
        folder = str(rel.parent) if len(rel.parts) < 3 else "/".join(rel.parts[:2])
        by_folder.setdefault(folder, []).append((str(rel), p.stat().st_size))
for folder, files in by_folder.items():
    size = sum(s for _, s in files)
    if len(files) <= 8:
        for name, s in files:
            print(f"{s:>10,}  {name}")
    else:
        print(f"{size:>10,}  {folder}/  ({len(files)} files)")

# %% [markdown]
# * `model/`: the mapping (`mapped.npz`, its schema in [the saved format](../mapped-format.md)),
#   the ONNX host stages (the host part of the model, cut at the gates) and the vocabulary.
# * `golden/`: the recorded windows and Lava's answers (`golden.npz`), and how they were
#   recorded (`golden.json`).
# * `lib/ember_neuro/`: the torch-free part of ember-neuro that `verify.py` and `generate.py`
#   import (the mappers, the numpy reference, the Lava runner and its processes), copied so
#   the bundle does not depend on the package.
#
# `bundle.json` says what the bundle holds: the window, the level set, which Lava network
# (`bridge`), the checkpoint's SHA-256, and how closely the ONNX graphs match PyTorch.

# %%
bundle = json.loads((BUNDLE / "bundle.json").read_text())
print(json.dumps(bundle, indent=1))
golden_info = json.loads((BUNDLE / "golden" / "golden.json").read_text())
print(f"\ngolden recording: prompt {golden_info['prompt']!r} -> greedy {golden_info['greedy_text']!r}; "
      f"windows per network: {golden_info['windows']}")

# %% [markdown]
# ## 3. Resources
#
# `resources.json` counts what the gate network costs on Loihi 2. The footprint (neurons,
# synapses, cores) comes from the layout that is deployed. The activity per generated token
# (steps, synaptic operations, spikes, messages) is measured during the recorded generation
# on Lava's bit-accurate simulator. Energy and board latency are **estimates**, each
# constant with its source in the file (`constants`, `exchange_anchors`).

# %%
res = json.loads((BUNDLE / "resources.json").read_text())
fp, tok = res["footprint"], res["per_token"]
print(f"footprint: {fp['neurons']:,} neurons, {fp['synapses']:,} synapses, {fp['cores']} neuro cores "
      f"({fp['chip_fraction']['neurons']:.2%} of one chip's neurons); fits one chip: {fp['fits_one_chip']}")
print(f"per token: {tok['steps']:g} chip steps, {tok['synops']:,.0f} synaptic ops, {tok['spikes']:,.0f} "
      f"spikes, {tok['to_chip_messages']:g} messages to the chip and {tok['from_chip_messages']:g} back")
e = res["energy_per_token"]
print(f"energy per token: dynamic <= {e['dynamic_upper_bound_J'] * 1e6:.2f} uJ ({e['dynamic_label']})")
print(f"                  static {e['static_J'] * 1e3:.2f} mJ ({e['static_label']})")
board = res["board"]
print(f"\nboard latency model: {board['model']}")
for anchor, b in board["batch_1"].items():
    print(f"  {anchor:>26}: {b['seconds_per_step'] * 1e3:7.1f} ms per token, "
          f"{b['tokens_per_s']:7.1f} tokens/s")
step_board = res["per_step_design"]["board"]
print(f"the per-step network instead: {step_board['exchanges_per_token']:.1f} exchanges per token against "
      f"{board['exchanges_per_token']:g}")

# %% [markdown]
# On a board the host↔chip exchanges dominate a token's time: a chip step is fast, an
# exchange with a host process is not. That is why the bundle records the chip-side window
# (one message each way per gated layer and token) and prices the per-step network beside it.
#
# ## 4. Verify
#
# `verify.py` is what a reviewer runs first. It checks every file against `SHA256SUMS`,
# rebuilds the gate network in Lava from `model/mapped.npz`, feeds it the recorded windows in
# order, and compares every spike count with the golden trace; it does the same on a numpy
# reference of the arithmetic. On INRC, `verify.py --hw` replays them on a Loihi 2 chip.
#
# Here it runs the way it would there: in its own Python process from the bundle's folder,
# with torch made unimportable (on INRC it is not installed), and with a timeout.

# %%
NO_TORCH = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
v = run([sys.executable, "-c", NO_TORCH, "verify.py"], cwd=BUNDLE, timeout=180)
print(v.stdout)
print(f"exit status {v.returncode}")
assert v.returncode == 0, "verify.py: the spikes differ from the golden trace, or Lava failed"

# %% [markdown]
# A changed file is caught before anything runs: a copy of the bundle with one byte of the
# mapping altered is refused with exit status 2, naming the file.

# %%
damaged = WORK / "damaged"
shutil.copytree(BUNDLE, damaged)
data = bytearray((damaged / "model" / "mapped.npz").read_bytes())
data[len(data) // 2] ^= 0xFF
(damaged / "model" / "mapped.npz").write_bytes(bytes(data))
d = run([sys.executable, "-c", NO_TORCH, "verify.py"], cwd=damaged, timeout=60)
print(f"exit status {d.returncode}")
assert d.returncode == 2

# %% [markdown]
# ## 5. Generate from the bundle
#
# `generate.py` runs the whole model from the bundle: the ONNX stages in onnxruntime, the
# gates in Lava. With `--greedy` its tokens equal those of `python -m ember_neuro.run
# --backend lava-sim --greedy` at the bundle's window. Fed the golden recording's own prompt,
# it must reproduce the recorded greedy text.

# %%
g = run([sys.executable, "-c", NO_TORCH, "generate.py", "--prompt", golden_info["prompt"],
         "--tokens", str(len(golden_info["greedy_text"])), "--greedy", "--timeout", str(TIMEOUT_S), "--json"],
        cwd=BUNDLE, timeout=180)
assert g.returncode == 0, f"generate.py failed with exit status {g.returncode}"
generated = json.loads(g.stdout)
print(f"generate.py: {generated['text']!r}; recorded: {golden_info['greedy_text']!r}; "
      f"equal: {generated['text'] == golden_info['greedy_text']}")
assert generated["text"] == golden_info["greedy_text"]

# %% [markdown]
# ## 6. What INRC needs, and what cannot be checked here
#
# * **Python 3.10 and only the bundle's requirements.** On the INRC system:
#   `python3.10 -m venv .venv && .venv/bin/pip install -r requirements.txt`, then
#   `.venv/bin/python verify.py` and `generate.py`. `make test-bundle` does exactly that here,
#   in a fresh 3.10 venv, from the shipped checkpoint.
# * **`verify.py --hw`** needs Intel's `lava-loihi` extension, which comes only through
#   INRC; with it, the replay runs on the chip and reads Lava's Loihi 2 profiler loggers
#   (power, execution time, activity, memory). Without it the script says so and stops with
#   exit status 3, as it does here (the next cell).
# * **What only a board can settle:** the energy and latency figures above are estimates
#   from published anchors, and `resources.json` names each source. The spike counts, and
#   so the text, are what Lava's bit-accurate simulation says the chip computes.
# * Lava itself is archived upstream. `requirements.txt` pins lava-nc and every dependency,
#   so the environment can still be rebuilt.
#
# The temporary folder is removed at the end.

# %%
hw = run([sys.executable, "-c", NO_TORCH, "verify.py", "--hw"], cwd=BUNDLE, timeout=60)
print(f"verify.py --hw: exit status {hw.returncode}")
print("pinned:", ", ".join(line for line in (BUNDLE / "requirements.txt").read_text().splitlines()
                           if line.startswith(("lava-nc", "numpy", "onnxruntime"))))
TEMP.cleanup()
print(f"removed {WORK}: {not WORK.exists()}")

# %% [markdown]
# ## Summary
#
# * `python -m ember_neuro.export inrc CKPT --out DIR [-T T -N N]` writes a bundle that runs
#   on Python 3.10 with numpy, Lava and onnxruntime, no torch and no ember-neuro.
# * `verify.py` proves the bundle's gate network answers the recorded windows spike for spike,
#   in Lava's simulation here and with `--hw` on Loihi 2; `generate.py` runs the whole model.
# * `resources.json` separates what is counted (neurons, cores, messages, spikes) from what
#   is estimated (energy, board latency).
