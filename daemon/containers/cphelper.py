"""The cp helper: `python -m pallet.daemon.containers.cphelper REQUEST_JSON`, one per copy.

Owns: getting a directory fd of a container's root as the container sees it, and running
one cp operation there (`stat`, `get`: a tar on stdout, `put`: a tar from stdin), with its
reports as JSON lines on stderr (`{"stat": ...}`, `{"ready": true}`, `{"done": ...}` or
`{"error": {"code", "message"}}`). Must not: import anything of pallet but the error tree
and the cp modules (it starts for every copy), or outlive palletd.

The root, by the container's state (palletd holds the container's lock for the copy, so
the state cannot change under it: no start while a stopped container's layer is mounted
here, no second copy):
* running: /proc/<init pid>/root, after checking through the same /proc/<pid> fd that
  the process is in the container's cgroup (a pid reused since is refused). That is the
  container's own mount namespace: its volumes, binds and tmpfs are there as it sees them.
* created or exited: a mount namespace of this process's own (unshare(CLONE_NEWNS), `/`
  made private so nothing propagates to the host), with the container's overlay mounted
  on its (otherwise empty) `rootfs/` — read-write from its upper and work directories for
  `put`, read-only with the upper directory as the top lower layer for `stat`/`get` — and
  its volumes' data directories and binds bound at their targets (read-only ones
  remounted read-only). tmpfs mounts are not made: in a stopped container they do not
  exist (what is copied to such a path lands in the layer, under the tmpfs of a run).

Why a process, and not palletd itself: a private mount namespace needs a process to
own it, and whatever this one mounted goes when it dies — the kernel tears a namespace
down with its last process, kill -9 included, and palletd holds no fd into it. The
helper asks for SIGTERM when palletd dies (PR_SET_PDEATHSIG), so a `put` cut short by a
palletd killed mid-copy still removes what it created before it exits (a kill -9 of the
helper itself leaves what it had made so far, whole files only: see `cpextract`). The
file work is off palletd's event loop and its interpreter lock, too.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import signal
import stat
import sys
from collections.abc import Mapping
from typing import Any

from pallet.daemon.containers.cparchive import PathInfo, resolve_source, stat_path, write_archive
from pallet.daemon.containers.cpextract import FULL_ERRNOS, ExtractOptions, Extractor
from pallet.shim.api.inroot import IN_ROOT, make_dirs, openat2, clean_parts
from pallet.v1.errors import FailedPrecondition, Internal, PalletError, ResourceExhausted

CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
PR_SET_PDEATHSIG = 1
PIPE_SIZE = 1 << 20

_libc = ctypes.CDLL(None, use_errno=True)


class Stopped(Exception):
    """SIGTERM: palletd went away (or gave up on the copy)."""


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    def enc(s: str | None) -> bytes | None:
        return None if s is None else s.encode()

    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {target}")


def report(message: Mapping[str, Any]) -> None:
    os.write(2, (json.dumps(message) + "\n").encode())


def _info(info: PathInfo) -> dict[str, Any]:
    return {"name": info.name, "size": info.size, "mode": info.mode,
            "mtime_ns": info.mtime_ns, "link_target": info.link_target}


# ---- the root -----------------------------------------------------------------------------


def running_root(pid: int, cgroup: str, container: str) -> int:
    try:
        proc = os.open(f"/proc/{pid}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FailedPrecondition(f"container {container} is not running (its init is gone)") from None
    try:
        fd = os.open("cgroup", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
        try:
            lines = os.read(fd, 1 << 16).decode(errors="replace").splitlines()
        finally:
            os.close(fd)
        if not any(line.rstrip().endswith("/" + cgroup) for line in lines):
            raise FailedPrecondition(f"container {container} is not running (pid {pid} is another process)")
        return os.open("root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=proc)
    except ProcessLookupError:
        raise FailedPrecondition(f"container {container} is not running (its init is gone)") from None
    finally:
        os.close(proc)


def private_root(spec: Mapping[str, Any], writable: bool) -> int:
    """Mount the stopped container's filesystem in a mount namespace of our own."""
    _check(_libc.unshare(ctypes.c_int(CLONE_NEWNS)), "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    target, layers = spec["target"], list(spec["layers"])
    upper, work = spec["upper"], spec["work"]
    if not layers:
        raise FailedPrecondition("the container has no filesystem (its image is gone)")
    if writable:
        _mount("overlay", target, "overlay", 0,
               f"lowerdir={':'.join(layers)},upperdir={upper},workdir={work}")
    else:
        lowers = [upper, *layers] if os.path.isdir(upper) else layers
        if len(lowers) == 1:  # overlayfs wants two: one layer is its own view
            _mount(lowers[0], target, None, MS_BIND, None)
            _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)
        else:
            _mount("overlay", target, "overlay", MS_RDONLY, f"lowerdir={':'.join(lowers)}")
    root = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    for m in spec.get("mounts", ()):
        _bind(root, m, writable)
    return root


def _bind(root: int, m: Mapping[str, Any], writable: bool) -> None:
    source, target = m["source"], m["target"]
    try:
        is_dir = stat.S_ISDIR(os.stat(source).st_mode)
    except OSError:
        return  # a bind source gone: nothing there to copy to or from
    try:
        fd = openat2(root, target.lstrip("/"), os.O_PATH, IN_ROOT)
    except FileNotFoundError:
        if not writable:
            return  # no mount point in a read-only view: nothing is seen there
        fd = _make_mount_point(root, target, is_dir)
    try:
        _mount(source, f"/proc/self/fd/{fd}", None, MS_BIND | MS_REC, None)
    finally:
        os.close(fd)
    fd = openat2(root, target.lstrip("/"), os.O_PATH, IN_ROOT)  # now the mount's root
    try:
        where = f"/proc/self/fd/{fd}"
        _mount(None, where, None, MS_REC | MS_PRIVATE, None)
        if m.get("read_only"):
            _mount(None, where, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)
    finally:
        os.close(fd)


def _make_mount_point(root: int, target: str, is_dir: bool) -> int:
    """Make a missing mount point, as the shim would at the next start."""
    parts = clean_parts(target) or ()
    made: list[tuple[str, ...]] = []
    parent = make_dirs(root, parts if is_dir else parts[:-1], made)
    try:
        if not is_dir:
            fd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o644, dir_fd=parent)
            os.close(fd)
    finally:
        os.close(parent)
    return openat2(root, target.lstrip("/"), os.O_PATH, IN_ROOT)


def open_root(request: Mapping[str, Any]) -> int:
    spec = request["root"]
    if "pid" in spec:
        return running_root(int(spec["pid"]), spec["cgroup"], request["container"])
    return private_root(spec, writable=request["op"] == "put")


# ---- the operations -----------------------------------------------------------------------


def _put(root: int, request: Mapping[str, Any]) -> dict[str, Any]:
    options = ExtractOptions(bool(request.get("copy_uid_gid")),
                             bool(request.get("no_overwrite_dir_non_dir", True)))
    extractor = Extractor(root, request["path"], request["container"], options)
    extractor.check_destination()
    report({"ready": True})
    try:
        # Unbuffered: the extractor reads the pipe itself (files' content in 32 KiB
        # pieces, see cptar); it reads on to the upload's end (the tar's padding, what
        # follows).
        stdin = os.fdopen(0, "rb", buffering=0, closefd=False)
        result = extractor.extract(stdin)
        commit = os.read(int(request["commit_fd"]), 64)
        if commit.strip() != b"commit":
            raise FailedPrecondition("the upload did not finish: nothing was copied")
    except BaseException:
        extractor.rollback()
        raise
    return {"entries": result.entries, "size": result.size}


def run(request: Mapping[str, Any]) -> None:
    root = open_root(request)
    op, path, container = request["op"], request["path"], request["container"]
    if op == "stat":
        report({"stat": _info(stat_path(root, path, container))})
    elif op == "get":
        source = resolve_source(root, path, container, bool(request.get("follow_link")))
        report({"stat": _info(source.info)})
        size = write_archive(source, 1)
        report({"done": {"size": size}})
    elif op == "put":
        report({"done": _put(root, request)})
    else:
        raise Internal(f"cp helper: unknown operation {op!r}")


def _stop(signum: int, frame: object) -> None:
    raise Stopped()


def _widen_pipes() -> None:
    """A pipe holds 64 KiB by default: palletd and this helper would take turns every
    64 KiB of a gigabyte. 1 MiB (the default pipe-max-size) on the tar's pipe."""
    for fd in (0, 1):
        try:
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # above /proc/sys/fs/pipe-max-size: the default works, only slower


def main(argv: list[str]) -> int:
    request = json.loads(argv[1])
    _widen_pipes()
    signal.signal(signal.SIGTERM, _stop)
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(request["parent_pid"]):
        return 1  # palletd died before we asked to hear of it
    try:
        run(request)
    except PalletError as e:
        report({"error": {"code": e.code, "message": e.message}})
        return 1
    except Stopped:
        report({"error": {"code": "ABORTED", "message": "the copy was stopped; nothing was copied"}})
        return 1
    except BrokenPipeError:
        return 1  # the reader went away (a cp out whose client left)
    except OSError as exc:
        if exc.errno in FULL_ERRNOS:
            error: PalletError = ResourceExhausted(f"no space left on the device: {exc}")
        elif exc.errno == errno.EPIPE:
            return 1
        else:
            error = Internal(f"cp failed: {exc}")
        report({"error": {"code": error.code, "message": error.message}})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
