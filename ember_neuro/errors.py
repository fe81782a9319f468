"""What can go wrong, by who must act: the user's input, this machine, or the run itself.

Every CLI maps these to one line on stderr and an exit status (ember_neuro/cli.py):
2 bad input, 3 a backend this machine cannot run, 4 a runtime fault, 130 Ctrl-C.
Torch-free, so the hardware path and the INRC bundle share it.
"""

from __future__ import annotations


class BadInput(ValueError):
    """Something the user gave cannot be used; the message is one line naming it (exit 2)."""


class Unavailable(RuntimeError):
    """A backend or target that cannot run on this machine; the message says why (exit 3)."""


class RuntimeFault(RuntimeError):
    """A run that started and failed: a dead process, a timeout, a full disk (exit 4)."""
