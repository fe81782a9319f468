"""Make lava-nc 0.10.0 importable on Python 3.11 (idempotent).

Lava 0.10.0 declares eight dataclass fields in
``lava/magma/compiler/var_model.py`` as ``x: ByteEncoder = ByteEncoder()``.
Python 3.11 rejects a mutable (unhashable) dataclass default at import time
(``ValueError: mutable default ... use default_factory``).  The fix is the one
the error asks for: ``field(default_factory=ByteEncoder)``.  With it Lava's own
test suite passes on 3.11.  On Python 3.10 the file is left untouched.

Usage: python scripts/patch_lava.py [--check]   (exit 1 with --check if unpatched)
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

OLD_DEFAULT = re.compile(r":\s*ByteEncoder\s*=\s*ByteEncoder\(\)")
NEW_DEFAULT = ": ByteEncoder = field(default_factory=ByteEncoder)"
OLD_IMPORT = "from dataclasses import dataclass, InitVar\n"
NEW_IMPORT = "from dataclasses import dataclass, InitVar, field\n"


def var_model_path() -> Path:
    spec = importlib.util.find_spec("lava")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("patch_lava: lava-nc is not installed in this environment")
    return Path(list(spec.submodule_search_locations)[0]) / "magma" / "compiler" / "var_model.py"


def patched_text(text: str) -> str:
    text = OLD_DEFAULT.sub(NEW_DEFAULT, text)
    if "field(default_factory=ByteEncoder)" in text and OLD_IMPORT in text:
        text = text.replace(OLD_IMPORT, NEW_IMPORT, 1)
    return text


def main(argv: list[str]) -> int:
    path = var_model_path()
    text = path.read_text()
    new = patched_text(text)
    if "--check" in argv:
        ok = new == text
        print(f"patch_lava: {path} is {'patched' if ok else 'NOT patched'}")
        return 0 if ok else 1
    if new == text:
        print(f"patch_lava: already patched: {path}")
        return 0
    tmp = path.with_suffix(".py.ember-tmp")
    tmp.write_text(new)
    tmp.replace(path)
    n = len(OLD_DEFAULT.findall(text))
    print(f"patch_lava: patched {n} ByteEncoder defaults in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
