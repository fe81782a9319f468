#!/usr/bin/env bash
# Create .venv310: Python 3.10 (what INRC machines run) with the torch-free core and
# Lava installed natively -- no torch, no patch.  Idempotent (stamp file).
#
#   PYTHON310=/path/to/python3.10 bash scripts/setup_core310.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/find_py310.sh
VENV="${VENV310:-.venv310}"
PY="$(find_py310)" || { echo "setup310: no Python 3.10 found (set PYTHON310)" >&2; exit 1; }
STAMP="$VENV/.ember-neuro-installed"
WANT="$(cat constraints.txt pyproject.toml setup.py scripts/setup_core310.sh | sha256sum | cut -c1-16)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
    echo "setup310: $VENV is up to date"
    exit 0
fi
echo "setup310: creating $VENV with $("$PY" --version 2>&1)"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --disable-pip-version-check -q -c constraints.txt -e ".[lava,dev]" 2>&1 \
    | { grep -v -e "is ignored: it is neither a file nor a directory" || true; }
if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "setup310: torch is installed in $VENV; the torch-free check would prove nothing" >&2
    exit 1
fi
"$VENV/bin/python" -c "import lava.magma.runtime.runtime, ember_neuro.mappers; print('setup310: lava and the core import')"
echo "$WANT" > "$STAMP"
