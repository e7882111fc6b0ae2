"""The shim's single-threaded event loop: one container, its clients, its end.

Owns: the unix socket at `<run_root>/shims/<id>.sock`, accepting clients and dispatching
their requests (`pallet.shim.api.messages`) through one handler table, reaping every
child (we are a subreaper) and handing each exit to the task, the timers (held terminal
output, output cut-off, retrying what the disk refused, idle exit: only once the exit is
on disk), shutdown, and removing the socket at the end. The container's processes and the requests about them
are `pallet.shim.task`'s; their output `pallet.shim.output`'s.
Must not: block on a client (output is never held back by a slow or absent daemon) or
import asyncio/grpc.
"""

from __future__ import annotations

import errno
import os
import selectors
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from pallet.v1.errors import AlreadyExists, Internal, InvalidArgument, PalletError
from pallet.shim.api import messages, sockpath, wire
from pallet.shim.api.messages import (
    Ack,
    AttachRequest,
    CloseStdinRequest,
    ExecRequest,
    ExecWaitRequest,
    FreezeRequest,
    KillExecRequest,
    KillRequest,
    PauseRequest,
    Request,
    ResizeRequest,
    ResumeRequest,
    ShutdownRequest,
    StartRequest,
    StateRequest,
    ThawRequest,
    UpdateRequest,
    WaitRequest,
)
from pallet.shim.api.spec import ShimSpec
from pallet.shim.connections import Conn, Connections
from pallet.shim.output import Output
from pallet.shim.processes import log_exception
from pallet.shim.states import CREATED, STOPPED
from pallet.shim.syscalls import Syscalls
from pallet.shim.execs import Reply
from pallet.shim.task import Task


class Shim:
    """One container's supervisor."""

    def __init__(
        self,
        spec: ShimSpec,
        run_root: str,
        syscalls: Syscalls,
        *,
        idle_exit: float = messages.DEFAULT_IDLE_EXIT,
    ) -> None:
        self.spec = spec
        self.id = spec.container_id
        self.sock_path = sockpath.shim_socket(run_root, spec.container_id)
        self.idle_exit = idle_exit
        self.io = Connections(self._on_frame, self._on_drop)
        self.output = Output(self.io)
        self.io.on_progress = self.output.client_progressed
        self.task = Task(
            spec, syscalls, self.io, self.output,
            fds_to_close=self._fds_to_close_in_children, on_finished=self._on_finished,
        )
        self.listener: socket.socket | None = None
        self._sock_ino = 0
        self._shutdown_conns: list[Conn] = []
        self._idle_since = 0.0
        self._done = False
        self._wakeup_r = self._wakeup_w = -1
        self._private_fds: list[int] = []
        task = self.task
        # One method per request type; a new request is a dataclass in
        # `pallet.shim.api.messages` and a line here.
        self._handlers: dict[type[Request], Callable[[Conn, Any], Reply]] = {
            StateRequest: task.op_state,
            StartRequest: task.op_start,
            KillRequest: task.op_kill,
            KillExecRequest: task.op_kill_exec,
            WaitRequest: task.op_wait,
            AttachRequest: task.op_attach,
            ExecRequest: task.op_exec,
            ExecWaitRequest: task.execs.op_exec_wait,
            CloseStdinRequest: task.op_close_stdin,
            FreezeRequest: task.op_freeze,
            ThawRequest: task.op_thaw,
            PauseRequest: task.op_pause,
            ResumeRequest: task.op_resume,
            ResizeRequest: task.op_resize,
            UpdateRequest: task.op_update,
            ShutdownRequest: self._op_shutdown,
        }

    # -- creation (blocking: nothing else to serve yet) ----------------------------------

    def create(self, private_fds: list[int] | None = None) -> None:
        """Build the container up to its waiting init; on failure leave nothing behind.

        `private_fds` are descriptors of ours the container's processes must not inherit
        even until their exec (e.g. the connection the spawn request came on).
        """
        self._private_fds = list(private_fds or [])
        try:
            self._install_sigchld()
            self._listen()
            self.task.create()
        except BaseException:
            self._cleanup()
            raise

    def _install_sigchld(self) -> None:
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        self._wakeup_r, self._wakeup_w = r, w
        self.io.watch(r, selectors.EVENT_READ, self._on_sigchld)

    def _listen(self) -> None:
        os.makedirs(os.path.dirname(self.sock_path), mode=0o711, exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with sockpath.usable(self.sock_path) as path:
            try:
                sock.bind(path)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    sock.close()
                    raise
                if sockpath.answers(self.sock_path):
                    sock.close()
                    raise AlreadyExists(
                        f"a shim for container {self.id} is already running"
                    ) from None
                os.unlink(path)  # a dead shim's socket
                sock.bind(path)
        self._sock_ino = os.stat(self.sock_path).st_ino
        sock.listen(64)
        sock.setblocking(False)
        self.listener = sock
        self.io.watch(sock, selectors.EVENT_READ, self._on_accept)

    def _fds_to_close_in_children(self) -> list[int]:
        fds = [self._wakeup_r, self._wakeup_w, *self._private_fds]
        if self.listener is not None:
            fds.append(self.listener.fileno())
        fds.extend(self.io.conns)
        return fds

    # -- the loop ------------------------------------------------------------------------

    def adopt(self, sock: socket.socket, reply: object) -> None:
        """Take over the connection the spawn request came on, after replying on it."""
        conn = self.io.add(sock)
        self._send(conn, reply)

    def _send(self, conn: Conn, message: object) -> None:
        self.io.send(conn, wire.encode_control(messages.encode(message)))

    def _send_error(self, conn: Conn, error: PalletError) -> None:
        self.io.send(conn, wire.encode_control(wire.error_reply(error)))

    def serve(self) -> None:
        while not self._done:
            self.io.poll(self._next_timeout())
            self._run_timers()
        self.io.flush_all_blocking()

    def _next_timeout(self) -> float | None:
        now = time.monotonic()
        deadlines = [
            d for d in (self.output.next_deadline(), self.task.next_retry(now)) if d is not None
        ]
        if self.task.may_idle_exit and not self.io.conns and self._idle_since:
            deadlines.append(self._idle_since + self.idle_exit)
        return max(0.0, min(deadlines) - now) if deadlines else None

    def _run_timers(self) -> None:
        now = time.monotonic()
        self.output.release_held(now)
        self.output.drop_stalled(now)
        self.output.close_overdue(now)
        self.task.retry_writes(now)
        if self.task.may_idle_exit and not self.io.conns:
            if not self._idle_since:
                self._idle_since = now
            elif now >= self._idle_since + self.idle_exit:
                self._shutdown()
        else:
            self._idle_since = 0.0

    # -- connections -------------------------------------------------------------------

    def _on_accept(self, mask: int) -> None:
        assert self.listener is not None
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                log_exception("accept failed")
                return
            self.io.add(sock)

    def _on_frame(self, conn: Conn, kind: int, payload: bytes) -> None:
        if kind == wire.STDIN:
            self.task.write_stdin(conn, payload)
            return
        if kind != wire.CONTROL:
            return
        try:
            request = messages.decode(wire.decode_control(payload), Request)
            handler = self._handlers.get(type(request))
            if handler is None:  # a launcher request, say
                raise InvalidArgument(f"a shim does not serve {request.op!r} requests")
            reply = handler(conn, request)
        except wire.FrameError as exc:
            self._send_error(conn, InvalidArgument(str(exc)))
        except PalletError as exc:
            self._send_error(conn, exc)
        except Exception as exc:  # noqa: BLE001 - one bad request must not kill the shim
            log_exception(f"request {payload[:200]!r} failed")
            self._send_error(conn, Internal(f"shim error: {type(exc).__name__}: {exc}"))
        else:
            if reply is not None:
                self._send(conn, reply)

    def _on_drop(self, conn: Conn) -> None:
        for group in (self.output.attached, self._shutdown_conns):
            if conn in group:
                group.remove(conn)
        self.task.drop(conn)
        self.output.client_progressed(conn)  # what waited for it goes on

    # -- children ------------------------------------------------------------------------

    def _on_sigchld(self, mask: int) -> None:
        try:
            while os.read(self._wakeup_r, 4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            self.task.reaped(pid, code if code >= 0 else 128 - code)  # signal n -> 128+n

    # -- the end ---------------------------------------------------------------------------

    def _op_shutdown(self, conn: Conn, request: ShutdownRequest) -> Reply:
        self.task.state.require({CREATED, STOPPED}, "kill it before shutting down its shim")
        self._shutdown_conns.append(conn)
        if self.task.state.status is CREATED:
            self.task.kill_unstarted()  # deleted before start; shut down once it is reaped
        elif self.task.finished:
            self._shutdown()
        return None

    def _on_finished(self) -> None:
        """The init exited (its status known, on disk unless the disk refused it) and its
        output drained. A shutdown asked for now is palletd's: it has recorded the exit."""
        if self._shutdown_conns:
            self._shutdown()

    def _shutdown(self) -> None:
        self._cleanup()  # first: the reply promises the socket and cgroup are gone
        for conn in self._shutdown_conns:
            self._send(conn, Ack())
        self._shutdown_conns.clear()
        self._done = True

    def _cleanup(self) -> None:
        """Remove what the shim made on the host: its socket and the container's cgroup."""
        if self.listener is not None:
            self.io.unwatch(self.listener)
            self.listener.close()
            self.listener = None
            try:
                if os.stat(self.sock_path).st_ino == self._sock_ino:
                    os.unlink(self.sock_path)
            except FileNotFoundError:
                pass
        self.task.release()
