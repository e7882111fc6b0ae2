"""Fault injection: a named point where palletd kills itself, for crash-safety tests.

Owns: `CrashPoints`, built from `PALLET_CRASH_AT=<operation>:<step>[,...]` by `main`, and
handed to the components whose multi-step operations tests cut short. Must not: do anything
when no point is armed (the default), or be armed by anything but the environment.

`hit("create", "record")` at an armed point SIGKILLs the daemon on the spot, as `kill -9`
from outside would: no `finally`, no atexit, no flushing, so what is on disk is exactly what
a real crash there would leave.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Protocol

from pallet.v1.errors import InvalidArgument


class CrashHook(Protocol):
    """A component's view: announce that it reached `operation`'s `step`."""

    def hit(self, operation: str, step: str) -> None: ...


class CrashPoints:
    """The armed `operation:step` names; `hit` at one of them is a kill -9 of palletd."""

    __slots__ = ("_armed",)

    def __init__(self, spec: str = "") -> None:
        self._armed = frozenset(p.strip() for p in spec.split(",") if p.strip())
        for point in self._armed:
            if point.count(":") != 1:
                raise InvalidArgument(
                    f"PALLET_CRASH_AT: crash point {point!r}: use <operation>:<step>"
                )

    @property
    def armed(self) -> frozenset[str]:
        return self._armed

    def hit(self, operation: str, step: str) -> None:
        if f"{operation}:{step}" not in self._armed:
            return
        sys.stderr.write(f"palletd: crash point {operation}:{step} reached: SIGKILL\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


NO_CRASHES = CrashPoints()
