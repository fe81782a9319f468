"""Count how a command's call path moves between the package's modules (docs/architecture.md).

    python scripts/module_hops.py map CKPT --target emulator -T 8 --grid-only
    python scripts/module_hops.py run CKPT --backend emulator --tokens 5

Runs ``python -m ember_neuro.<command>`` in process under ``sys.setprofile`` and records every
call from a function of one package module into a function of another (import-time code
excluded).  Reports the modules touched, the distinct module-to-module hops (A -> B pairs),
the distinct cross-module call sites (caller function -> callee function) and, per module,
how many distinct callers from other modules enter it (a hub's fan-in), and how many times the
expensive steps ran (loading the checkpoint, reading the text, calibrating: a path that doubles
back repeats them).  The same script measured before and after a change gives comparable numbers.
"""

from __future__ import annotations

import collections
import importlib
import json
import sys

PACKAGE_DIRS = {"ember_neuro", "mappers", "processes", "export"}
# counted wherever they are defined, except a gate kind's own `calibrate` (scales -> entries)
STEPS = ("load_checkpoint", "load_text", "calibrate")


def _module_of(filename: str) -> str | None:
    parts = filename.replace("\\", "/").split("/")
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in PACKAGE_DIRS and ".venv" not in parts and "site-packages" not in parts:
            rel = parts[i:]
            rel[-1] = rel[-1].removesuffix(".py")
            if rel[0] != "ember_neuro":
                rel = ["ember_neuro", *rel]
            return ".".join(p for p in rel if p != "__init__")
    return None


def trace(command: str, argv: list[str]) -> dict:
    calls: set[tuple[str, str]] = set()
    steps: collections.Counter = collections.Counter()

    def profile(frame, event, arg):  # noqa: ANN001 - sys.setprofile's signature
        if event != "call" or frame.f_code.co_name == "<module>":
            return
        callee = _module_of(frame.f_code.co_filename)
        if callee is None:
            return
        if frame.f_code.co_name in STEPS and not callee.startswith("ember_neuro.kinds."):
            steps[frame.f_code.co_name] += 1
        caller = frame.f_back
        while caller is not None and _module_of(caller.f_code.co_filename) is None:
            caller = caller.f_back
        if caller is None or caller.f_code.co_name == "<module>":
            return
        src = _module_of(caller.f_code.co_filename)
        if src != callee:
            calls.add((f"{src}:{caller.f_code.co_name}", f"{callee}:{frame.f_code.co_name}"))

    main = importlib.import_module(f"ember_neuro.{command}").main
    sys.setprofile(profile)
    try:
        code = main(argv)
    finally:
        sys.setprofile(None)
    hops = {(a.split(":")[0], b.split(":")[0]) for a, b in calls}
    fan_in = collections.Counter(b for _, b in hops)
    modules = sorted({m for h in hops for m in h})
    return {"command": command, "argv": argv, "exit": code, "modules": len(modules), "hops": len(hops),
            "call_sites": len(calls), "steps": dict(steps), "fan_in": dict(fan_in.most_common(8)),
            "module_list": modules}


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    result = trace(sys.argv[1], sys.argv[2:])
    print(json.dumps(result, indent=1), file=sys.stderr if "--json" in sys.argv else sys.stdout)
