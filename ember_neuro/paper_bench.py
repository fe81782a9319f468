"""The bench's paper-scale section: every command on the paper's configuration, each in a process of
its own, with its wall time and memory peak, and lava-sim generation at T = 8, N = 32 beside the
window the defaults choose.

Why processes: a memory peak is a property of a command as a user runs it, Lava's forked workers
included.  Two numbers per command: the peak of the summed proportional set size (PSS) of the whole
process tree, sampled every 0.1 s (what the machine had to hold; shared pages counted once), and the
largest single process's maximum resident set (``wait4``'s rusage, what ``/usr/bin/time`` reports).
Linux only (``/proc``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PAPER_WINDOW = (8, 32)
SAMPLE_S = 0.1


def _tree(root: int) -> set[int]:
    """The pids of `root` and its descendants (from /proc)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    pids, grew = {root}, True
    while grew:
        more = {p for p, pp in parent.items() if pp in pids} - pids
        grew = bool(more)
        pids |= more
    return pids


def _pss_bytes(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


# A small parent for the command: Linux carries a process's peak RSS across exec, so a command
# forked from the bench itself would report the bench's own size; forked from this it does not.
# It prints the command's rusage peak (KB, its processes' largest) last on stderr, as /usr/bin/time.
SPAWN = """import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"\\n@maxrss {usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measured(cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> dict[str, Any]:
    """Run `cmd` to the end: its seconds, peak tree PSS and largest max RSS (MB), exit code, stdout."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", SPAWN, *cmd], stdout=out, stderr=err, text=True,
                                env=env, cwd=cwd)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _pss_bytes(_tree(proc.pid)))
            time.sleep(SAMPLE_S)
        seconds = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    head, _, rss = stderr.rstrip().rpartition("@maxrss ")
    return {"seconds": round(seconds, 2), "peak_pss_mb": round(peak / 2**20, 1),
            "max_rss_mb": round(int(rss) / 1024, 1) if rss.isdigit() else None,
            "returncode": proc.returncode, "stdout": stdout, "stderr_tail": head[-2000:]}


def paper_scale(tmp: Path, tokens: int, progress: Any = print) -> dict[str, Any]:
    """Build the paper checkpoint, then time and measure every command on it (see the module docstring)."""
    from ember_neuro.models.synthetic import save_paper_checkpoint

    ckpt = str(save_paper_checkpoint(tmp / "paper.pt"))
    env = dict(os.environ, EMBER_NEURO_WINDOWS=str(tmp / "windows"), OMP_NUM_THREADS="1")
    py = [sys.executable, "-m"]
    t, n = (str(v) for v in PAPER_WINDOW)
    pinned = ["-T", t, "-N", n, "--levels", "auto"]
    steps: dict[str, list[str]] = {
        "window_search": [*py, "ember_neuro.map", ckpt, "--target", "emulator", "--grid-only",
                          "--no-bit-exact-check", "--json"],
        "map_T8_N32": [*py, "ember_neuro.map", ckpt, "--target", "lava-sim", *pinned, "--json"],
        "map_default": [*py, "ember_neuro.map", ckpt, "--target", "lava-sim", "--json"],
        "validate_T8_N32": [*py, "ember_neuro.validate", ckpt, *pinned, "--out", str(tmp / "v8"), "--json"],
        "validate_default": [*py, "ember_neuro.validate", ckpt, "--out", str(tmp / "vd"), "--json"],
        "export_T8_N32": [*py, "ember_neuro.export", "inrc", ckpt, *pinned, "--out", str(tmp / "b8"),
                          "--json"],
        "export_default": [*py, "ember_neuro.export", "inrc", ckpt, "--out", str(tmp / "bd"), "--json"],
    }
    out: dict[str, Any] = {"checkpoint": "ember_neuro.models.synthetic (random weights, strong gates)",
                           "commands": {}, "generation": []}
    for name, cmd in steps.items():
        progress(f"  paper {name} ...")
        r = measured(cmd, env)
        if r["returncode"] != 0:
            raise RuntimeError(f"paper {name} failed (exit {r['returncode']}): {r['stderr_tail'][-300:]}")
        record = {k: r[k] for k in ("seconds", "peak_pss_mb", "max_rss_mb")}
        result = json.loads(r["stdout"])
        if name == "window_search":
            out["window_choice"] = result["window_choice"]
        record.update(timesteps=result.get("timesteps"), neurons_per_gate=result.get("neurons_per_gate"))
        out["commands"][name] = record
    for bundle in ("b8", "bd"):
        progress(f"  paper verify.py ({bundle}) ...")
        r = measured([sys.executable, "verify.py", "--json"], env, cwd=str(tmp / bundle))
        if r["returncode"] != 0:
            raise RuntimeError(f"paper verify.py failed: {r['stderr_tail'][-300:]}")
        name = f"verify_{'T8_N32' if bundle == 'b8' else 'default'}"
        out["commands"][name] = {**{k: r[k] for k in ("seconds", "peak_pss_mb", "max_rss_mb")},
                                 "exact": json.loads(r["stdout"])["exact"]}
    choice = out["window_choice"]
    runs = (("T8_N32", pinned, None), ("T8_N32", pinned, "per-step"), ("default", [], None),
            ("default", [], "chip-side"))  # None: the default network (chip-side; per-step at T = 1)
    for label, window, bridge in runs:
        progress(f"  paper generation {label} {bridge or 'default network'} ...")
        asked = ["--bridge", bridge] if bridge else []
        r = measured([*py, "ember_neuro.run", ckpt, "--backend", "lava-sim", *window, *asked,
                      "--tokens", str(tokens), "--greedy", "--json"], env)
        if r["returncode"] != 0:
            raise RuntimeError(f"paper generation failed: {r['stderr_tail'][-300:]}")
        g = json.loads(r["stdout"])
        designs = g.get("designs") or ["?"]
        out["generation"].append({"window": label, "bridge": bridge or f"default ({'/'.join(designs)})",
                                  "asked": bridge, "timesteps": g["timesteps"],
                                  "neurons_per_gate": g["neurons_per_gate"],
                                  "tokens_per_s": g["tokens_per_s"], "peak_pss_mb": r["peak_pss_mb"]})
    out["default_window"] = {"timesteps": choice["timesteps"], "neurons_per_gate": choice["neurons_per_gate"]}
    return out


def paper_ratios(p: dict[str, Any]) -> dict[str, float]:
    """Generation with no window flags against -T 8 -N 32 (each with its default Lava network), and
    against T = 8, N = 32's faster network, measured in one run."""
    rate = {(g["window"], g["asked"]): g["tokens_per_s"] for g in p["generation"]}
    t8 = max(rate[("T8_N32", None)], rate[("T8_N32", "per-step")])
    return {"paper_gen_defaults_vs_T8_N32": rate[("default", None)] / rate[("T8_N32", None)],
            "paper_gen_defaults_vs_best_T8_N32": rate[("default", None)] / t8,
            "paper_gen_default_window_chip_side_vs_T8_N32":
                rate[("default", "chip-side")] / rate[("T8_N32", None)]}


def paper_markdown(p: dict[str, Any]) -> str:
    d = p["default_window"]
    lines = [f"Paper configuration (6 x 6 x 384, block 256, 10.65 M parameters; {p['checkpoint']}); the "
             f"defaults chose T = {d['timesteps']}, N = {d['neurons_per_gate']}.", "",
             "| command (own process) | T | N | seconds | peak PSS, whole tree (MB) | largest max RSS (MB) |",
             "|---|---|---|---|---|---|"]
    for name, r in p["commands"].items():
        lines.append(f"| {name} | {r.get('timesteps', '')} | {r.get('neurons_per_gate', '')} | "
                     f"{r['seconds']:.1f} | {r['peak_pss_mb']:,.0f} | {r['max_rss_mb']:,.0f} |")
    lines += ["", "| lava-sim generation | bridge | T | N | tokens/s | peak PSS (MB) |",
              "|---|---|---|---|---|---|"]
    for g in p["generation"]:
        lines.append(f"| {g['window']} | {g['bridge']} | {g['timesteps']} | {g['neurons_per_gate']} | "
                     f"{g['tokens_per_s']:.2f} | {g['peak_pss_mb']:,.0f} |")
    return "\n".join(lines)
