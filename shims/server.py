"""The shim's single-threaded event loop: one container, its stdio, its clients.

Owns: building the container (via `pallet.shim.processes`), the unix socket at
`<run_root>/shims/<id>.sock`, the requests of the wire protocol (state, start, kill, wait,
attach, exec, close_stdin, shutdown), reaping every child (we are a subreaper), writing
exit.json before anyone hears of an exit, copying container output to the log file and to
attached clients, and removing the socket and cgroup at the end. Must not: block on a
client (output is never held back by a slow or absent daemon) or import asyncio/grpc.
"""

from __future__ import annotations

import errno
import mmap
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from pallet.v1.errors import (
    AlreadyExists,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PalletError,
)
from pallet.shim.api.spec import ExitStatus, ShimSpec, ShimState, TaskStatus
from pallet.shim import cgroups
from pallet.shim.api import messages, sockpath, wire
from pallet.shim.api.messages import (
    Ack,
    AttachRequest,
    CloseStdinRequest,
    EofEvent,
    ExecRequest,
    ExecResponse,
    ExecWaitRequest,
    ExitEvent,
    KillRequest,
    Request,
    ShutdownRequest,
    StartRequest,
    StartResponse,
    StateRequest,
    WaitRequest,
    WaitResponse,
)
from pallet.shim.children import Process, StdinPipe
from pallet.shim.connections import Conn, Connections, Handler
from pallet.shim.logfile import LogWriter
from pallet.shim.processes import (
    ChildStdio,
    StatusReader,
    fork_exec,
    fork_init,
    log_exception,
    wait_for,
)
from pallet.shim.api.files import (
    read_exec_exit,
    validate_exec_id,
    write_exec_exit,
    write_exit_status,
)
from pallet.shim.states import CREATED, RUNNING, STOPPED, InitState
from pallet.shim.syscalls import CLONE_NEWPID, Syscalls

# A busy container's output is read in slices this big (its pipes hold 1 MiB, see
# `pallet.shim.children`), so 100 MB is a few hundred log records and frames, not 25,000.
# Into one buffer per shim, an anonymous mapping that gets pages only as far as output
# ever filled it (an idle shim pays nothing), copied out at the size read: os.read of
# this size would malloc and shrink a big block on every read, and a heap grown by one
# stays grown.
_READ_CHUNK = 256 << 10
_DRAIN_TIMEOUT = 2.0  # after an exit, how long stray writers may hold the output pipes
_CREATE_TIMEOUT = 60.0

#: What a request handler answers now; None when it answers later, or never.
Reply = object | None


class Shim:
    """One container's supervisor."""

    def __init__(
        self,
        spec: ShimSpec,
        run_root: str,
        syscalls: Syscalls,
        *,
        idle_exit: float = 30.0,
    ) -> None:
        self.spec = spec
        self.sys = syscalls
        self.id = spec.container_id
        self.sock_path = sockpath.shim_socket(run_root, spec.container_id)
        self.idle_exit = idle_exit
        self.io = Connections(self._on_frame, self._on_drop)
        self.task = InitState(spec.container_id)
        self.started_at_ns = 0
        self.init: Process | None = None
        self.execs: dict[int, Process] = {}
        self.execs_by_id: dict[str, Process] = {}
        self.cgroup_dirs: list[str] = []
        self.log: LogWriter | None = None
        self.listener: socket.socket | None = None
        self._sock_ino = 0
        self._start_w = -1
        self._start_conn: Conn | None = None
        self._start_requested = False
        self._waiters: list[Conn] = []
        self._attached: list[Conn] = []
        self._shutdown_conns: list[Conn] = []
        self._finished = False  # init exited, status on disk, output drained
        self._idle_since = 0.0
        self._done = False
        self._wakeup_r = self._wakeup_w = -1
        self._private_fds: list[int] = []
        self._read_buf: mmap.mmap | None = None
        # One method per request type; a new request is a dataclass in
        # `pallet.shim.api.messages` and a line here.
        self._handlers: dict[type[Request], Callable[[Conn, Any], Reply]] = {
            StateRequest: self._op_state,
            StartRequest: self._op_start,
            KillRequest: self._op_kill,
            WaitRequest: self._op_wait,
            AttachRequest: self._op_attach,
            ExecRequest: self._op_exec,
            ExecWaitRequest: self._op_exec_wait,
            CloseStdinRequest: self._op_close_stdin,
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
            self._create_container()
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
                if _alive(path):
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

    def _create_container(self) -> None:
        spec = self.spec
        try:
            self.log = LogWriter(spec.log_path, spec.log_max_size, spec.log_max_files)
        except OSError as exc:
            raise FailedPrecondition(
                f"cannot open the log file {spec.log_path}: {exc.strerror or exc}"
            ) from None
        self.cgroup_dirs = cgroups.create(spec.cgroup_path)
        # Before our first fork: it applies to our children only, the first becoming the
        # container's PID 1 and later ones (exec processes) members of its namespace.
        self.sys.unshare(CLONE_NEWPID)
        status_r, status_w = os.pipe()
        cgroup_r, cgroup_w = os.pipe()
        start_r, start_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        if spec.open_stdin:
            in_r, in_w = os.pipe()
        else:
            in_r, in_w = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), -1
        parent_ends = [status_r, cgroup_w, start_w, out_r, err_r] + ([in_w] if in_w >= 0 else [])
        stdio = ChildStdio(
            stdin=in_r, stdout=out_w, stderr=err_w, status_w=status_w, cgroup_r=cgroup_r,
            start_r=start_r, close_in_child=parent_ends + self._fds_to_close_in_children(),
        )
        pid = fork_init(spec, self.sys, stdio)
        for fd in (status_w, cgroup_r, start_r, out_w, err_w, in_r):
            os.close(fd)
        self._start_w = start_w
        os.set_blocking(status_r, False)
        reader = StatusReader(status_r)
        process = self._process(pid, out_r, err_r, in_w)
        process.status = reader
        try:
            # While the init mounts its filesystem: the v1 migration is slow (see steps).
            cgroups.join(self.cgroup_dirs, pid)
            os.write(cgroup_w, b"j")
            os.close(cgroup_w)
            wait_for(reader, {"ready"}, time.monotonic() + _CREATE_TIMEOUT)
        except BaseException:
            # The init exits by itself after reporting an error; a hang gets killed.
            _kill(pid, signal.SIGKILL)
            _reap_blocking(pid)
            self._close_process(process)
            os.close(status_r)
            os.close(start_w)
            self._start_w = -1
            raise
        self.init = process
        for fd in process.outputs:
            self.io.watch(fd, selectors.EVENT_READ, self._output_handler(process, fd))

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
        deadlines = [p.drain_deadline for p in self._processes() if p.exit and p.outputs]
        if self._finished and not self.io.conns and self._idle_since:
            deadlines.append(self._idle_since + self.idle_exit)
        return max(0.0, min(deadlines) - now) if deadlines else None

    def _run_timers(self) -> None:
        now = time.monotonic()
        for process in self._processes():
            if process.exit and process.outputs and now >= process.drain_deadline:
                for fd in list(process.outputs):
                    self._close_output(process, fd)
        if self._finished and not self.io.conns:
            if not self._idle_since:
                self._idle_since = now
            elif now >= self._idle_since + self.idle_exit:
                self._shutdown()
        else:
            self._idle_since = 0.0

    def _processes(self) -> list[Process]:
        return ([self.init] if self.init else []) + list(self.execs.values())

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
            self._write_stdin(conn, payload)
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
        for group in (self._waiters, self._attached, self._shutdown_conns):
            if conn in group:
                group.remove(conn)
        if self._start_conn is conn:
            self._start_conn = None
        for process in self.execs.values():
            if conn in process.waiters:
                process.waiters.remove(conn)
        if conn.exec is not None:
            # The client went away: the exec keeps running, without stdin or a reader.
            conn.exec.conn = None
            if conn.exec.stdin is not None:
                conn.exec.stdin.close()

    # -- requests ----------------------------------------------------------------------

    def _init(self) -> Process:
        assert self.init is not None
        return self.init

    def _op_state(self, conn: Conn, request: StateRequest) -> ShimState:
        init = self._init()
        status = self.task.status
        return ShimState(
            status=status,
            pid=init.pid if status is not CREATED else 0,
            shim_pid=os.getpid(),
            exit=init.exit,
            started_at_ns=self.started_at_ns,
        )

    def _op_start(self, conn: Conn, request: StartRequest) -> Reply:
        self.task.require({CREATED}, "it can only be started once")
        if self._start_w < 0:
            raise FailedPrecondition(f"container {self.id} is being started already")
        init = self._init()
        os.write(self._start_w, b"s")
        os.close(self._start_w)
        self._start_w = -1
        self._start_conn = conn
        self._start_requested = True
        assert init.status is not None
        self.io.watch(init.status.fd, selectors.EVENT_READ, lambda mask: self._on_init_status())
        return None

    def _on_init_status(self) -> None:
        """The init's status pipe: an exec error, or EOF once the exec succeeded."""
        init = self._init()
        reader = init.status
        if reader is None:
            return
        for message in reader.read_available():
            if "exec_error" in message:
                init.exec_error = str(message["exec_error"])
            elif "error" in message:  # failed between start and exec: a bug, but say so
                init.exec_error = str(message["error"].get("message", "start failed"))
        if not reader.eof:
            return
        if self.io.watching(reader.fd):
            self.io.unwatch(reader.fd)
        os.close(reader.fd)
        init.status = None
        if not self._start_requested:
            return  # killed while waiting for start: nothing was started
        if init.exec_error:
            return  # answered once the init is reaped and its exit is on disk
        self.started_at_ns = time.time_ns()
        if self.task.status is CREATED:
            self.task.move(RUNNING)
        self._reply_start()

    def _reply_start(self) -> None:
        conn, self._start_conn = self._start_conn, None
        if conn is None:
            return
        init = self._init()
        if init.exec_error:
            self._send_error(conn, FailedPrecondition(init.exec_error))
        else:
            self._send(conn, StartResponse(pid=init.pid))

    def _op_kill(self, conn: Conn, request: KillRequest) -> Ack:
        signum = request.signal
        if not 0 < signum < signal.NSIG:
            raise InvalidArgument(f"invalid signal {signum!r}")
        init = self._init()
        self.task.require({CREATED, RUNNING}, "it is not running, there is nothing to signal")
        if request.all:
            for pid in cgroups.pids(self.cgroup_dirs):
                _kill(pid, signum)
        _kill(init.pid, signum)
        return Ack()

    def _op_wait(self, conn: Conn, request: WaitRequest) -> Reply:
        if self._finished:
            exit = self._init().exit
            assert exit is not None
            return WaitResponse(exit)
        self._waiters.append(conn)
        conn.mode = "wait"
        return None

    def _op_attach(self, conn: Conn, request: AttachRequest) -> Reply:
        init = self._init()
        conn.mode = "attach"
        conn.stdout = request.stdout
        conn.stderr = request.stderr
        conn.stdin = request.stdin and init.stdin is not None
        self._attached.append(conn)
        self._send(conn, Ack())
        if not init.outputs:
            self._send(conn, EofEvent())
        return None

    def _op_exec(self, conn: Conn, request: ExecRequest) -> Reply:
        self.task.require({RUNNING}, "it is not running, start it first")
        spec = request.spec
        if not spec.args:
            raise InvalidArgument("exec needs a command")
        validate_exec_id(spec.exec_id)
        if spec.exec_id in self.execs_by_id or read_exec_exit(self.spec.bundle_dir, spec.exec_id):
            raise AlreadyExists(f"exec {spec.exec_id} exists already: use a new exec id")
        status_r, status_w = os.pipe()
        cgroup_r, cgroup_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        if spec.stdin:
            in_r, in_w = os.pipe()
        else:
            in_r, in_w = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), -1
        parent_ends = [status_r, cgroup_w, out_r, err_r] + ([in_w] if in_w >= 0 else [])
        stdio = ChildStdio(
            stdin=in_r, stdout=out_w, stderr=err_w, status_w=status_w, cgroup_r=cgroup_r,
            close_in_child=parent_ends + self._fds_to_close_in_children() + self._process_fds(),
        )
        try:
            pid = fork_exec(self.spec, spec, self.sys, self._init().pid, stdio)
        except OSError as exc:
            # The pid namespace died with its init (ENOMEM from fork): it is not running.
            for fd in (*parent_ends, status_w, cgroup_r, out_w, err_w, in_r):
                os.close(fd)
            raise FailedPrecondition(f"container {self.id} is not running: {exc.strerror}") from None
        for fd in (status_w, cgroup_r, out_w, err_w, in_r):
            os.close(fd)
        cgroups.join(self.cgroup_dirs, pid)
        try:
            os.write(cgroup_w, b"j")
        except OSError:
            pass  # it died already; its exit is reported like any other
        os.close(cgroup_w)
        os.set_blocking(status_r, False)
        process = self._process(pid, out_r, err_r, in_w)
        process.status = StatusReader(status_r)
        process.conn = conn
        conn.mode = "exec"
        conn.exec = process
        conn.stdin = process.stdin is not None
        process.exec_id = spec.exec_id
        self.execs[pid] = process
        self.execs_by_id[spec.exec_id] = process
        for fd in process.outputs:
            self.io.watch(fd, selectors.EVENT_READ, self._output_handler(process, fd))
        self.io.watch(status_r, selectors.EVENT_READ, lambda mask: self._on_exec_status(process))
        return ExecResponse(pid=pid)

    def _op_exec_wait(self, conn: Conn, request: ExecWaitRequest) -> Reply:
        """The exit of an exec, from any connection: at once if it ended, else when it
        does. How a restarted palletd learns what its execs did while it was away."""
        exec_id = validate_exec_id(request.exec_id)
        process = self.execs_by_id.get(exec_id)
        if process is not None:
            process.waiters.append(conn)
            conn.mode = "wait"
            return None
        status = read_exec_exit(self.spec.bundle_dir, exec_id)
        if status is None:
            raise NotFound(f"no exec {exec_id} in container {self.id}: it never started here")
        return WaitResponse(status)

    def _process_fds(self) -> list[int]:
        fds: list[int] = []
        for process in self._processes():
            fds.extend(process.outputs)
            if process.stdin is not None and process.stdin.fd >= 0:
                fds.append(process.stdin.fd)
            if process.status is not None:
                fds.append(process.status.fd)
        if self._start_w >= 0:
            fds.append(self._start_w)
        return fds

    def _on_exec_status(self, process: Process) -> None:
        reader = process.status
        if reader is None:
            return
        for message in reader.read_available():
            if "exec_error" in message:
                self._report_exec_error(process, str(message["exec_error"]))
        if reader.eof:
            self.io.unwatch(reader.fd)
            os.close(reader.fd)
            process.status = None

    def _report_exec_error(self, process: Process, message: str) -> None:
        if process.exec_error:
            return
        # Reported once, in the exec's exit status; the client decides how to show it.
        process.exec_error = message

    def _op_close_stdin(self, conn: Conn, request: CloseStdinRequest) -> Reply:
        self._close_stdin_of(conn)
        return None

    def _op_shutdown(self, conn: Conn, request: ShutdownRequest) -> Reply:
        self.task.require({CREATED, STOPPED}, "kill it before shutting down its shim")
        self._shutdown_conns.append(conn)
        if self.task.status is CREATED:
            _kill(self._init().pid, signal.SIGKILL)  # deleted before start
        elif self._finished:
            self._shutdown()
        return None

    # -- stdio ---------------------------------------------------------------------------

    def _output_handler(self, process: Process, fd: int) -> Handler:
        return lambda mask: self._on_output(process, fd)

    def _on_output(self, process: Process, fd: int) -> None:
        if self._read_buf is None:
            self._read_buf = mmap.mmap(-1, _READ_CHUNK)
        try:
            data = self._read_buf[: os.readv(fd, [self._read_buf])]
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_output(process, fd)
            return
        stream = process.outputs[fd]
        now = time.time_ns()
        frame = wire.encode_output(stream, now, data)
        if process is self.init:
            if self.log is not None:
                try:
                    self.log.write(stream, data, now)
                except OSError:
                    log_exception("log write failed")
            for conn in list(self._attached):
                if conn.stdout if stream == wire.STDOUT else conn.stderr:
                    self.io.send(conn, frame)
        elif process.conn is not None:
            self.io.send(process.conn, frame)

    def _close_output(self, process: Process, fd: int) -> None:
        self.io.unwatch(fd)
        os.close(fd)
        del process.outputs[fd]
        if process.outputs:
            return
        if process is self.init:
            for conn in list(self._attached):
                self._send(conn, EofEvent())
            self._maybe_finish_init()
        else:
            self._maybe_finish_exec(process)

    def _process(self, pid: int, stdout: int, stderr: int, stdin: int) -> Process:
        process = Process(pid, stdout, stderr, StdinPipe(stdin, self.io) if stdin >= 0 else None)
        if process.stdin is not None:
            process.stdin.on_backlog(lambda full: self._pause_stdin_writers(process, full))
        return process

    def _stdin_target(self, conn: Conn) -> Process | None:
        return conn.exec if conn.exec is not None else self.init

    def _write_stdin(self, conn: Conn, data: bytes) -> None:
        process = self._stdin_target(conn)
        if conn.stdin and process is not None and process.stdin is not None:
            process.stdin.write(data)

    def _pause_stdin_writers(self, process: Process, full: bool) -> None:
        writers = [process.conn] if process is not self.init else self._attached
        for conn in writers:
            if conn is not None and conn.stdin:
                self.io.set_paused(conn, full)

    def _close_stdin_of(self, conn: Conn) -> None:
        process = self._stdin_target(conn)
        if conn.stdin and process is not None and process.stdin is not None:
            process.stdin.close()

    def _close_process(self, process: Process) -> None:
        for fd in list(process.outputs):
            if self.io.watching(fd):
                self.io.unwatch(fd)
            os.close(fd)
        process.outputs.clear()
        if process.stdin is not None:
            process.stdin.abandon()

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
            code = code if code >= 0 else 128 - code  # killed by signal n -> 128+n
            if self.init is not None and pid == self.init.pid:
                self._on_init_exit(code)
            elif pid in self.execs:
                self._on_exec_exit(self.execs[pid], code)
            # Anything else is an orphan re-parented to us (we are a subreaper): reaped.

    def _on_init_exit(self, code: int) -> None:
        init = self._init()
        if init.status is not None:
            # The pipe holds everything the init wrote before dying; read it now so an
            # exec error is part of the recorded status.
            self._on_init_status()
        status = ExitStatus(exit_code=code, exited_at_ns=time.time_ns(), error=init.exec_error)
        try:
            write_exit_status(self.spec.bundle_dir, status)  # on disk before anyone is told
        except OSError as exc:
            # Still tell the clients; they at least learn it from us while we live.
            log_exception("cannot record the exit status")
            note = f"the shim could not record this exit on disk: {exc}"
            status = ExitStatus(code, status.exited_at_ns, f"{status.error}; {note}".lstrip("; "))
        init.exit = status
        self.task.move(STOPPED)
        if self._start_w >= 0:
            os.close(self._start_w)
            self._start_w = -1
        self._reply_start()
        if init.stdin is not None:
            init.stdin.close()
        init.drain_deadline = time.monotonic() + _DRAIN_TIMEOUT
        self._maybe_finish_init()

    def _maybe_finish_init(self) -> None:
        init = self._init()
        if init.exit is None or init.outputs or self._finished:
            return
        self._finished = True
        reply = wire.encode_control(messages.encode(WaitResponse(init.exit)))
        for conn in list(self._waiters):
            self.io.send(conn, reply)
        self._waiters.clear()
        if self._shutdown_conns:
            self._shutdown()

    def _on_exec_exit(self, process: Process, code: int) -> None:
        if process.status is not None:
            self._on_exec_status(process)
        process.exit = ExitStatus(
            exit_code=code, exited_at_ns=time.time_ns(), error=process.exec_error
        )
        try:
            # On disk before anyone is told, so a palletd that was away still learns it.
            write_exec_exit(self.spec.bundle_dir, process.exec_id, process.exit)
        except OSError:
            log_exception("cannot record the exit status of exec " + process.exec_id)
        if process.stdin is not None:
            process.stdin.close()
        process.drain_deadline = time.monotonic() + _DRAIN_TIMEOUT
        self._maybe_finish_exec(process)

    def _maybe_finish_exec(self, process: Process) -> None:
        if process.exit is None or process.outputs:
            return
        if process.status is not None:
            self.io.unwatch(process.status.fd)
            os.close(process.status.fd)
            process.status = None
        self.execs.pop(process.pid, None)
        self.execs_by_id.pop(process.exec_id, None)
        for waiter in process.waiters:
            self._send(waiter, WaitResponse(process.exit))
        process.waiters.clear()
        conn = process.conn
        if conn is not None:
            conn.exec = None
            self._send(conn, ExitEvent(process.exit))
            conn.close_after_flush = True
            self.io.flush(conn)

    # -- the end ---------------------------------------------------------------------------

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
        left = cgroups.remove(self.cgroup_dirs)
        if left:
            print(f"pallet-shim[{os.getpid()}]: cgroups still busy: {left}", file=sys.stderr)
        if self.log is not None:
            self.log.close()
            self.log = None


def _alive(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _kill(pid: int, signum: int) -> None:
    if pid <= 0:
        return
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _reap_blocking(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass

