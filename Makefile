# ember-neuro: `make demo` (set-up + main job) and `make test` (set-up + tests).
PY := .venv/bin/python
CKPT ?= ember_neuro/checkpoints/lif-learnable-small.pt
T ?= 32

.PHONY: setup demo test test-slow lint checkpoints clean

setup:
	@bash scripts/setup_env.sh

demo: setup
	$(PY) -m ember_neuro.demo --checkpoint $(CKPT) --timesteps $(T)

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

lint: setup
	.venv/bin/ruff check ember_neuro mappers processes export tests examples scripts

# Re-create the shipped reference checkpoints (minutes each on 2 CPU cores).
checkpoints: setup
	for v in lif-learnable lif-fixed lif-refractory temporal-lif cfc-lif; do \
	  $(PY) -m ember_neuro.train --variant $$v --preset small --seed 1337 \
	    --out ember_neuro/checkpoints/$$v-small.pt || exit 1; done

clean:
	rm -rf .venv build *.egg-info .pytest_cache .ruff_cache
