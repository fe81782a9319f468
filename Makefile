# ember-neuro: `make demo` (set-up + main job) and `make test` (set-up + tests).
PY := .venv/bin/python
PY310 := .venv310/bin/python
CKPT ?= ember_neuro/checkpoints/lif-learnable-strong.pt
# make demo T=8 pins the window length (default: chosen on calibration text)
T ?=

.PHONY: setup setup-py310 demo test test-py310 test-bundle test-bundle-kws test-slow docs ci lint checkpoints kws-checkpoint hard-spikes clean

setup:
	@bash scripts/setup_env.sh

# Python 3.10 (INRC's Python): the torch-free core with Lava installed natively, no torch.
setup-py310:
	@bash scripts/setup_core310.sh

demo: setup
	$(PY) -m ember_neuro.demo --checkpoint $(CKPT) $(if $(T),--timesteps $(T))

test: setup
	$(PY) -m pytest -q

# The torch-free subset (marker torchfree: the mappers, the numpy reference, the real Lava runtime,
# the store, the budget) on Python 3.10 with Lava installed natively and no torch.
test-py310: setup-py310
	$(PY310) -m pytest -q -m "torchfree and not slow"

# The INRC bundle in a fresh Python 3.10 venv with only its requirements: verify.py bit-exact,
# generate.py --greedy equal to ember_neuro.run --greedy (CKPT=... to choose the checkpoint).
test-bundle: setup
	bash scripts/check_bundle.sh

test-slow: setup
	$(PY) -m pytest -q -m slow

# The keyword spotter's bundle on 3.10: verify.py bit-exact, classify.py's classes equal to
# `run --wav`'s on 8 testing clips (at the window the defaults choose, pinned to skip the search).
test-bundle-kws: setup
	CKPT=ember_neuro/checkpoints/audio-cfc-lif-strong.pt T=2 N=16 REPORT=0 CLIPS=8 WORK=build/inrc-check-kws \
	  bash scripts/check_bundle.sh

# The docs site (mkdocs.yml) into build/site, executing the tutorials (docs/tutorials/*.py). Strict: a
# broken link or anchor, a page missing from the nav or a raising tutorial cell fails it. Never add -q:
# it drops the warnings before strict mode counts them, and a broken site builds green.
docs: setup
	NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir build/site

# What .ci/run runs: the 3.11 suite, the docs site, the 3.10 part, the bundle on 3.10 (text and keyword spotter).
ci: test docs test-py310 test-bundle test-bundle-kws

lint: setup
	.venv/bin/ruff check ember_neuro mappers processes export tests examples scripts docs/tutorials

# Re-create the shipped strong-gate checkpoints (6-10 minutes each on 2 CPU cores; docs/strong_gates.md).
# Transformers: the gate parameters in their own AdamW group at 30x the learning rate, no weight decay.
# Liquid Ember: the same, from selective initial gates (spread init; from the identity init every
# CfC gate drifted to pass-through, 0 of 128 strong, docs/strong_gates.md).
STRONG_ARGS_cfc-lif := --gate-init spread --gate-lr-mult 30
checkpoints: setup
	for v in lif-learnable lif-fixed lif-refractory temporal-lif; do \
	  $(PY) -m ember_neuro.train --variant $$v --preset small --seed 1337 --gate-lr-mult 30 \
	    --out ember_neuro/checkpoints/$$v-strong.pt || exit 1; done
	$(PY) -m ember_neuro.train --variant cfc-lif --preset small --seed 1337 $(STRONG_ARGS_cfc-lif) \
	  --out ember_neuro/checkpoints/cfc-lif-strong.pt

# Audio Liquid Ember, the keyword spotter (docs/keywords.md): the notes' recipe (AdamW lr 1e-3, weight
# decay 0.01, clipping 1.0, batch 64, 15 epochs) on the project's espeak-ng keyword set (35 words, made
# by `make setup`), strong gates as for cfc-lif (spread init, gate parameters at 30x the learning rate).
KWS_SEED ?= 1337
kws-checkpoint: setup
	$(PY) -m ember_neuro.train --variant audio-cfc-lif --preset small --seed $(KWS_SEED) --gate-init spread \
	  --gate-lr-mult 30 --out ember_neuro/checkpoints/audio-cfc-lif-strong.pt

# Hard spikes that save compute (docs/hard_spikes.md): temporal-lif trained with the chip's 0/1
# membrane spike at several skip targets; its equal-budget soft baseline is the same command with
# the soft gate (same start, iterations, data and optimiser).  HARD_FROM=scratch (default): the
# temporal-lif recipe of `make checkpoints`, whose soft run is the shipped temporal-lif-strong.pt;
# HARD_FROM=finetune: 3,000 more iterations from temporal-lif-strong.pt, the baseline trained here.
# Draws the curve on the whole validation split (docs/figures/hard_spike_curve*) and, from
# scratch, ships temporal-lif-hard.pt (skip target HARD_SHIP).  `make -j2 hard-spikes` trains
# two at a time (about 5 minutes per pair on 2 cores, then about 5 minutes of evaluation).
HARD_FROM ?= scratch
HARD_TARGETS_scratch = 0.2 0.35 0.5 0.6
HARD_TARGETS_finetune = 0.2 0.35 0.5 0.65
HARD_TARGETS ?= $(HARD_TARGETS_$(HARD_FROM))
HARD_SHIP ?= 0.5
HARD_DIR = runs/hard/$(HARD_FROM)
HARD_TRAIN_scratch = --variant temporal-lif --preset small --seed 1337 --gate-lr-mult 30
HARD_TRAIN_finetune = --init-from ember_neuro/checkpoints/temporal-lif-strong.pt --iters 3000 --seed 1337
HARD_BASELINE_scratch = ember_neuro/checkpoints/temporal-lif-strong.pt
HARD_BASELINE_finetune = runs/hard/finetune/soft.pt
runs/hard/finetune/soft.pt:
	@mkdir -p $(@D)
	$(PY) -m ember_neuro.train $(HARD_TRAIN_finetune) --quiet --spike soft --out $@
runs/hard/scratch/hard-%.pt:
	@mkdir -p $(@D)
	$(PY) -m ember_neuro.train $(HARD_TRAIN_scratch) --quiet --spike hard --skip-target $* --skip-weight 10 \
	  --surrogate-slope 4 --out $@
runs/hard/finetune/hard-%.pt:
	@mkdir -p $(@D)
	$(PY) -m ember_neuro.train $(HARD_TRAIN_finetune) --quiet --spike hard --skip-target $* --skip-weight 10 \
	  --surrogate-slope 1 --out $@
hard-spikes: setup $(HARD_BASELINE_$(HARD_FROM)) $(foreach s,$(HARD_TARGETS),$(HARD_DIR)/hard-$(s).pt)
	$(PY) scripts/hard_spike_curve.py --baseline $(HARD_BASELINE_$(HARD_FROM)) \
	  $(foreach s,$(HARD_TARGETS),$(HARD_DIR)/hard-$(s).pt) --json docs/figures/hard_spike_curve_$(HARD_FROM).json
	$(PY) scripts/hard_spike_curve.py --plot docs/figures/hard_spike_curve_*.json --out docs/figures/hard_spike_curve.png
	$(if $(filter scratch,$(HARD_FROM)),cp $(HARD_DIR)/hard-$(HARD_SHIP).pt ember_neuro/checkpoints/temporal-lif-hard.pt)

clean:
	rm -rf .venv .venv310 build *.egg-info .pytest_cache .ruff_cache
