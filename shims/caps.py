"""Linux capability names.

Owns: mapping "CAP_CHOWN"-style names to bit numbers. Must not: call the kernel
(`pallet.shim.identity` does), or hold a default set: the daemon's spec names every
capability a process keeps, and none named means none.
"""

from __future__ import annotations

from pallet.shim.api.capnames import CAPABILITY_NUMBERS
from pallet.v1.errors import InvalidArgument

# The table is the shim API's (the daemon's capability checks read it too).
NUMBERS = CAPABILITY_NUMBERS


def mask_of(names: tuple[str, ...]) -> int:
    """The bit mask for `names` ("CAP_CHOWN" or "CHOWN"); unknown names are rejected."""
    mask = 0
    for name in names:
        short = name.upper().removeprefix("CAP_")
        if short not in NUMBERS:
            raise InvalidArgument(f"unknown capability {name!r}")
        mask |= 1 << NUMBERS[short]
    return mask


def last_cap() -> int:
    """The highest capability number this kernel knows (bounding-set drops go up to it)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return max(NUMBERS.values())
