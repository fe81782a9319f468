#!/usr/bin/env bash
# The INRC bundle, tested where it will run: build it from a shipped checkpoint with the
# package (.venv), then in a Python 3.10 venv holding only the bundle's
# requirements.txt (no torch, no ember-neuro) run verify.py (bit-exact, exit 0) and
# generate.py --greedy, whose tokens must equal `python -m ember_neuro.run --greedy`.
#
#   CKPT=ember_neuro/checkpoints/cfc-lif-strong.pt bash scripts/check_bundle.sh
#
# An audio checkpoint (Audio Liquid Ember) runs classify.py instead, on CLIPS (16) seeded files of
# the keyword set's testing split (copied into $WORK/clips), whose classes must equal
# `python -m ember_neuro.run --wav ...` at the bundle's window (T, N, levels read back from
# bundle.json and pinned; give T / N / LEVELS to pin the export's too, else the window search
# chooses).  DATA: a Speech Commands v2 folder (default: the project's keyword set).
#
#   CKPT=ember_neuro/checkpoints/audio-cfc-lif-strong.pt bash scripts/check_bundle.sh
#
# REPORT=0 leaves the validate report out of the bundle (export inrc --no-report; CI's audio check).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/find_py310.sh
CKPT="${CKPT:-ember_neuro/checkpoints/lif-learnable-strong.pt}"
TOKENS="${TOKENS:-60}"
PROMPT="${PROMPT:-ROMEO:}"
CLIPS="${CLIPS:-16}"
DATA="${DATA:-}"
WORK="${WORK:-build/inrc-check}"
PY310="$(find_py310)" || { echo "check_bundle: no Python 3.10 found (set PYTHON310)" >&2; exit 1; }
rm -rf "$WORK" && mkdir -p "$WORK"
now() { date +%s.%N; }
AUDIO="$(.venv/bin/python -c 'import sys
from ember_neuro.models.checkpoint import load_checkpoint
print(int(load_checkpoint(sys.argv[1]).config.is_classifier))' "$CKPT")"
DATA_ARGS=()
[ -n "$DATA" ] && DATA_ARGS=(--data "$DATA")
EXPORT_ARGS=()
[ "${REPORT:-1}" = 0 ] && EXPORT_ARGS=(--no-report)
WINDOW=()
if [ "$AUDIO" = 1 ]; then  # the window search's choice unless pinned
    WINDOW=(${T:+-T "$T"} ${N:+-N "$N"} --levels "${LEVELS:-auto}")
else  # T = 32, N = 8, auto levels: the setting within the model bars (README)
    WINDOW=(-T "${T:-32}" -N "${N:-8}" --levels "${LEVELS:-auto}")
fi
t0=$(now)
.venv/bin/python -m ember_neuro.export inrc "$CKPT" --out "$WORK/bundle" "${WINDOW[@]}" ${DATA_ARGS[@]+"${DATA_ARGS[@]}"} \
    ${EXPORT_ARGS[@]+"${EXPORT_ARGS[@]}"}
t1=$(now)
# A Python 3.10 venv holding only the bundle's requirements.txt, made once per requirements file: the
# text and the keyword-spotting check share it (same file), and it is never used for anything else.
VENV_DIR="build/bundle-venv-$(sha256sum "$WORK/bundle/requirements.txt" | cut -c1-12)"
if [ ! -f "$VENV_DIR/.complete" ]; then
    rm -rf "$VENV_DIR"
    "$PY310" -m venv "$VENV_DIR"
    "$VENV_DIR/bin/python" -m pip install --disable-pip-version-check -q -r "$WORK/bundle/requirements.txt" 2>&1 \
        | { grep -v -e "is ignored: it is neither a file nor a directory" || true; }
    touch "$VENV_DIR/.complete"
fi
VPY="$(cd "$VENV_DIR/bin" && pwd)/python"
if (cd / && "$VPY" -c "import torch" 2>/dev/null) || (cd / && "$VPY" -c "import ember_neuro" 2>/dev/null) \
        || (cd / && "$VPY" -c "import librosa" 2>/dev/null); then
    echo "check_bundle: the bundle venv has torch, librosa or ember-neuro installed; the check would prove nothing" >&2
    exit 1
fi
t2=$(now)
(cd "$WORK/bundle" && "$VPY" verify.py)
t3=$(now)

if [ "$AUDIO" = 1 ]; then
    # CLIPS seeded files of the testing split (never searched on), copied so both runs read the same paths
    .venv/bin/python - "$WORK/clips" "$CLIPS" "$DATA" <<'PY'
import random, shutil, sys
from pathlib import Path
from ember_neuro.audio import keywords
out, count = Path(sys.argv[1]), int(sys.argv[2])
root = Path(sys.argv[3]) if sys.argv[3] else keywords.ensure_default()
listed = [line.strip() for line in (root / "testing_list.txt").read_text().splitlines() if line.strip()]
out.mkdir(parents=True)
for ref in sorted(random.Random(0).sample(listed, min(count, len(listed)))):
    shutil.copy2(root / ref, out / ref.replace("/", "-"))
PY
    WAVS=("$WORK"/clips/*.wav)
    PINNED=($(.venv/bin/python -c 'import json, sys
b = json.load(open(sys.argv[1]))
print("-T", b["timesteps"], "-N", b["neurons_per_gate"], "--levels", b["levels"])' "$WORK/bundle/bundle.json"))
    (cd "$WORK/bundle" && "$VPY" classify.py "${WAVS[@]/#$WORK/..}" --json) > "$WORK/bundle-classify.json"
    t4=$(now)
    WAV_ARGS=()
    for w in "${WAVS[@]}"; do WAV_ARGS+=(--wav "$w"); done
    # the package at the bundle's mapping (its sha256 checked against the checkpoint; no remapping)
    .venv/bin/python -m ember_neuro.run "$CKPT" --backend lava-sim "${PINNED[@]}" "${WAV_ARGS[@]}" \
        --mapped "$WORK/bundle/model/mapped.npz" ${DATA_ARGS[@]+"${DATA_ARGS[@]}"} --json > "$WORK/package-run.json"
    t5=$(now)
    .venv/bin/python - "$WORK" "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "${PINNED[*]}" <<'PY'
import json, pathlib, sys
work = pathlib.Path(sys.argv[1])
t0, t1, t2, t3, t4, t5 = map(float, sys.argv[2:8])
a = json.loads((work / "bundle-classify.json").read_text())["clips"]
b = json.loads((work / "package-run.json").read_text())["clips"]
size = sum(p.stat().st_size for p in (work / "bundle").rglob("*") if p.is_file())
print(f"check_bundle: bundle {size / 1e6:.2f} MB built in {t1 - t0:.1f} s; Python 3.10 venv {t2 - t1:.1f} s; "
      f"verify.py {t3 - t2:.1f} s; classify.py ({len(a)} clips) {t4 - t3:.1f} s; ember_neuro.run {t5 - t4:.1f} s "
      f"({sys.argv[8]})")
name = lambda c: pathlib.Path(c["wav"]).name
differ = [(name(x), x["label"], y["label"]) for x, y in zip(a, b) if x["label"] != y["label"] or name(x) != name(y)]
if len(a) != len(b) or differ:
    print(f"check_bundle: FAILED, classify.py and ember_neuro.run --wav differ on {len(differ)} of {len(a)} "
          f"clips: {differ[:4]}", file=sys.stderr)
    sys.exit(1)
right = sum(pathlib.Path(c["wav"]).name.split("-")[0] == c["label"] for c in a)
print(f"check_bundle: classify.py == ember_neuro.run --wav on {len(a)} testing clips "
      f"({right} of them the spoken word): {[c['label'] for c in a]}")
PY
    exit 0
fi

(cd "$WORK/bundle" && "$VPY" generate.py --greedy --tokens "$TOKENS" --prompt "$PROMPT" --json) \
    > "$WORK/bundle-generate.json"
t4=$(now)
.venv/bin/python -m ember_neuro.run "$CKPT" --backend lava-sim "${WINDOW[@]}" --greedy \
    --tokens "$TOKENS" --prompt "$PROMPT" ${DATA_ARGS[@]+"${DATA_ARGS[@]}"} --json > "$WORK/package-run.json"
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
