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
# # From a checkpoint to spiking gates: mapping and fidelity
#
# An Ember model is a small transformer whose attention probabilities pass through a learned
# gate, `fire = σ(k (p − θ))`, one `(θ, k)` pair and a leak per head. On a neuromorphic chip
# that sigmoid has to be computed by spiking neurons. This tutorial follows one shipped
# checkpoint through the whole path:
#
# 1. load the checkpoint and look at its trained gates;
# 2. **map** every gate to LIF neurons at a chosen window: T timesteps, N neurons per gate;
# 3. run the mapped neurons on the **emulator** (bit-exact with Lava's Loihi 2 fixed point)
#    and measure each gate's error against the physical limit `1/(2NT)`;
# 4. look at one gate's **transfer curve** and at the spikes behind it;
# 5. ask the question that matters in the end: does the *model* still predict the same
#    tokens?
#
# The command-line version of steps 1–3 is `python -m ember_neuro.map CKPT --target lava-sim`;
# here the same library calls are made one at a time so each result can be looked at.

# %%
# %matplotlib inline
# ruff: noqa: E402 -- the imports follow the warnings filter
import warnings

# tqdm's notebook progress bar needs ipywidgets; nothing here draws one, so its import warning is noise
warnings.filterwarnings("ignore", message="IProgress not found")

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import ember_neuro
from ember_neuro.deploy.calibrate import observed_inputs
from ember_neuro.deploy.faithful import REL_DELTA, TOP1
from ember_neuro.deploy.fidelity import GRID_POINTS, UnitInputs, measure, points_per_unit, run_on
from ember_neuro.deploy.mapping import prepare
from ember_neuro.gates import fire_curve_np
from ember_neuro.hybrid.session import Deployment, Evaluation, run_hybrid
from ember_neuro.inspect import add_swings, describe, format_text
from ember_neuro.mappers import MappingOptions, gate_counts
from ember_neuro.mappers.gate import FIDELITY_MARGIN

TIMEOUT_S = 60.0  # every run that may start Lava gets a timeout

# %% [markdown]
# ## 1. The checkpoint
#
# The package ships one trained checkpoint per gate-bearing variant. They are found through
# the installed package, never through the working directory, so this notebook runs from
# anywhere (the docs build runs it from its own folder).
#
# `prepare` loads the checkpoint once and reads its raw gate arrays; everything later (every
# mapping, every measurement) reuses it.

# %%
CHECKPOINTS = Path(ember_neuro.__file__).parent / "checkpoints"
CKPT = CHECKPOINTS / "lif-learnable-strong.pt"
print("shipped:", ", ".join(sorted(p.name for p in CHECKPOINTS.glob("*.pt"))))

prep = prepare(str(CKPT))
ck = prep.ck
print(f"\n{CKPT.name}: variant {ck.config.variant}, {ck.config.n_layer} layers x {ck.config.n_head} heads, "
      f"context {ck.config.block_size} characters, best val loss {ck.best_val_loss:.4f}")

# %% [markdown]
# ## 2. The gates
#
# `python -m ember_neuro.inspect` prints the trained gate of every head. `θ` is where the
# sigmoid crosses ½, `k` how steep it is, and `leak` how much of `p` passes when the gate is
# closed. The **swing** `(1 − leak)(fire(1) − fire(0))` says how much a gate can attenuate
# over the whole input range `p ∈ [0, 1]`. A gate with swing ≈ 0 passes everything whatever
# the spikes do, so it would make any fidelity check trivially easy. These checkpoints were
# trained so that many gates swing.

# %%
d = describe(ck.model, ck.config, ck.best_val_loss, str(CKPT.name), ck.iter_num)
add_swings(d, ck.model, None)  # attention gates: the swing over p in [0, 1] needs no data
print(format_text(d))

# %% [markdown]
# ## 3. Map the gates to neurons
#
# A binary neuron over T steps can only count to T. N neurons over T steps can emit any count
# from 0 to NT, so they represent **NT + 1 levels** of a rate, spaced `1/(NT)` apart. The best
# any such population can do is round the sigmoid to the nearest level, which is off by at
# most half a step: **`1/(2NT)`**. That is the physical limit of rate coding, whatever the
# neuron model.
#
# ember-neuro reaches it: each gate's neurons compare their drive `k (p − θ)` with an
# ascending sequence of levels delivered by one shared dither generator, so the spike count
# *is* the rounded sigmoid ([mapping §3](../mapping.md#3-the-dithered-threshold-neuron)).
# On Loihi 2 the slope `k` becomes the ratio of two 8-bit synaptic weights
# (`w_in / w_dither`) and `−kθ` becomes the neuron's bias.
#
# `levels="uniform"` places the levels evenly in rate, which is what the `1/(2NT)` bound is
# about. (Section 6 meets `levels="auto"`, which trades that per-gate bound for model
# accuracy.)

# %%
net = prep.map(MappingOptions(timesteps=8, neurons_per_gate=1, levels="uniform"))
group = net.group("attention")
print(f"groups: {list(net.groups)}; {len(group.units)} gate units, T={group.timesteps}, "
      f"N={group.neurons_per_gate}, bound 1/(2NT) = {group.bound:.5f}")
fp = group.fixed_params
w_in, w_d = fp.connection("input").weight, fp.connection("dither").weight
print(f"\n{'unit':>6} {'theta':>7} {'k trained':>9} {'w_in/w_d':>9} {'k on chip':>9} {'bias':>12}")
for i, u in enumerate(group.units[:6]):
    print(f"{u.name:>6} {u.theta:7.3f} {u.k:9.3f} {int(w_in[i]):>5}/{int(w_d[i]):<3} "
          f"{group.k_effective[i]:9.3f} {int(fp.bias_mant[i]):>6}*2^{int(fp.bias_exp[i])}")
print(f"... ({len(group.units)} units)")

# %% [markdown]
# `k on chip` is the slope the two 8-bit weights realise: the mapper chooses them so that
# their ratio comes close to the trained `k` ([mapping §4](../mapping.md#4-loihi-2-fixed-point)
# derives every fixed-point choice).
#
# ## 4. Fidelity on the emulator
#
# `map` checks a mapping by running every unit over a dense grid of `p` in `[0, 1]` plus
# attention probabilities the model really produces on validation text, and
# records each unit's worst `|rate − σ|`. The emulator is a vectorised implementation of the
# same Loihi 2 fixed-point arithmetic as Lava's simulator. `measure` also runs the emulator's
# twin (Lava, `lava-sim`) on the same inputs and compares the two spike for spike.
#
# The observed probabilities depend on the model and the text, not on the window, so they
# are computed once and reused for every window below.

# %%
observed = observed_inputs(ck.model, net, prep.text)
print(f"grid: {points_per_unit(group, GRID_POINTS):,} values of p per unit; observed: "
      f"{observed['attention'].unit_index.size:,} attention probabilities from {prep.text.source}")

m = measure(net, "emulator", observed, TIMEOUT_S, check_twin=True)
print(f"T=8, N=1: emulator spikes equal Lava's (lava-sim) spike for spike: {m['bit_exact']['attention']}")

# %% [markdown]
# Now the same check at several windows. The twin comparison is left out here (it was made
# above); each window is a fresh mapping of the same prepared checkpoint.
#
# Two of the windows have the same product NT with a different split between time and
# neurons. The limit depends only on NT, so they should behave alike.

# %%
WINDOWS = [(4, 1), (8, 1), (16, 1), (32, 1), (8, 4), (16, 8)]
results = {}
for t, n in WINDOWS:
    net_w = prep.map(MappingOptions(timesteps=t, neurons_per_gate=n, levels="uniform"))
    m_w = measure(net_w, "emulator", observed, TIMEOUT_S, check_twin=False)
    results[(t, n)] = {"group": net_w.group("attention"), "measured": m_w["groups"]["attention"],
                       "rows": m_w["rows"]}

print(f"{'T':>3} {'N':>3} {'NT':>4} {'levels':>6} {'1/(2NT)':>9} {'max err':>9} {'exact fixed':>11} "
      f"{'units within bar':>16}")
for (t, n), r in results.items():
    rows, bound = r["rows"], r["group"].bound
    worst = max(x["max_abs_error"] for x in rows)
    exact = max(x["fixed_worst_case_error"] for x in rows)
    ok = sum(x["within"] for x in rows)
    print(f"{t:3d} {n:3d} {t * n:4d} {t * n + 1:6d} {bound:9.5f} {worst:9.5f} {exact:11.5f} "
          f"{ok:>9}/{len(rows)}")
print(f"bar: 1/(2NT) + {FIDELITY_MARGIN} (the fixed-point margin)")

same = [w for w in WINDOWS if w[0] * w[1] == 32]
errs = [np.array([x["max_abs_error"] for x in results[w]["rows"]]) for w in same]
print(f"\n{same[0]} and {same[1]} (both NT = 32): per-unit errors identical: {np.array_equal(*errs)}")

# %% [markdown]
# Reading the table:
#
# * **max err** is the largest measured `|rate − σ|` over every unit and every input.
# * **exact fixed** is the mapper's exact worst case for the rounded 8-bit weights over the
#   whole input range, computed without running anything. The measurement can only find
#   inputs where the error is at most that.
# * In floating point the error would stay at or below `1/(2NT)`. In Loihi 2 fixed point the
#   slope is a ratio of 8-bit integers, so the sigmoid being rounded is very slightly
#   different from the trained one, and the error can exceed the limit by a little. The bar
#   every unit must meet is therefore `1/(2NT)` plus a small fixed margin.
#
# A few units stay well below the limit. A gate whose sigmoid hardly moves over `[0, 1]`
# (small `k`: the heads marked `bypass` in the gate table) never crosses many level
# boundaries, so its worst rounding error depends on where its nearly constant fire falls
# between two levels.
#
# The plot shows every unit, window by window: its measured error (dots) against the limit
# (dashed, same colour), and on the right the worst unit against NT with the `1/(2NT)` curve.

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [2, 1]})
names = [u.name for u in group.units]
x = np.arange(len(names))
for j, ((t, n), r) in enumerate(results.items()):
    errors = [row["max_abs_error"] for row in r["rows"]]
    color = f"C{j}"
    ax1.plot(x + (j - len(results) / 2) * 0.1, errors, "o", ms=4, color=color, label=f"T={t}, N={n}")
    ax1.axhline(r["group"].bound, color=color, ls="--", lw=0.8)
ax1.set_yscale("log")
ax1.set_xticks(x)
ax1.set_xticklabels(names, rotation=90, fontsize=7)
ax1.set_ylabel("max |rate − σ| (per unit)")
ax1.set_title("per-unit error (dots) and 1/(2NT) (dashed)")
ax1.legend(fontsize=7, ncol=2)

nts = np.array([t * n for t, n in results])
worst = [max(row["max_abs_error"] for row in r["rows"]) for r in results.values()]
line = np.geomspace(nts.min(), nts.max(), 50)
ax2.loglog(line, 1 / (2 * line), "k--", lw=1, label="1/(2NT)")
ax2.loglog(nts, worst, "o", color="tab:red", label="worst unit, measured")
ax2.set_xlabel("N·T")
ax2.set_ylabel("max |rate − σ|")
ax2.set_title("only N·T matters")
ax2.legend(fontsize=8)
for ax in (ax1, ax2):
    ax.grid(alpha=0.3, which="both")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 5. One gate's transfer curve, and the spikes behind it
#
# The steepest gate is the hardest to approximate: its sigmoid rises within a narrow range of
# `p`, so the staircase of NT + 1 levels is most visible there. The grid part of each
# measurement holds the spike rate at every grid point, which is the gate's transfer curve as
# the neurons realise it.

# %%
unit = int(np.argmax([u.k for u in group.units]))
u = group.units[unit]
p_fine = np.linspace(0, 1, 2001)
show = [WINDOWS[0], WINDOWS[-1]]

fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
top.plot(p_fine, fire_curve_np(p_fine, u.theta, u.k), "k-", lw=1.2, label="trained sigmoid σ(k(p − θ))")
for j, w in enumerate(show):
    r = results[w]
    g = r["group"]
    units, points = len(g.units), points_per_unit(g, GRID_POINTS)
    p_grid = r["measured"]["inputs"].values["input"][: points * units].reshape(points, units)[:, unit]
    rate = r["measured"]["rates"][: points * units].reshape(points, units)[:, unit]
    sigma = fire_curve_np(p_grid, u.theta, u.k)
    nt = w[0] * w[1]
    top.step(p_grid, rate, where="mid", color=f"C{j}", label=f"spike rate, T={w[0]}, N={w[1]} (NT={nt})")
    bottom.plot(p_grid, rate - sigma, color=f"C{j}", lw=0.8)
    bottom.axhline(g.bound, color=f"C{j}", ls="--", lw=0.8)
    bottom.axhline(-g.bound, color=f"C{j}", ls="--", lw=0.8)
    print(f"T={w[0]}, N={w[1]}: {len(np.unique(rate))} distinct rates on the grid (at most NT + 1 = "
          f"{nt + 1}); max |rate − σ| = {np.abs(rate - sigma).max():.5f}, 1/(2NT) = {g.bound:.5f}")
top.set_ylabel("fire")
top.set_title(f"{u.name}: θ = {u.theta:.3f}, k = {u.k:.3f}")
top.legend(fontsize=8)
bottom.set_xlabel("attention probability p")
bottom.set_ylabel("rate − σ")
for ax in (top, bottom):
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# Behind each rate is a spike count. Below, the same unit at T = 8, N = 4 is fed a handful of
# probabilities around its threshold, and the emulator's raster is shown: one row per neuron,
# one column per timestep. Neuron `c` meets level `m = tN + c` at step `t`, and the levels
# ascend, so the spikes fill the (step, neuron) pairs in that order, up to the count.

# %%
t_r, n_r = 8, 4
g_r = results[(t_r, n_r)]["group"]
p_show = np.clip(u.theta + np.array([-0.3, -0.1, 0.0, 0.05, 0.3]) / max(u.k, 1.0), 0.0, 1.0)
values = {src: np.zeros(p_show.size) for src in g_r.fixed_params.host_sources}
values["input"] = p_show
raster, _ = run_on(g_r, "emulator", UnitInputs(np.full(p_show.size, unit), values), TIMEOUT_S,
                   check_twin=False)
spikes = raster[0].reshape(t_r, p_show.size, n_r)  # (step, input, neuron)
counts = gate_counts(raster[0].sum(axis=0), n_r)

fig, axes = plt.subplots(1, p_show.size, figsize=(2.2 * p_show.size, 1.9))
for j, ax in enumerate(axes):
    ax.imshow(spikes[:, j, :].T, cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax.set_title(f"p={p_show[j]:.3f}\n{int(counts[j])} of {t_r * n_r} spikes", fontsize=8)
    ax.set_xlabel("step t", fontsize=8)
    ax.set_yticks(range(n_r))
    ax.set_xticks(range(t_r))
    ax.tick_params(labelsize=6)
axes[0].set_ylabel("neuron c", fontsize=8)
fig.tight_layout()
plt.show()

ideal = np.round(t_r * n_r * fire_curve_np(p_show, u.theta, u.k))
print("spike counts         ", counts.astype(int).tolist())
print("round(NT σ(k(p − θ)))", ideal.astype(int).tolist())

# %% [markdown]
# The counts are the rounded sigmoid; where one differs from `round(NT σ)` by one, the input
# sits at a rounding boundary and the 8-bit slope on the chip tips it the other way, which is
# the fixed-point effect the bar's margin allows for.
#
# ## 6. What the model sees
#
# A per-gate bound is a means, not the goal. The user wants the deployed model to predict
# what the trained model predicts. `run_hybrid` (what `python -m ember_neuro.run --eval`
# calls) runs the model with every gate on the chosen backend and compares it with the float
# model on the same fixed validation batches: the relative change of the validation loss and
# the **top-1 agreement**, the share of next-token predictions that are the same. One batch
# keeps this quick; the README's tables use many more.
#
# The last two windows use `levels="auto"`. Gates that can close (leak ≈ 0) need *relative*
# precision when their fire is small, so auto places the levels uniformly in
# `log(fire + 0.01)` for them
# ([mapping §7](../mapping.md#7-level-sets-where-the-rounding-should-be-fine)). Its per-gate
# worst case is larger than `1/(2NT)`, yet the model comes out closer to the float one at the
# same NT.

# %%
EVAL_WINDOWS = [(8, 4, "uniform"), (8, 4, "auto"), (16, 8, "auto")]
evals = {}
for t, n, levels in EVAL_WINDOWS:
    evals[(t, n, levels)] = run_hybrid(
        Deployment(str(CKPT), backend="emulator", timesteps=t, neurons_per_gate=n, levels=levels,
                   timeout=TIMEOUT_S),
        ev=Evaluation(batches=1), progress=False)

first = next(iter(evals.values()))
print(f"{first['tokens']:,} next-token predictions; float val loss {first['val_loss_float']:.4f}; "
      f"bars: top-1 >= {TOP1:.1%}, |rel. delta| <= {REL_DELTA:.1%}")
print(f"{'T':>3} {'N':>3} {'levels':>8} {'hybrid loss':>11} {'rel. delta':>11} {'top-1':>8}  meets")
for (t, n, levels), r in evals.items():
    meets = r["top1_agreement"] >= TOP1 and abs(r["rel_delta"]) <= REL_DELTA
    print(f"{t:3d} {n:3d} {levels:>8} {r['val_loss_hybrid']:11.4f} {r['rel_delta']:+11.2e} "
          f"{r['top1_agreement']:8.2%}  {'yes' if meets else 'no'}")

# %%
labels = [f"T={t}, N={n}\n{levels}" for t, n, levels in evals]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.4))
ax1.bar(labels, [100 * r["top1_agreement"] for r in evals.values()], color="tab:blue")
ax1.axhline(100 * TOP1, color="k", ls="--", lw=1, label=f"bar {TOP1:.1%}")
ax1.set_ylim(100 * min(r["top1_agreement"] for r in evals.values()) - 1, 100.2)
ax1.set_ylabel("top-1 agreement with float (%)")
ax1.legend(fontsize=8)
ax2.bar(labels, [abs(r["rel_delta"]) for r in evals.values()], color="tab:red")
ax2.axhline(REL_DELTA, color="k", ls="--", lw=1, label=f"bar {REL_DELTA:.1%}")
ax2.set_yscale("log")
ax2.set_ylabel("|relative change of val loss|")
ax2.legend(fontsize=8)
for ax in (ax1, ax2):
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(alpha=0.3, axis="y")
fig.tight_layout()
plt.show()

# %% [markdown]
# With few levels, placed uniformly, the rounding is visible in the model's predictions;
# levels placed where the closing gates need them, and more of them, bring the spiking model
# to the float one. This is why `python -m ember_neuro.map` chooses the window at
# the model level by default: the fewest timesteps, then the fewest neurons per gate, whose
# hybrid model meets the bars above on calibration text ([the default window](../default_window.md)).
#
# ## Many windows at once: the sweep
#
# One evaluation per window, by hand, does not scale to the figure a paper needs: variants ×
# seeds × windows × level sets. `python -m ember_neuro.sweep run` makes each such evaluation a
# task on [Dask distributed](https://distributed.dask.org) -- a local cluster of worker
# processes by default, a real cluster with `--address` -- and keeps every finished cell in one
# table, so an interrupted sweep resumes where it stopped ([the sweep](../sweep.md)). Here the
# same library calls run a small grid: this checkpoint at five windows and both level sets, one
# validation batch per cell, on two local workers.

# %%
import shutil
import tempfile

from IPython.display import Image, Markdown, display

from ember_neuro.sweep import figures
from ember_neuro.sweep.engine import engine
from ember_neuro.sweep.engine import run as run_sweep
from ember_neuro.sweep.grid import Grid
from ember_neuro.sweep.results import Results

grid = Grid(checkpoints=[str(CKPT)], windows=[(1, 1), (1, 4), (2, 8), (4, 16), (8, 32)],
            levels=["uniform", "auto"], batches=1)
cells = grid.cells()
sweep_dir = Path(tempfile.mkdtemp(prefix="sweep-"))
table = Results(sweep_dir / "results.csv")
with engine(workers=2) as client:
    summary = run_sweep(cells, table, client, progress=False)
print(summary.line(str(table.path)))
rows = table.ok_rows()
display(Markdown(figures.table(rows)))

# %% [markdown]
# Each row is one cell: its numbers, timings, the worker that ran it and the versions that
# computed it (the table's columns are documented in [the sweep](../sweep.md)). The figure
# is drawn from the table alone: above, every gate's exact worst case against N·T with the
# `1/(2NT)` limit; below, the model's top-1 disagreement with the float model.

# %%
display(Image(filename=str(figures.plot(rows, sweep_dir / "fidelity.png"))))

# %% [markdown]
# Running the same grid again does nothing: every cell is already in the table.

# %%
with engine(workers=1) as client:
    again = run_sweep(cells, Results(sweep_dir / "results.csv"), client, progress=False)
print(again.line(str(table.path)))
assert again.ran == 0 and again.already_done == len(cells)
shutil.rmtree(sweep_dir)

# %% [markdown]
# The command line does the same on the whole validation split, for every shipped checkpoint by
# default: `python -m ember_neuro.sweep run --out runs/sweep`.
#
# ## Summary
#
# * `prepare(ckpt)` loads a checkpoint once; `Prepared.map(MappingOptions(T, N, levels))` maps
#   its gates to neurons at a window.
# * A population of N neurons over T steps has NT + 1 levels, so no rate code can beat
#   `1/(2NT)`. The mapped neurons reach it, within a small fixed-point margin on Loihi 2, and
#   only the product NT matters.
# * The emulator is bit-exact with Lava's simulator and fast enough for sweeps; `measure`
#   checks both spike for spike.
# * What decides a deployment is the model-level comparison (`run_hybrid` with
#   `Evaluation`), and there the level placement matters as much as the level count.
# * `ember_neuro.sweep` runs such comparisons as a grid on a Dask cluster, resumable, into one
#   table from which the figure is drawn.
