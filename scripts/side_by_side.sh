#!/usr/bin/env bash
# Generation speed of this checkout against an older revision, in one sitting, alternating:
#   scripts/side_by_side.sh 085a82b        (the code before the chip-side window)
# For T, N in (32, 8) and (8, 32), twice each: the old revision's `run --backend lava-sim`, this
# checkout's (chip-side window) and this checkout's --bridge per-step; 100 greedy tokens from the
# shipped lif-learnable checkpoint with --levels auto.  Prints tokens/s and whether the texts match.
set -euo pipefail
rev=${1:?usage: scripts/side_by_side.sh REV}
here=$(cd "$(dirname "$0")/.." && pwd)
py=$here/.venv/bin/python
ck=$here/ember_neuro/checkpoints/lif-learnable-strong.pt
old=$(mktemp -d)/old
out=$(mktemp -d)
trap 'git -C "$here" worktree remove --force "$old" >/dev/null 2>&1 || true' EXIT
git -C "$here" worktree add -f "$old" "$rev" -q
for d in mappers processes export; do ln -s "$old/$d" "$old/ember_neuro/$d"; done  # its package-dir
run() {  # label, python path, args...
  local label=$1 path=$2; shift 2
  (cd "$out" && PYTHONPATH=$path timeout 900 "$py" -m ember_neuro.run "$ck" --backend lava-sim \
     --levels auto --tokens 100 --greedy --json "$@" > "$out/$label.json")
}
for rep in 1 2; do
  for w in "32 8" "8 32"; do
    set -- $w
    run "old_T$1_N$2_$rep" "$old" -T "$1" -N "$2"
    run "chip_T$1_N$2_$rep" "$here" -T "$1" -N "$2"
    run "step_T$1_N$2_$rep" "$here" -T "$1" -N "$2" --bridge per-step
  done
done
"$py" - "$out" <<'PY'
import json, pathlib, sys
rows = {p.stem: json.loads(p.read_text()) for p in sorted(pathlib.Path(sys.argv[1]).glob("*.json"))}
texts = {r["text"] for r in rows.values()}
for name, r in rows.items():
    print(f"{name:18s} {r['tokens_per_s']:7.2f} tokens/s")
print("every text identical:", len(texts) == 1)
PY
