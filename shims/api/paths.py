"""Container paths resolved inside a root, as the container will see them.

Owns: `secure_join`, the one resolution of a path in a container's root filesystem that
both the shim (mount points) and the daemon (copy-up sources) use: `..` and symlinks,
relative or absolute, are followed as if the root were `/`, so nothing resolves outside
it. Must not: open or create anything (callers that must also beat a concurrent change
of the tree open each component themselves).
"""

from __future__ import annotations

import os
import stat

from pallet.v1.errors import InvalidArgument


def secure_join(root: str, path: str) -> str:
    """`root`/`path` with every symlink resolved as if `root` were `/`.

    An image may carry `/etc/hosts -> /host/etc/shadow`; following that naively on the
    host would make a bind mount land outside the container's root.
    """
    pending = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            mode = os.lstat(candidate).st_mode
        except FileNotFoundError:
            resolved.append(part)
            continue
        if not stat.S_ISLNK(mode):
            resolved.append(part)
            continue
        hops += 1
        if hops > 40:
            raise InvalidArgument(f"too many levels of symbolic links in {path}")
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending = [p for p in target.split("/") if p not in ("", ".")] + pending
    return os.path.join(root, *resolved)
