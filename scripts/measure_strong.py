"""Measure the bars of the strong-gate checkpoints with the package's own CLIs; print a Markdown
report with every command, and write the raw JSON.

    .venv/bin/python scripts/measure_strong.py [--out runs/strong-bars.json] [--only lif-learnable]
        [--configs 1:uniform 4:log] [--skip-validate]

Per checkpoint: the swing summary (inspect), per-unit exact worst case at T = 8, 16, 32, 64
with Lava fixed point against the emulator (map --target lava-sim), the model at T = 32 for
each N (run --eval, emulator; temporal-lif in rate mode), temporal-lif's hard mode, a
lava-sim generation, and validate's wall time.  Nothing here is a test: it is the record.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CKPTS = ROOT / "ember_neuro" / "checkpoints"
VARIANTS = ("lif-learnable", "lif-fixed", "lif-refractory", "temporal-lif", "cfc-lif")
SLACK = 0.002  # the per-unit bar: exact worst case <= 1/(2NT) + SLACK


def cli(*args: str) -> tuple[dict, float, str]:
    cmd = [sys.executable, "-m", *args]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    secs = time.time() - t0
    shown = "python -m " + " ".join(shlex.quote(a) for a in args)
    if r.returncode not in (0, 1):
        raise SystemExit(f"{shown} failed ({r.returncode}): {r.stderr.strip()[-400:]}")
    return json.loads(r.stdout), secs, shown


def measure(variant: str, configs: list[tuple[int, str]], validate: bool) -> dict:
    ck = str((CKPTS / f"{variant}-strong.pt").relative_to(ROOT))
    out: dict = {"checkpoint": ck, "commands": []}
    d, _, cmd = cli("ember_neuro.inspect", ck, "--json")
    out["commands"].append(cmd)
    out["val_loss"] = d["val_loss"]
    out["swing"] = {k: d["swing"][k] for k in ("units", "strong", "strong_fraction", "swing_quantiles")}
    out["per_unit"] = {}
    for t in (8, 16, 32, 64):
        d, secs, cmd = cli("ember_neuro.map", ck, "--target", "lava-sim", "-T", str(t), "-N", "1",
                           "--levels", "uniform", "--json")
        out["commands"].append(cmd)
        worst = max(u["fixed_worst_case_error"] for u in d["heads"])
        bound = 1.0 / (2 * t)
        out["per_unit"][t] = {"worst": worst, "bar": bound + SLACK, "within": worst <= bound + SLACK,
                              "units": len(d["heads"]), "lava_equals_emulator": d["emulator_bit_exact"],
                              "by_group": d["bit_exact_by_group"], "saturated": d["saturated"],
                              "seconds": round(secs, 1)}
    out["model"] = {}
    for n, levels in configs:
        d, secs, cmd = cli("ember_neuro.run", ck, "--backend", "emulator", "-T", "32", "--neurons-per-gate",
                           str(n), "--levels", levels, "--eval", "--json")
        out["commands"].append(cmd)
        key = f"N={n} {levels}"
        out["model"][key] = {k: d[k] for k in ("rel_delta", "top1_agreement", "kl_float_hybrid", "tokens",
                                               "val_loss_float", "val_loss_hybrid")}
        out["model"][key]["passes"] = abs(d["rel_delta"]) <= 1e-3 and d["top1_agreement"] >= 0.995
    if variant == "temporal-lif":
        d, _, cmd = cli("ember_neuro.run", ck, "--backend", "emulator", "-T", "32", "--neurons-per-gate", "8",
                        "--levels", "auto", "--temporal", "hard", "--eval", "--json")
        out["commands"].append(cmd)
        out["hard"] = {k: d.get(k) for k in ("rel_delta", "top1_agreement", "mlp_skip_fraction",
                                             "flops_saved_fraction", "mlp_flops_saved_per_token")}
    d, secs, cmd = cli("ember_neuro.run", ck, "--backend", "lava-sim", "-T", "32", "-N", "8",
                       "--levels", "auto", "--tokens", "40", "--greedy", "--json")
    out["commands"].append(cmd)
    out["lava_generation"] = {"text": d["text"], "tokens_per_s": d["tokens_per_s"], "seconds": round(secs, 1)}
    if validate:
        d, secs, cmd = cli("ember_neuro.validate", ck, "-T", "32", "-N", "1", "--levels", "uniform", "--json",
                           "--force", "--out", f"runs/validate-{variant}-strong")
        out["commands"].append(cmd)
        out["validate"] = {"passed": d["passed"], "failures": d["failures"], "seconds": round(secs, 1),
                           "agreement": d["agreement"]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/strong-bars.json")
    ap.add_argument("--only", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--configs", nargs="*", default=["1:uniform", "8:uniform", "4:auto", "8:auto"],
                    help="N:levels pairs evaluated at T = 32")
    ap.add_argument("--skip-validate", action="store_true")
    args = ap.parse_args()
    results = {}
    for v in args.only:
        print(f"measuring {v} ...", file=sys.stderr)
        configs = [(int(c.split(":")[0]), c.split(":")[1]) for c in args.configs]
        results[v] = measure(v, configs, not args.skip_validate)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))
    for v, r in results.items():
        s = r["swing"]
        print(f"\n### {v}  (val loss {r['val_loss']:.4f}; swing >= 0.25: {s['strong']}/{s['units']} units)")
        print("| T | worst | bar | within | Lava = emulator |\n|---|---|---|---|---|")
        for t, u in r["per_unit"].items():
            print(f"| {t} | {u['worst']:.5f} | {u['bar']:.5f} | {u['within']} "
                  f"| {u['lava_equals_emulator']} |")
        print("| T = 32 | rel. delta | top-1 | passes |\n|---|---|---|---|")
        for n, m in r["model"].items():
            print(f"| {n} | {m['rel_delta']:+.2e} | {m['top1_agreement']:.4%} | {m['passes']} |")
        if "hard" in r:
            h = r["hard"]
            print(f"hard mode: rel {h['rel_delta']:+.3f}, top-1 {h['top1_agreement']:.2%}, MLP skipped "
                  f"{h['mlp_skip_fraction']:.2%}, FLOPs saved {h['flops_saved_fraction']:.2%}")
        g = r["lava_generation"]
        print(f"lava-sim generation: {g['tokens_per_s']:.1f} tokens/s: {g['text']!r}")
        if "validate" in r:
            print(f"validate: passed {r['validate']['passed']} in {r['validate']['seconds']} s")
        print("commands:\n" + "\n".join(f"    {c}" for c in r["commands"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
