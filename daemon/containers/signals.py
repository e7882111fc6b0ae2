"""Signal names and numbers as users write them ("KILL", "SIGHUP", "9").

Owns: parsing signals. Must not: send them.
"""

from __future__ import annotations

import signal

from pallet.v1.errors import InvalidArgument


def parse_signal(text: str, default: int = signal.SIGKILL) -> int:
    """Return the signal number for "SIGTERM", "term", "15"; refuse anything else."""
    if not text:
        return default
    if text.isdigit():
        num = int(text)
        if 1 <= num < signal.NSIG:
            return num
        raise InvalidArgument(f"invalid signal {text}: numbers go from 1 to {signal.NSIG - 1}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise InvalidArgument(
            f"invalid signal {text}: use a name such as SIGTERM or a number"
        ) from None
