"""Unix socket paths that may be longer than the kernel's 108-byte sun_path.

Owns: the path layout of the run root (launcher socket, shim sockets) and a way to bind
or connect to a long path through `/proc/self/fd/<dirfd>/<name>`, and whether anything
answers on one (`answers`: the liveness probe of the shim and of `pallet-shim delete`).
Must not: create the sockets others listen on; callers (shim, launcher, daemon client)
own them.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

_SUN_PATH_MAX = 107  # 108 bytes including the terminating NUL

LAUNCHER_SOCKET = "shim-launcher.sock"
LAUNCHER_LOCK = "shim-launcher.lock"
LAUNCHER_PID = "shim-launcher.pid"
LAUNCHER_LOG = "shim-launcher.log"
SHIMS_DIR = "shims"


def shim_socket(run_root: str, container_id: str) -> str:
    return os.path.join(run_root, SHIMS_DIR, f"{container_id}.sock")


def launcher_socket(run_root: str) -> str:
    return os.path.join(run_root, LAUNCHER_SOCKET)


@contextmanager
def usable(path: str) -> Iterator[str]:
    """Yield a path bind()/connect() accept for `path` (a /proc alias when too long)."""
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        yield path
        return
    dir_fd = os.open(os.path.dirname(path) or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{dir_fd}/{os.path.basename(path)}"
    finally:
        os.close(dir_fd)


def answers(path: str) -> bool:
    """Whether a process listens on the unix socket at `path` (a connect succeeds)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with usable(path) as reachable:
            probe.connect(reachable)
        return True
    except OSError:
        return False
    finally:
        probe.close()
