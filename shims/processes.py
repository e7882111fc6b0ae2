"""Forking the container's init and exec processes, and their status pipes.

Owns: the code that runs in forked children of the shim (the container's init, exec
processes) and the one-line JSON messages they send back on a close-on-exec status pipe:
{"ready": true} when the init is built, {"error": ...} when setup failed,
{"exec_error": ..., "exit_code": n} when the final exec failed. A successful exec closes
the pipe, so EOF means "running". Must not: return into the shim's loop from a child
(every child ends in os._exit).
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pallet.v1.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    PalletError,
)
from pallet.shim import diaglog
from pallet.shim.api.files import read_seccomp
from pallet.shim.api.spec import ExecSpec, Process, ShimSpec
from pallet.shim.identity import ProcessSetup, exec_process
from pallet.shim.steps import ExecFailed, ExecJoin, InitSetup, Step, run_steps
from pallet.shim.syscalls import Syscalls
from pallet.shim.tty import open_console

SETUP_FAILED_EXIT = 126  # docker's code for "the runtime could not start the command"


@dataclass(slots=True)
class ChildStdio:
    """The child's ends of its stdio and status pipes, and what the parent keeps."""

    stdin: int
    stdout: int
    stderr: int
    status_w: int
    cgroup_r: int  # one byte arrives once the shim has moved the child into the cgroup
    start_r: int = -1
    # A terminal (`pallet.shim.tty`): the socket its pty's master goes to the shim on.
    console_w: int = -1
    close_in_child: list[int] = field(default_factory=list)


def send_status(fd: int, message: dict[str, Any]) -> None:
    """One message per write, below PIPE_BUF: a reader never sees half a message."""
    data = json.dumps(message, separators=(",", ":")).encode()[:4000] + b"\n"
    try:
        os.write(fd, data)
    except OSError:
        pass  # the shim is gone; nobody to tell


def _error_message(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, PalletError):
        return {"error": {"code": exc.code, "message": exc.message}}
    return {"error": {"code": "INTERNAL", "message": f"{type(exc).__name__}: {exc}"}}


class StatusReader:
    """Reads the JSON lines of a status pipe in the shim (blocking with a deadline)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf = b""
        self.eof = False

    def read_available(self) -> list[dict[str, Any]]:
        """Read what is there without blocking (the fd is non-blocking)."""
        messages = []
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                self.eof = True
                break
            self._buf += chunk
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            try:
                message = json.loads(line)
            except ValueError:
                continue
            messages.append(message)
        return messages

    def read_failure(self) -> str:
        """Read what is there; the first failure it reports, or "" if none: the exec's
        error, or an error between start and exec (a bug, but said)."""
        for message in self.read_available():
            if "exec_error" in message:
                return str(message["exec_error"])
            if "error" in message:
                error = message["error"]
                return str(error.get("message", "start failed") if isinstance(error, dict) else error)
        return ""

    def wait_readable(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded("container setup did not finish in time")
        select.select([self.fd], [], [], remaining)


def _reset_in_child(stdio: ChildStdio) -> None:
    # Our own session, as runc does: no signal aimed at the shim's group reaches us.
    os.setsid()
    # The shim's SIGCHLD handler and wakeup fd belong to the shim's loop, not to us.
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for fd in stdio.close_in_child:
        try:
            os.close(fd)
        except OSError:
            pass


def _take_stdio(stdio: ChildStdio) -> None:
    for target, fd in ((0, stdio.stdin), (1, stdio.stdout), (2, stdio.stderr)):
        os.dup2(fd, target)  # dup2 clears close-on-exec: the program inherits these
    for fd in {stdio.stdin, stdio.stdout, stdio.stderr}:
        if fd > 2:
            os.close(fd)


def _waiter(fd: int, what: str) -> Callable[[], None]:
    def wait() -> None:
        if os.read(fd, 1) != b"j":
            raise Internal(f"the shim went away while {what}")
        os.close(fd)

    return wait


def seccomp_program(spec: ShimSpec) -> bytes:
    """The container's seccomp filter as seccomp(2) takes it (b"": none). Read by the
    forked child, while it still sees the host's filesystem (before pivot_root, or
    before an exec enters the container's mount namespace): the shim never holds it."""
    return read_seccomp(spec.bundle_dir) if spec.linux.seccomp else b""


def _size(process: Process) -> tuple[int, int]:
    return process.console_height, process.console_width


def fork_init(spec: ShimSpec, sc: Syscalls, stdio: ChildStdio) -> int:
    """Fork the container's init (PID 1: the shim has unshared the pid namespace)."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        _reset_in_child(stdio)
        _take_stdio(stdio)
        seccomp = seccomp_program(spec)  # before pivot_root hides the bundle
        console = stdio.console_w
        setup = InitSetup(
            spec, sc, _waiter(stdio.cgroup_r, "joining the cgroup"),
            open_terminal=(lambda: open_console(console, sc, mount_console=True, size=_size(spec.process)))
            if console >= 0 else None,
        )
        run_steps(setup.steps())
        process = ProcessSetup(sc, spec.process, is_exec=False, seccomp=seccomp)
        run_steps(process.steps())
        send_status(stdio.status_w, {"ready": True})
        # Wait here, fully built, until the shim's `start` (EOF: deleted before start).
        if os.read(stdio.start_r, 1) != b"s":
            os._exit(1)
        os.close(stdio.start_r)
        exec_process(spec.process.args, process.env)
    except ExecFailed as exc:
        send_status(stdio.status_w, {"exec_error": exc.message, "exit_code": exc.exit_code})
        code = exc.exit_code
    except BaseException as exc:  # noqa: BLE001 - a child must report, never unwind
        send_status(stdio.status_w, _error_message(exc))
    finally:
        os._exit(code)


def fork_exec(
    container: ShimSpec, spec: ExecSpec, sc: Syscalls, init_pid: int, stdio: ChildStdio
) -> int:
    """Fork an exec process: born in the container's pid namespace, it joins the rest.

    `spec.process` is complete (the daemon merged it with the container's); nothing of
    `container` but its namespaces is used.
    """
    pid = os.fork()
    if pid:
        return pid
    code = SETUP_FAILED_EXIT
    try:
        _reset_in_child(stdio)
        _take_stdio(stdio)
        seccomp = seccomp_program(container)  # before entering its mount namespace
        join = ExecJoin(
            sc, init_pid, container.linux.namespaces, _waiter(stdio.cgroup_r, "joining the cgroup")
        )
        run_steps(join.steps())
        if stdio.console_w >= 0:
            # Inside the container's mount namespace now: the pty is its devpts's.
            run_steps([Step("open terminal", lambda: open_console(
                stdio.console_w, sc, mount_console=False, size=_size(spec.process)))])
        process = ProcessSetup(sc, spec.process, is_exec=True, seccomp=seccomp)
        run_steps(process.steps())
        exec_process(spec.process.args, process.env)
    except ExecFailed as exc:
        send_status(stdio.status_w, {"exec_error": exc.message, "exit_code": exc.exit_code})
        code = exc.exit_code
    except PalletError as exc:
        send_status(stdio.status_w, {"exec_error": exc.message, "exit_code": code})
    except BaseException as exc:  # noqa: BLE001
        message = f"{type(exc).__name__}: {exc}"
        send_status(stdio.status_w, {"exec_error": message, "exit_code": code})
    finally:
        os._exit(code)


def wait_for(reader: StatusReader, keys: set[str], deadline: float) -> dict[str, Any]:
    """Collect status messages until one of each of `keys` (or an error) has arrived."""
    got: dict[str, Any] = {}
    while not keys <= got.keys():
        for message in reader.read_available():
            if "error" in message:
                error = message["error"]
                code = str(error.get("code", "INTERNAL"))
                text = str(error.get("message", ""))
                # Anything that stops a container from being built is, to the daemon, a
                # precondition the user must fix (user, workdir, mounts), unless internal.
                if code == "INTERNAL":
                    raise Internal(text)
                raise FailedPrecondition(text)
            got.update(message)
        if keys <= got.keys():
            break
        if reader.eof:
            raise Internal("container setup ended without saying why (see the shim log)")
        reader.wait_readable(deadline)
    return got


def log_exception(context: str) -> None:
    """Tracebacks go to the shim's stderr (the launcher's log file), once, within the
    bounds `pallet.shim.diaglog` keeps."""
    diaglog.log_exception(context)
