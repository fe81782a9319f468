# ember-neuro: `make demo` (set-up + main job) and `make test` (set-up + tests).
PY := .venv/bin/python
PY310 := .venv310/bin/python
CKPT ?= ember_neuro/checkpoints/lif-learnable-strong.pt
T ?= 32

.PHONY: setup setup-py310 demo test test-py310 test-bundle test-slow ci lint checkpoints clean

setup:
	@bash scripts/setup_env.sh

# Python 3.10 (INRC's Python): the torch-free core with Lava installed natively, no torch.
setup-py310:
	@bash scripts/setup_core310.sh

demo: setup
	$(PY) -m ember_neuro.demo --checkpoint $(CKPT) --timesteps $(T)

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

# What .ci/run runs: the 3.11 suite, the 3.10 part, the bundle on 3.10.
ci: test test-py310 test-bundle

lint: setup
	.venv/bin/ruff check ember_neuro mappers processes export tests examples scripts

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

clean:
	rm -rf .venv .venv310 build *.egg-info .pytest_cache .ruff_cache
