#!/usr/bin/env bash
# Create .venv and install everything ember-neuro needs, from package registries
# only, with every version pinned in constraints.txt.  Idempotent: a stamp file
# records what was installed, so a second run takes a second.
#
# Traps handled here (SPEC §5):
#  * torch==2.13.0 is installed first and pinned: a looser spec pulls CUDA wheels.
#  * lava-nc 0.10.0 declares python<3.11: installed with --no-deps
#    --ignore-requires-python next to its pinned deps, then patched for 3.11.
#  * norse lists torchvision (no CPU build): installed with --no-deps.
#  * neurobench 2.3.0 (its metric classes, ember_neuro/deploy/neurobench_metrics.py) requires torchaudio, which has
#    no build for torch 2.13 (the last is 2.11.1), and tonic (its datasets, unused here): installed
#    with --no-deps; what its metrics import (snntorch, numba, llvmlite, tqdm) is pinned here.
#  * espeak-ng (which speaks the keyword set, docs/keywords.md) is a Debian package, not a pip
#    one: installed with apt-get where missing; without apt-get a warning, and no keyword set.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV="${VENV:-.venv}"
STAMP="$VENV/.ember-neuro-installed"
WANT="$(cat constraints.txt pyproject.toml setup.py scripts/setup_env.sh scripts/patch_lava.py | sha256sum | cut -c1-16)"
install_espeak() {
    command -v espeak-ng >/dev/null 2>&1 && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "setup: warning: no espeak-ng and no apt-get to install it; no keyword set" >&2
        return 0
    fi
    local sudo=""
    if [[ "$(id -u)" != 0 ]] && command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; fi
    echo "setup: installing espeak-ng (apt-get install espeak-ng)"
    local apt=($sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends espeak-ng)
    if ! "${apt[@]}" >/dev/null 2>&1; then
        $sudo apt-get update -q >/dev/null 2>&1 || true
        "${apt[@]}" >/dev/null 2>&1 \
            || echo "setup: warning: apt-get could not install espeak-ng; install it to make the keyword set" >&2
    fi
}
# The default keyword set (ember_neuro/audio/keywords.py), made once: idempotent, so it runs
# on every set-up, the venv up to date or not.
make_keywords() {
    if ! command -v espeak-ng >/dev/null 2>&1; then
        echo "setup: warning: no espeak-ng, so no keyword set; the tests that need it will say so" >&2
        return 0
    fi
    local root
    root="$("$VENV/bin/python" -c "from ember_neuro.audio.keywords import default_root; print(default_root())")"
    "$VENV/bin/python" -m ember_neuro.audio.keywords --out "$root" --quiet
}
install_espeak
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
    echo "setup: $VENV is up to date"
    make_keywords
    exit 0
fi
echo "setup: creating $VENV with $($PYTHON --version 2>&1)"
"$PYTHON" -m venv "$VENV"
# pip, minus two known, harmless lines: this machine's pip config names local
# index folders that may not exist, and norse's torchvision requirement is
# skipped on purpose (see above).
pip_install() {
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@" 2>&1 \
        | { grep -v -e "is ignored: it is neither a file nor a directory" \
                    -e "norse 1.1.0 requires torchvision" \
                    -e "neurobench 2.3.0 requires" \
                    -e "dependency resolver does not currently take into account" || true; }
}
pip_install -c constraints.txt torch==2.13.0
pip_install -c constraints.txt numpy scipy scikit-learn asteval networkx
pip_install --no-deps --ignore-requires-python lava-nc==0.10.0
pip_install --no-deps norse==1.1.0
pip_install --no-deps neurobench==2.3.0
pip_install -c constraints.txt -e ".[torch,ref,export,liquid,audio,dev,sweep,docs]"
"$VENV/bin/python" scripts/patch_lava.py
"$VENV/bin/python" -c "import torch, lava.proc.lif.process, snntorch, norse.torch, nir, onnxruntime, ncps, librosa, \
distributed, mkdocs, jupytext, nbclient, neurobench.metrics; \
assert not torch.cuda.is_available() or True; print('setup: torch', torch.__version__, '| imports ok')"
echo "$WANT" > "$STAMP"
make_keywords
