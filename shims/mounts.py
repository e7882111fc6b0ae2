"""Mount options for building a container's filesystem.

Owns: turning "ro,nosuid,size=64m" into mount flags plus fs data, by the one table of
option words (`pallet.shim.api.mountflags`, the daemon's too; mount points are opened
inside the root by `pallet.shim.api.inroot`). Must not: mount anything, or know which
paths to mask (the daemon's spec says).
"""

from __future__ import annotations

from pallet.shim.api.mountflags import FLAGS, PROPAGATION


def parse_options(options: tuple[str, ...]) -> tuple[int, int, str]:
    """Return (mount flags, propagation flags, fs-specific data)."""
    flags, propagation, data = 0, 0, []
    for option in options:
        if option in FLAGS:
            clear, flag = FLAGS[option]
            flags = flags & ~flag if clear else flags | flag
        elif option in PROPAGATION:
            propagation |= PROPAGATION[option]
        else:
            data.append(option)
    return flags, propagation, ",".join(data)
