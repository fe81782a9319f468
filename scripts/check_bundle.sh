#!/usr/bin/env bash
# The INRC bundle, tested where it will run: build it from a shipped checkpoint with the
# package (.venv), then in a fresh Python 3.10 venv holding only the bundle's
# requirements.txt (no torch, no ember-neuro) run verify.py (bit-exact, exit 0) and
# generate.py --greedy, whose tokens must equal `python -m ember_neuro.run --greedy`.
#
#   CKPT=ember_neuro/checkpoints/cfc-lif-strong.pt bash scripts/check_bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/find_py310.sh
CKPT="${CKPT:-ember_neuro/checkpoints/lif-learnable-strong.pt}"
T="${T:-32}"
N="${N:-8}"
LEVELS="${LEVELS:-auto}"  # T = 32, N = 8, auto levels: the setting within the model bars (README)
TOKENS="${TOKENS:-60}"
PROMPT="${PROMPT:-ROMEO:}"
WORK="${WORK:-build/inrc-check}"
PY310="$(find_py310)" || { echo "check_bundle: no Python 3.10 found (set PYTHON310)" >&2; exit 1; }
rm -rf "$WORK" && mkdir -p "$WORK"
now() { date +%s.%N; }
t0=$(now)
.venv/bin/python -m ember_neuro.export inrc "$CKPT" --out "$WORK/bundle" -T "$T" -N "$N" --levels "$LEVELS"
t1=$(now)
"$PY310" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --disable-pip-version-check -q -r "$WORK/bundle/requirements.txt" 2>&1 \
    | { grep -v -e "is ignored: it is neither a file nor a directory" || true; }
VPY="$(cd "$WORK/venv/bin" && pwd)/python"
if (cd / && "$VPY" -c "import torch" 2>/dev/null) || (cd / && "$VPY" -c "import ember_neuro" 2>/dev/null); then
    echo "check_bundle: the bundle venv has torch or ember-neuro installed; the check would prove nothing" >&2
    exit 1
fi
t2=$(now)
(cd "$WORK/bundle" && ../venv/bin/python verify.py)
t3=$(now)
(cd "$WORK/bundle" && ../venv/bin/python generate.py --greedy --tokens "$TOKENS" --prompt "$PROMPT" --json) \
    > "$WORK/bundle-generate.json"
t4=$(now)
.venv/bin/python -m ember_neuro.run "$CKPT" --backend lava-sim -T "$T" --neurons-per-gate "$N" --levels "$LEVELS" --greedy \
    --tokens "$TOKENS" --prompt "$PROMPT" --json > "$WORK/package-run.json"
.venv/bin/python - "$WORK" "$t0" "$t1" "$t2" "$t3" "$t4" <<'PY'
import json, pathlib, sys
work = pathlib.Path(sys.argv[1])
t0, t1, t2, t3, t4 = map(float, sys.argv[2:])
a = json.loads((work / "bundle-generate.json").read_text())["text"]
b = json.loads((work / "package-run.json").read_text())["text"]
size = sum(p.stat().st_size for p in (work / "bundle").rglob("*") if p.is_file())
print(f"check_bundle: bundle {size / 1e6:.2f} MB built in {t1 - t0:.1f} s; Python 3.10 venv {t2 - t1:.1f} s; "
      f"verify.py {t3 - t2:.1f} s; generate.py --greedy ({len(a)} tokens) {t4 - t3:.1f} s")
if a != b:
    i = next((j for j in range(min(len(a), len(b))) if a[j] != b[j]), min(len(a), len(b)))
    print(f"check_bundle: FAILED, generate.py and ember_neuro.run part at token {i}:\n  {a!r}\n  {b!r}",
          file=sys.stderr)
    sys.exit(1)
print(f"check_bundle: generate.py --greedy == ember_neuro.run --greedy: {a!r}")
PY
