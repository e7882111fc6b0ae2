"""Exec processes: more processes in a running container, each with its own client.

Owns: forking an exec into the container's namespaces and cgroup (through a `StdioPlan`,
as the init is), the exec and exec_wait requests, the client streaming each exec and the
ones waiting for it, and what follows an exec's exit: its status written to
`execs/<exec_id>.json` first, then the waiters told and its stream ended. Must not: touch
the container's init (`pallet.shim.task`) or read output (`pallet.shim.output`).
"""

from __future__ import annotations

import os
import selectors
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pallet.v1.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from pallet.shim.cgroups import Cgroup
from pallet.shim.api import messages, wire
from pallet.shim.api.files import read_exec_exit, validate_exec, validate_exec_id, write_exec_exit
from pallet.shim.api.messages import ExecRequest, ExecResponse, ExecWaitRequest, ExitEvent, WaitResponse
from pallet.shim.api.spec import ExitStatus, ShimSpec
from pallet.shim.children import Process
from pallet.shim.connections import Conn, Connections
from pallet.shim.output import Output
from pallet.shim.processes import StatusReader, fork_exec, log_exception
from pallet.shim.stdio import StdioPlan
from pallet.shim.syscalls import Syscalls

DRAIN_TIMEOUT = 2.0  # after an exit, how long stray writers may hold the output pipes

#: What a request handler answers now; None when it answers later, or never.
Reply = object | None


@dataclass(eq=False, slots=True)
class Exec:
    """An exec process and the clients that hear of it."""

    process: Process
    exec_id: str  # the daemon's id for it
    conn: Conn | None  # the client streaming it, until that one goes away
    waiters: list[Conn] = field(default_factory=list)  # `exec_wait` clients


class Execs:
    """The exec processes of one container."""

    def __init__(
        self,
        spec: ShimSpec,
        syscalls: Syscalls,
        io: Connections,
        output: Output,
        *,
        fds_to_close: Callable[[], list[int]],
    ) -> None:
        self.spec = spec
        self.sys = syscalls
        self.id = spec.container_id
        self.io = io
        self.output = output
        self.by_pid: dict[int, Exec] = {}
        self.by_id: dict[str, Exec] = {}
        self._fds_to_close = fds_to_close  # every fd of ours a new child must not inherit

    def _send(self, conn: Conn, message: object) -> None:
        self.io.send(conn, wire.encode_control(messages.encode(message)))

    def processes(self) -> list[Process]:
        return [run.process for run in self.by_pid.values()]

    def start(self, conn: Conn, request: ExecRequest, init_pid: int, cgroup: Cgroup) -> Reply:
        """Fork the exec (the container is running: the caller checked) and stream it on
        `conn`."""
        spec = request.spec
        if not spec.process.args:
            raise InvalidArgument("exec needs a command")
        validate_exec(spec)
        if spec.exec_id in self.by_id or read_exec_exit(self.spec.bundle_dir, spec.exec_id):
            raise AlreadyExists(f"exec {spec.exec_id} exists already: use a new exec id")
        plan = StdioPlan(stdin=spec.process.stdin, terminal=spec.process.terminal)
        try:
            stdio = plan.child_stdio(self._fds_to_close())
            pid = fork_exec(self.spec, spec, self.sys, init_pid, stdio)
        except OSError as exc:
            # The pid namespace died with its init (ENOMEM from fork): it is not running.
            plan.close()
            raise FailedPrecondition(f"container {self.id} is not running: {exc.strerror}") from None
        try:
            cgroup.join(pid)
        except BaseException:
            os.kill(pid, signal.SIGKILL)  # it waits for the cgroup: it must not run outside
            os.waitpid(pid, 0)
            plan.close()
            raise
        plan.forked()
        try:
            os.write(plan.cgroup_w, b"j")
        except OSError:
            pass  # it died already; its exit is reported like any other
        os.close(plan.cgroup_w)
        # A terminal: the exec sends its master once inside the container (a few setns
        # away); one that fails first sends none, and its exit says why.
        plan.take_console()
        os.set_blocking(plan.status_r, False)
        process = self.output.process(pid, plan, StatusReader(plan.status_r))
        run = Exec(process, spec.exec_id, conn)
        conn.mode = "exec"
        conn.exec_pid = pid
        conn.stdin = process.stdin is not None
        self.by_pid[pid] = run
        self.by_id[spec.exec_id] = run
        self.output.watch(process, lambda: run.conn, lambda: self._maybe_finish(run))
        self.io.watch(plan.status_r, selectors.EVENT_READ, lambda mask: self._on_status(process))
        return ExecResponse(pid=pid)

    def op_exec_wait(self, conn: Conn, request: ExecWaitRequest) -> Reply:
        """The exit of an exec, from any connection: at once if it ended, else when it
        does. How a restarted palletd learns what its execs did while it was away."""
        exec_id = validate_exec_id(request.exec_id)
        run = self.by_id.get(exec_id)
        if run is not None:
            run.waiters.append(conn)
            conn.mode = "wait"
            return None
        status = read_exec_exit(self.spec.bundle_dir, exec_id)
        if status is None:
            raise NotFound(f"no exec {exec_id} in container {self.id}: it never started here")
        return WaitResponse(status)

    def _on_status(self, process: Process) -> None:
        reader = process.status
        if reader is None:
            return
        # Reported once, in the exec's exit status; the client decides how to show it.
        process.exec_error = process.exec_error or reader.read_failure()
        if reader.eof:
            self.io.unwatch(reader.fd)
            os.close(reader.fd)
            process.status = None

    def running(self, exec_id: str) -> Process:
        """The process of a live exec; NotFound, or FailedPrecondition once it ended."""
        exec_id = validate_exec_id(exec_id)
        run = self.by_id.get(exec_id)
        if run is not None:
            return run.process
        if read_exec_exit(self.spec.bundle_dir, exec_id) is not None:
            raise FailedPrecondition(f"exec {exec_id} has ended: its terminal is closed")
        raise NotFound(f"no exec {exec_id} in container {self.id}")

    def stdin_of(self, conn: Conn) -> Process | None:
        run = self.by_pid.get(conn.exec_pid)
        return run.process if run is not None else None

    def drop(self, conn: Conn) -> None:
        """A client went away: forget it wherever it waited."""
        for run in self.by_pid.values():
            if conn in run.waiters:
                run.waiters.remove(conn)
        streamed = self.by_pid.get(conn.exec_pid) if conn.exec_pid else None
        if streamed is not None and streamed.conn is conn:
            # The exec keeps running, without stdin or a reader.
            streamed.conn = None
            if streamed.process.stdin is not None:
                streamed.process.stdin.close()

    def reaped(self, pid: int, code: int) -> bool:
        """Whether `pid` was one of ours; if so, its exit is recorded and told."""
        run = self.by_pid.get(pid)
        if run is None:
            return False
        process = run.process
        if process.status is not None:
            self._on_status(process)
        process.exit = ExitStatus(
            exit_code=code, exited_at_ns=time.time_ns(), error=process.exec_error
        )
        try:
            # On disk before anyone is told, so a palletd that was away still learns it.
            write_exec_exit(self.spec.bundle_dir, run.exec_id, process.exit)
        except OSError:
            log_exception("cannot record the exit status of exec " + run.exec_id)
        if process.stdin is not None:
            process.stdin.close()
        process.drain_deadline = time.monotonic() + DRAIN_TIMEOUT
        self._maybe_finish(run)
        return True

    def _maybe_finish(self, run: Exec) -> None:
        process = run.process
        if process.exit is None or process.outputs:
            return
        if process.status is not None:
            self.io.unwatch(process.status.fd)
            os.close(process.status.fd)
            process.status = None
        self.by_pid.pop(process.pid, None)
        self.by_id.pop(run.exec_id, None)
        self.output.forget(process)
        for waiter in run.waiters:
            self._send(waiter, WaitResponse(process.exit))
        run.waiters.clear()
        conn, run.conn = run.conn, None
        if conn is not None:
            conn.exec_pid = 0
            self._send(conn, ExitEvent(process.exit))
            conn.close_after_flush = True
            self.io.flush(conn)
