"""File operations on a cgroup filesystem, shared by the v1 and v2 managers.

Owns: writing and reading cgroup interface files with errors that name the file and the
reason, listing and signalling the processes of a cgroup subtree, and removing a cgroup
subtree while the kernel lets go of its last processes. Must not: know which cgroup
version it works on, or swallow an error other than the ones documented here.

A cgroup is a directory of a cgroup filesystem; the kernel makes its interface files
(`cgroup.procs`, `memory.max`, ...) and removes them with the directory (rmdir succeeds on
a cgroup with no processes and no child cgroups, files and all).
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Callable

from pallet.v1.errors import FailedPrecondition

#: How a cgroup directory is made and removed. The kernel fills a new cgroup with its
#: interface files and removes them with it; unit tests pass functions that do the same
#: to a fake tree in a temporary directory.
Mkdir = Callable[[str], None]
Rmdir = Callable[[str], None]


class CgroupError(FailedPrecondition):
    """A cgroup operation the host refused: names the path and the kernel's reason."""


def error(action: str, path: str, exc: OSError) -> CgroupError:
    return CgroupError(f"cgroup: cannot {action} {path}: {exc.strerror or exc}")


def write_raw(path: str, value: str) -> None:
    """One write(2) of `value` to an existing interface file; OSError as the kernel said."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def write(path: str, value: str, action: str) -> None:
    """`write_raw`, with a refusal raised as CgroupError naming `action` and `path`."""
    try:
        write_raw(path, value)
    except OSError as exc:
        raise error(action, path, exc) from None


def join(path: str, pid: int) -> bool:
    """Move `pid` into the cgroup at `path`; False when the process is gone already (its
    exit is reported through its own channel, not as a cgroup error)."""
    file = os.path.join(path, "cgroup.procs")
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(pid).encode())
        finally:
            os.close(fd)
    except ProcessLookupError:
        return False
    except OSError as exc:
        raise error(f"move process {pid} into", file, exc) from None
    return True


def makedirs(path: str, mkdir: Mkdir, rmdir: Rmdir) -> list[str]:
    """Make the cgroup `path` and missing parents; return those made, outermost first.
    On failure, what it made is removed again."""
    missing = []
    current = path
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    made: list[str] = []
    try:
        for directory in reversed(missing):
            try:
                mkdir(directory)
            except FileExistsError:
                if not os.path.isdir(directory):
                    raise CgroupError(f"cgroup: cannot create {directory}: a file is in the way") from None
                continue
            except OSError as exc:
                raise error("create", directory, exc) from None
            made.append(directory)
    except BaseException:
        undo(made, rmdir)
        raise
    return made


def undo(made: list[str], rmdir: Rmdir) -> None:
    """Remove the directories a failed create made (as `makedirs` listed them), innermost
    first, each alone: a parent another container's cgroup moved into meanwhile stays.
    Called while an error propagates, so a refusal here is not raised over it."""
    for directory in reversed(made):
        try:
            rmdir(directory)
        except OSError:
            pass


def read(path: str, action: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        raise error(action, path, exc) from None


def cgroup_dirs(path: str) -> list[str]:
    """`path` and every cgroup below it, deepest first (the order rmdir needs)."""
    if not os.path.isdir(path):
        return []
    found = [root for root, _, _ in os.walk(path)]
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def procs_here(path: str) -> list[int]:
    """Processes in the cgroup at `path` itself (not below); none when it does not exist."""
    file = os.path.join(path, "cgroup.procs")
    try:
        with open(file) as f:
            text = f.read()
    except FileNotFoundError:
        return []  # removed meanwhile
    except OSError as exc:
        raise error("list the processes in", file, exc) from None
    try:
        return [int(word) for word in text.split()]
    except ValueError:
        raise CgroupError(f"cgroup: {file} is not a list of pids: {text[:80]!r}") from None


def procs(path: str) -> list[int]:
    """Processes in the cgroup at `path` and below; none when it does not exist."""
    return sorted({pid for directory in cgroup_dirs(path) for pid in procs_here(directory)})


def signal_all(pids: list[int], signum: int) -> list[int]:
    """Send `signum` to each pid; return those that were there to get it."""
    hit = []
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            continue  # exited meanwhile
        hit.append(pid)
    return hit


def wait_until(check: Callable[[], bool], timeout: float, retry: Callable[[], None] | None = None) -> bool:
    """Poll `check` (every millisecond, then every 10) until it holds or `timeout` passes;
    `retry` runs between polls (v1's freezer wants its state written again). Blocking, and
    bounded: the kernel freezes or thaws a cgroup in milliseconds."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.01)
        if retry is not None:
            retry()
    return True


def remove(paths: list[str], timeout: float, rmdir: Rmdir = os.rmdir) -> list[str]:
    """Remove each cgroup subtree; return the cgroups still there (busy) when `timeout` ran
    out. A killed process leaves its cgroup only once the kernel has reaped it, so EBUSY
    for a moment after a kill is normal; any other refusal raises CgroupError."""
    deadline = time.monotonic() + timeout
    left = list(paths)
    while True:
        busy = []
        for path in left:
            for directory in cgroup_dirs(path):
                try:
                    rmdir(directory)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                        raise error("remove", directory, exc) from None
                    busy.append(path)
                    break
        left = busy
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.01)
