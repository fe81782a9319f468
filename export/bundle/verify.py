"""Verify this INRC bundle: checksums, then the gate network rebuilt in Lava from the saved mapping,
fed the recorded windows, must answer the golden spikes bit for bit.

The rate gates run as chip-side windows (one message in and one out per window, each live
value's spike count summed on chip); their golden traces hold those counts, and a count that
differs is reported as the spikes it is off by.  The hard membrane runs on the per-step network
and is compared spike for spike.  The windows were recorded by the bundle's own run (golden/golden.json):
a greedy generation from validation text, or for a keyword spotter a few validation clips
classified one at a time (golden/clips/) -- one verify.py for both: it replays windows, whatever
produced them.

    python verify.py                 Lava's bit-accurate CPU simulation (Loihi2SimCfg, fixed_pt)
    python verify.py --hw            on a Loihi 2 system (Loihi2HwCfg) with Lava's Loihi 2
                                     profiler loggers (power, execution time, activity, memory);
                                     needs Intel's lava-loihi extension (INRC)
    python verify.py --json          one JSON object on stdout

Exit status: 0 every spike matches; 1 a spike differs (the output says where); 2 the
bundle is damaged (a checksum differs: the file is named); 3 Lava (or, with --hw,
Intel's extension) is not installed here; 4 a Lava run failed (a dead process, a
timeout).  Needs only the packages of requirements.txt (Python 3.10).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def check_sums(root: Path) -> list[str]:
    """Files whose SHA-256 differs from SHA256SUMS (or that are missing); stdlib only."""
    sums = root / "SHA256SUMS"
    if not sums.is_file():
        return ["SHA256SUMS (missing)"]
    bad = []
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        path = root / name
        if not path.is_file():
            bad.append(f"{name} (missing)")
            continue
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != digest:
            bad.append(name)
    return bad


def recorded(header: dict) -> str:
    """What produced the golden windows, in words (text: the prompt; audio: the clips' classes)."""
    if "clips" in header:
        classes = ", ".join(c["predicted"] for c in header["clips"])
        return f"{len(header['clips'])} validation clips classified, one per forward pass ({classes})"
    return f"a greedy generation from {header.get('prompt', '')!r}"


def profiler_loggers(steps: int) -> dict:
    """Lava's Loihi 2 profiler loggers (lava-dl's PilotNet benchmark notebooks), by name."""
    from lava.utils import loihi2_profiler as prof

    return {"power": prof.Loihi2Power(num_steps=steps), "execution_time": prof.Loihi2ExecutionTime(),
            "activity": prof.Loihi2Activity(), "memory": prof.Loihi2Memory()}


def profile_summary(loggers: dict) -> dict:
    """What the loggers measured, as plain numbers (attribute names as in Lava's profiler)."""
    import numpy as np

    keys = {"power": ("total_power", "static_total_power", "vdd_power", "vddm_power", "vddio_power"),
            "execution_time": ("avg_time_per_step",), "activity": ("syn_ops", "dendrite_updates", "axon_out"),
            "memory": ("total_mpds",)}
    out = {}
    for name, logger in loggers.items():
        for key in keys[name]:
            value = getattr(logger, key, None)
            if value is not None:
                out[f"{name}.{key}"] = float(np.mean(value)) if np.ndim(value) else float(value)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python verify.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hw", action="store_true", help="run on Loihi 2 (Loihi2HwCfg + profiler loggers)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds before a stalled Lava run fails")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    bad = check_sums(HERE)
    if bad:
        print(f"error: checksum mismatch, the bundle was modified or damaged: {', '.join(bad)}",
              file=sys.stderr)
        return 2
    if importlib.util.find_spec("lava") is None:
        print("error: Lava is not installed in this environment; install the bundle's environment with "
              "`pip install -r requirements.txt` (Python 3.10)", file=sys.stderr)
        return 3
    sys.path.insert(0, str(HERE / "lib"))
    from ember_neuro.backends.lava import LOIHI2_MISSING, loihi2_available
    from ember_neuro.cli import run_and_report
    from ember_neuro.hybrid import golden
    from ember_neuro.mappers import load_mapped

    if args.hw and not loihi2_available():
        print(f"error: {LOIHI2_MISSING}", file=sys.stderr)
        return 3

    def verify(_: argparse.Namespace) -> dict:
        net = load_mapped(HERE / "model" / "mapped.npz")
        header, traces = golden.load_golden(HERE / "golden" / "golden.npz")
        backend, kwargs, loggers = "lava-sim", {}, {}
        if args.hw:
            steps = sum(golden.trace_steps(t, net) for t in traces.values())
            loggers = profiler_loggers(steps)
            backend, kwargs = "loihi2", {"callbacks": list(loggers.values())}
        t0 = time.perf_counter()
        lava = golden.replay(net, traces, backend, args.timeout, kwargs,
                             progress=None if args.json else lambda n: print(f"  replaying {n} on {backend}",
                                                                             file=sys.stderr))
        reference = golden.replay(net, traces, "numpy")
        return {"backend": backend, "variant": net.variant, "timesteps": header["timesteps"],
                "neurons_per_gate": header["neurons_per_gate"], "checksums": "ok",
                "recorded": recorded(header),
                "lava": [r.as_dict() for r in lava], "numpy_reference": [r.as_dict() for r in reference],
                "exact": all(r.exact for r in lava + reference), "profile": profile_summary(loggers),
                "seconds": round(time.perf_counter() - t0, 2)}

    def report(result: dict) -> None:
        print(f"checksums ok; {result['variant']} gate network, T={result['timesteps']}, "
              f"N={result['neurons_per_gate']}, on {result['backend']}")
        print(f"  golden windows of {result['recorded']}")
        for src in ("lava", "numpy_reference"):
            for r in result[src]:
                first = r["first_mismatch"]
                axes = "(window, lane)" if len(first or ()) == 2 else "(window, step, neuron)"
                where = "" if r["exact"] else f", first at {axes} {tuple(first)}"
                unit = "lanes" if len(first or ()) == 2 or r["steps"] == r["windows"] else "neurons"
                print(f"  {src:15s} {r['path']:16s} {r['windows']:4d} windows x {r['neurons']:6d} {unit}, "
                      f"{r['spikes']:8d} golden spikes: {r['mismatched_spikes']} differ{where}")
        for k, v in result["profile"].items():
            print(f"  {k}: {v:.6g}")
        print("bit-exact: every spike matches the golden trace" if result["exact"] else
              "FAILED: spikes differ from the golden trace")

    return run_and_report(verify, args, "\ninterrupted: Lava stopped", report,
                          lambda result: 0 if result["exact"] else 1)


if __name__ == "__main__":
    sys.exit(main())
