"""A shim that does not answer: how it looks from /proc, and killing it for `rm -f`.

Owns: reading a process's state letter (`T`: stopped by SIGSTOP, `t`: by a debugger),
telling whether a pid is still the shim of a given container, and SIGKILLing such a shim
together with its container's init. A pid alone proves nothing (pids are reused), so a
shim is recognised by what only it has: it listens on its container's shim socket, which
the kernel lists (with its inode) in /proc/<pid>/net/unix, and one of its descriptors is
that socket. Must not: clean up after the shim (its cgroup and socket are `pallet-shim
delete`'s, through `leftovers`), record anything, or touch a process it cannot prove to
be the shim or that shim's child.

SIGKILL works on stopped processes too. The init dies with its shim anyway (it has
PR_SET_PDEATHSIG), and with the init its pid namespace, so every other process of the
container goes as well; whatever escaped is still in the container's cgroup, which the
delete command empties.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

#: The state letters of a stopped process (SIGSTOP; a debugger's stop): it cannot answer.
STOPPED = frozenset({"T", "t"})
#: How long a SIGKILLed shim may take to be gone (exited: a zombie or reaped).
KILL_WAIT_S = 5.0


def _stat(pid: int) -> str:
    """/proc/<pid>/stat ("" when there is no such process). Read with os calls: every
    request to a shim asks (`ShimClientImpl._check_not_stopped`), and pathlib's read_text
    costs several times as much."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return ""
    try:
        return os.read(fd, 4096).decode(errors="replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


def process_state(pid: int) -> str:
    """The state letter of `pid` in /proc/<pid>/stat ("" when there is no such process)."""
    fields = _stat(pid).rpartition(")")[2].split()
    return fields[0] if fields else ""


def _parent(pid: int) -> int:
    fields = _stat(pid).rpartition(")")[2].split()
    return int(fields[1]) if len(fields) > 1 else 0


def describe_state(pid: int) -> str:
    """A person's words for why `pid` does not answer, from its state letter."""
    state = process_state(pid)
    if state == "T":
        return f"it is stopped (SIGSTOP): `kill -CONT {pid}` resumes it"
    if state == "t":
        return "it is stopped by a debugger"
    if state == "D":
        return "it is blocked in the kernel (D state)"
    if state in ("", "Z", "X"):
        return "it has exited"
    return "it is hung or overloaded"


def _socket_inodes(pid: int, socket_path: str) -> set[int]:
    """Inodes of the unix sockets named `socket_path` in `pid`'s network namespace.

    A path too long for sun_path is bound as /proc/self/fd/<dir>/<name>, which is the
    name the kernel keeps: that form counts too (the name holds the container's id).
    """
    name = "/" + os.path.basename(socket_path)
    inodes: set[int] = set()
    try:
        lines = Path(f"/proc/{pid}/net/unix").read_text().splitlines()[1:]
    except OSError:
        return inodes
    for line in lines:
        fields = line.split(None, 7)  # the path, last, may hold spaces
        if len(fields) < 8:
            continue
        path = fields[7]
        if path == socket_path or (path.startswith("/proc/self/fd/") and path.endswith(name)):
            inodes.add(int(fields[6]))
    return inodes


def is_shim_of(pid: int, socket_path: str) -> bool:
    """Whether `pid` is a live process holding the shim socket at `socket_path`."""
    if pid <= 0 or process_state(pid) in ("", "Z", "X"):
        return False
    inodes = _socket_inodes(pid, socket_path)
    if not inodes:
        return False
    wanted = {f"socket:[{inode}]" for inode in inodes}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                return True
        except OSError:
            continue
    return False


def _kill(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_state(pid) not in ("", "Z", "X"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def kill_shim(socket_path: str, shim_pid: int, init_pid: int) -> list[int]:
    """SIGKILL the shim `shim_pid` (if it is the one listening on `socket_path`) and its
    container's init `init_pid` (if it is that shim's child); return the pids killed.

    Blocking (it waits, bounded, for the shim to be gone): run it off the event loop.
    """
    if not is_shim_of(shim_pid, socket_path):
        return []
    killed = []
    # The init first, while its parent is surely the shim (after the shim, it is reparented).
    if init_pid > 0 and _parent(init_pid) == shim_pid and _kill(init_pid):
        killed.append(init_pid)
    if _kill(shim_pid):
        killed.append(shim_pid)
    if not _wait_gone(shim_pid, KILL_WAIT_S):
        log.warning("a SIGKILLed shim is still there", shim_pid=shim_pid,
                    state=process_state(shim_pid))
    return killed


async def kill_shim_async(socket_path: str, shim_pid: int, init_pid: int) -> list[int]:
    return await asyncio.to_thread(kill_shim, socket_path, shim_pid, init_pid)
