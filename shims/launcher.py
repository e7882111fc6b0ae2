"""The shim fork-server: one long-lived process per run root that forks a shim per container.

Owns: `<run_root>/shim-launcher.sock` (+ .lock, .pid, .log: bounded, `pallet.shim.diaglog`), becoming a daemon on its own
(its own session, outliving palletd), and turning each `spawn` request into a shim by a
double fork, so shims are re-parented away from us and we never hold zombies. A forked
child shares the launcher's already-imported code (copy-on-write), which is why a shim
costs a few MB and a few ms instead of a fresh interpreter. Must not: supervise shims
after forking them, or keep any state about containers.

Requests (`pallet.shim.api.messages`): PingRequest -> PingResponse; SpawnRequest -> the
forked shim itself answers on the same connection, with SpawnResponse once the container
is created or an error, then keeps serving it; LeftoversRequest -> LeftoversResponse
(whether a container has a shim socket or a cgroup left: palletd asks before it runs
`pallet-shim delete`, so a healthy remove starts no interpreter; only the shim's code
knows the cgroup layout).
"""

from __future__ import annotations

import ctypes
import fcntl
import gc
import os
import socket
import sys
from typing import NoReturn

from pallet.v1.errors import Internal, InvalidArgument, PalletError
from pallet.shim.api.spec import CONFIG_FILE, ShimSpec
from pallet.shim.api import messages, sockpath, wire
from pallet.shim.api.messages import (
    LeftoversRequest,
    LeftoversResponse,
    PingRequest,
    PingResponse,
    Request,
    SpawnRequest,
    SpawnResponse,
)
from pallet.shim import diaglog
from pallet.shim.cgroups import open_cgroup
from pallet.shim.processes import log_exception
from pallet.shim.server import Shim
from pallet.shim.api.files import read_spec
from pallet.shim.warmup import warm_up
from pallet.shim.syscalls import PR_SET_CHILD_SUBREAPER, LibcSyscalls

_REQUEST_TIMEOUT = 5.0


def set_process_name(name: str) -> None:
    """Set the name `ps -o comm` shows (the command line stays the launcher's).

    Written to /proc/self/comm (what prctl(PR_SET_NAME) sets), not through ctypes: a
    ctypes call with a string argument goes through ctypes objects of the launcher's
    that each shim would then copy (0.02-0.08 MiB of PSS per shim, 20 running).
    """
    fd = os.open("/proc/self/comm", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, name.encode()[:15])
    finally:
        os.close(fd)


def run(run_root: str, foreground: bool = False) -> int:
    """Start the launcher for `run_root`; return 0 once it serves (or one already does)."""
    run_root = os.path.abspath(run_root)
    os.makedirs(os.path.join(run_root, sockpath.SHIMS_DIR), mode=0o711, exist_ok=True)
    if foreground:
        return _become_launcher(run_root, ready_fd=-1)
    ready_r, ready_w = os.pipe()
    if os.fork():
        # The process palletd started: report readiness, then exit so nobody waits on us.
        os.close(ready_w)
        with os.fdopen(ready_r, "rb") as ready:
            answer = ready.read().decode(errors="replace")
        if answer.startswith("ok"):
            return 0
        print(f"pallet-shim launcher: {answer or 'exited before it was ready'}", file=sys.stderr)
        return 1
    os.close(ready_r)
    os.setsid()
    # Like any daemon: hold no directory of whoever started us busy, and be predictable.
    os.chdir("/")
    os.umask(0o022)
    code = 1
    try:
        code = _become_launcher(run_root, ready_fd=ready_w)
    finally:
        os._exit(code)


def _tell(fd: int, text: str) -> None:
    if fd >= 0:
        os.write(fd, text.encode())
        os.close(fd)


def _become_launcher(run_root: str, ready_fd: int) -> int:
    try:
        lock_fd = os.open(
            os.path.join(run_root, sockpath.LAUNCHER_LOCK),
            os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
            0o600,
        )
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _tell(ready_fd, "ok: already running")
            return 0
        try:
            listener = _listen(sockpath.launcher_socket(run_root))
        except OSError as exc:
            _tell(ready_fd, f"cannot listen on {sockpath.launcher_socket(run_root)}: {exc}")
            return 1
        pid_problem = _write_pid_file(os.path.join(run_root, sockpath.LAUNCHER_PID))
        _detach_stdio(os.path.join(run_root, sockpath.LAUNCHER_LOG))
    except OSError as exc:
        # Said, not only exited ("exited before it was ready"): palletd shows it.
        _tell(ready_fd, f"cannot start in {run_root}: {exc}")
        return 1
    if pid_problem:
        diaglog.warn(pid_problem)
    set_process_name("pallet-launcher")
    syscalls = LibcSyscalls()
    warm_up()  # what every shim would do for itself, done once and shared
    # Everything imported so far is shared with every shim we fork; keep the collector
    # from touching (and so copying) those pages in the children.
    gc.collect()
    gc.freeze()
    _trim_heap()
    _tell(ready_fd, "ok")
    while True:
        try:
            conn, _ = listener.accept()
        except InterruptedError:
            continue
        try:
            _serve_one(conn, run_root, listener, lock_fd, syscalls)
        except Exception:  # noqa: BLE001 - one bad client must not stop the launcher
            log_exception("launcher request failed")
        finally:
            conn.close()


def _write_pid_file(path: str) -> str:
    """Write our pid to `path`; "" when done, else why not.

    The file is for people and tools, nothing serves through it: a run root too full to
    hold it (sockets and locks take an inode, no room) must not stop every container
    from starting, so the launcher serves without it (and removes what is left of it,
    an empty file or a dead launcher's pid).
    """
    try:
        with open(path, "w") as f:
            f.write(f"{os.getpid()}\n")
    except OSError as exc:
        try:
            os.unlink(path)
        except OSError:
            pass
        return f"cannot write {path}: {exc.strerror or exc}; serving without it"
    return ""


def _trim_heap() -> None:
    """Give the heap's free pages back to the kernel (glibc's malloc_trim).

    Imports leave freed blocks behind; resident, they would be shared with and counted
    in every shim forked from us (PSS), and a shim allocating into them copies them.
    """
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass  # not glibc


def _listen(path: str) -> socket.socket:
    try:
        os.unlink(path)  # we hold the lock: any socket here belongs to a dead launcher
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with sockpath.usable(path) as usable:
        sock.bind(usable)
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock


def _detach_stdio(log_path: str) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    log = diaglog.open_bounded(log_path)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(log, 2)  # tracebacks of the launcher and of every shim land here
    os.close(null)
    os.close(log)
    # Before any shim is forked: each inherits the bounds on this file (the run root is
    # RAM on most hosts; see `pallet.shim.diaglog`).
    diaglog.configure(log_path)


def _read_request(conn: socket.socket) -> Request:
    conn.settimeout(_REQUEST_TIMEOUT)
    header = _recv_exactly(conn, wire.HEADER.size)
    length, kind = wire.parse_header(header)
    if kind != wire.CONTROL:
        raise InvalidArgument("the launcher only takes control frames")
    return messages.decode(wire.decode_control(_recv_exactly(conn, length)), Request)


def _send(conn: socket.socket, message: object) -> None:
    conn.sendall(wire.encode_control(messages.encode(message)))


def _send_error(conn: socket.socket, error: PalletError) -> None:
    conn.sendall(wire.encode_control(wire.error_reply(error)))


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise InvalidArgument("connection closed mid-request")
        data += chunk
    return data


def _serve_one(
    conn: socket.socket, run_root: str, listener: socket.socket, lock_fd: int, syscalls: LibcSyscalls
) -> None:
    try:
        request = _read_request(conn)
    except InvalidArgument as exc:
        try:
            _send_error(conn, exc)  # a malformed request: say what is wrong with it
        except OSError:
            pass
        return
    except (OSError, PalletError, ValueError):
        return
    if isinstance(request, PingRequest):
        _send(conn, PingResponse(pid=os.getpid()))
        return
    if isinstance(request, LeftoversRequest):
        try:
            _send(conn, _leftovers(run_root, request))
        except PalletError as exc:
            _send_error(conn, exc)
        return
    if not isinstance(request, SpawnRequest):
        _send_error(conn, InvalidArgument(f"the shim launcher does not serve {request.op!r} requests"))
        return
    idle_exit = request.idle_exit
    # Read here, before forking: every shim reading it itself would touch, and so copy,
    # the launcher's pages of the file and JSON machinery (~0.4 MB of PSS per shim).
    try:
        spec = read_spec(request.bundle)
    except OSError as exc:
        _send_error(conn, Internal(f"cannot read the shim spec: {exc}"))
        return
    except PalletError as exc:
        _send_error(conn, exc)
        return
    middle = os.fork()
    if middle == 0:
        try:
            os.setsid()  # the shim's own session: no signal aimed at palletd's group hits it
            if os.fork() == 0:
                _run_shim(conn, spec, run_root, listener, lock_fd, syscalls, idle_exit)
        finally:
            os._exit(0)
    os.waitpid(middle, 0)  # exits at once; the shim is now init's (or a subreaper's) child


def _leftovers(run_root: str, request: LeftoversRequest) -> LeftoversResponse:
    cid = request.container_id
    if not cid or "/" in cid or cid.startswith("."):
        raise InvalidArgument(f"invalid container id {cid!r}")
    sock = os.path.lexists(sockpath.shim_socket(run_root, cid))
    try:
        spec = read_spec(request.bundle)
    except (OSError, PalletError):
        # No spec: never started (a start writes it first), so no cgroup was made; or
        # unreadable: say there may be, and let `pallet-shim delete` say what it finds.
        missing = not os.path.exists(os.path.join(request.bundle, CONFIG_FILE))
        return LeftoversResponse(socket=sock or not missing)
    return LeftoversResponse(socket=sock, cgroups=tuple(open_cgroup(spec.linux.cgroups_path).paths()))


def _run_shim(
    conn: socket.socket,
    spec: ShimSpec,
    run_root: str,
    listener: socket.socket,
    lock_fd: int,
    syscalls: LibcSyscalls,
    idle_exit: float,
) -> NoReturn:
    code = 0
    try:
        listener.close()
        os.close(lock_fd)  # the flock stays with the launcher's own descriptor
        set_process_name("pallet-shim")
        syscalls.prctl(PR_SET_CHILD_SUBREAPER, 1)
        conn.settimeout(None)
        try:
            shim = Shim(spec, run_root, syscalls, idle_exit=idle_exit)
            shim.create(private_fds=[conn.fileno()])
        except PalletError as exc:
            _send_error(conn, exc)
        else:
            shim.adopt(conn, SpawnResponse(shim_pid=os.getpid()))
            shim.serve()
    except BaseException as exc:  # noqa: BLE001 - a shim must never unwind into the launcher
        code = 1
        log_exception("shim failed")
        try:
            _send_error(conn, Internal(f"shim failed: {exc}"))
        except OSError:
            pass
    finally:
        os._exit(code)
