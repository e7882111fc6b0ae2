"""The container's task: its init and exec processes, their state, the requests about them.

Owns: building the container's init up to its waiting exec (log file, cgroup, the fork,
through a `StdioPlan`), its state machine (`InitState`), the requests about it (state,
start, kill, wait, attach, close_stdin, update (new cgroup limits, live), freeze and thaw, each freeze held by the connection
that asked; pause and resume, a freeze of the shim's own that outlives every connection;
exec only once it runs, see `pallet.shim.execs`),
and what follows its exit: the status written to exit.json first, then the waiting
clients told. A disk that refuses exit.json (full, failing) delays nothing: the status is
kept in memory, told to the clients (palletd hears it from `wait` and `state`), and
written on a retry timer (`retry_writes`); the shim does not idle-exit before it is on
disk (`may_idle_exit`), so the exit is never lost. The same timer records output the log
dropped (`LogWriter.flush_drops`). Must not: own the socket, the loop or the shim's end (`pallet.shim.server`),
or read output (`pallet.shim.output`).
"""

from __future__ import annotations

import os
import selectors
import signal
import time
from collections.abc import Callable

from pallet.v1.errors import FailedPrecondition, Internal, InvalidArgument, PalletError
from pallet.shim import diaglog
from pallet.shim.cgroups import Cgroup, NoCgroup, destroy, devices, open_cgroup
from pallet.shim.api import messages, wire
from pallet.shim.api.files import discard_exit_status, write_exit_status
from pallet.shim.api.messages import (
    Ack,
    AttachRequest,
    CloseStdinRequest,
    EofEvent,
    ExecRequest,
    FreezeRequest,
    KillExecRequest,
    KillRequest,
    PauseRequest,
    ResizeRequest,
    ResumeRequest,
    StartRequest,
    StartResponse,
    StateRequest,
    ThawRequest,
    UpdateRequest,
    WaitRequest,
    WaitResponse,
)
from pallet.shim.api.spec import ExitStatus, ShimSpec, ShimState
from pallet.shim.children import Process
from pallet.shim.connections import Conn, Connections
from pallet.shim.execs import DRAIN_TIMEOUT, Execs, Reply
from pallet.shim.logfile import LogWriter
from pallet.shim.output import Output
from pallet.shim.processes import StatusReader, fork_init, wait_for
from pallet.shim.states import CREATED, RUNNING, STOPPED, InitState
from pallet.shim.stdio import StdioPlan
from pallet.shim.steps import enter_pid_namespace
from pallet.shim.syscalls import Syscalls
from pallet.shim.tty import check_size, set_window_size

_CREATE_TIMEOUT = 60.0
# How long the processes killed at shutdown may take to leave the container's cgroup.
_RELEASE_TIMEOUT = 5.0
#: How often a shim tries again to write what the disk refused (exit.json, a log's gap).
RETRY_S = 1.0


class Task:
    """One container's processes, as the shim supervises them."""

    def __init__(
        self,
        spec: ShimSpec,
        syscalls: Syscalls,
        io: Connections,
        output: Output,
        *,
        fds_to_close: Callable[[], list[int]],
        on_finished: Callable[[], None],
    ) -> None:
        self.spec = spec
        self.sys = syscalls
        self.id = spec.container_id
        self.io = io
        self.output = output
        self.state = InitState(spec.container_id)
        self.started_at_ns = 0
        self.init: Process | None = None
        self.execs = Execs(
            spec, syscalls, io, output, fds_to_close=lambda: fds_to_close() + self.process_fds()
        )
        self.cgroup: Cgroup = NoCgroup()
        self.finished = False  # init exited (status known), output drained
        self.exit_on_disk = False  # exit.json written (or no longer wanted: bundle gone)
        self._exit_write_failed = False
        self._retry_at = 0.0  # monotonic; 0: no retry armed
        self._fds_to_close = fds_to_close  # the shim's own fds no child may inherit
        self._on_finished = on_finished
        self._start_w = -1
        self._start_conn: Conn | None = None
        self._start_requested = False
        self._waiters: list[Conn] = []
        # Connections holding a freeze of the container's cgroup (FreezeRequest).
        self._freezers: set[Conn] = set()
        # Paused (PauseRequest): frozen until a ResumeRequest, whoever holds a connection.
        # The cgroup is frozen while this is set or any connection holds a freeze.
        self.paused = False
        # The cgroup's OOM kill count when it was made: more at the init's exit is an OOM.
        self._oom_kills_before = 0

    def _send(self, conn: Conn, message: object) -> None:
        self.io.send(conn, wire.encode_control(messages.encode(message)))

    # -- creation (blocking: nothing else to serve yet) ----------------------------------

    def create(self) -> None:
        """Build the container up to its waiting init. On failure `release()` undoes it."""
        spec = self.spec
        # A previous run's status must not pass for this one's if we die without writing
        # ours: gone (durably) before there is a process whose exit it could be taken for.
        discard_exit_status(spec.bundle_dir)
        try:
            self.output.log = LogWriter(
                spec.log.path, spec.log.max_size, spec.log.max_files, warn=diaglog.warn
            )
        except OSError as exc:
            raise FailedPrecondition(
                f"cannot open the log file {spec.log.path}: {exc.strerror or exc}"
            ) from None
        cgroup = open_cgroup(spec.linux.cgroups_path)
        cgroup.create()  # raises, naming the path and the reason: no cgroup, no container
        self.cgroup = cgroup
        # Before any process is in it: nothing of the container opens a device unchecked.
        devices.apply(cgroup, spec.linux.device_cgroup, self.sys)
        # Before our first fork: it applies to our children only, the first becoming the
        # container's PID 1 and later ones (exec processes) members of its namespace.
        enter_pid_namespace(spec, self.sys)
        plan = StdioPlan(stdin=spec.process.stdin, start_gate=True, terminal=spec.process.terminal)
        try:
            pid = fork_init(spec, self.sys, plan.child_stdio(self._fds_to_close()))
        except BaseException:
            plan.close()
            raise
        plan.forked()
        self._start_w = plan.start_w
        os.set_blocking(plan.status_r, False)
        reader = StatusReader(plan.status_r)
        # A terminal's ends exist once the init sent its master (before "ready").
        process = None if plan.terminal else self.output.process(pid, plan, reader)
        try:
            # While the init mounts its filesystem: the v1 migration is slow (see steps).
            self.cgroup.join(pid)
            os.write(plan.cgroup_w, b"j")
            os.close(plan.cgroup_w)
            wait_for(reader, {"ready"}, time.monotonic() + _CREATE_TIMEOUT)
            if process is None:
                plan.take_console(timeout=1.0)  # sent already: this does not wait
                if plan.console < 0:
                    raise Internal("the container's terminal was not set up (see the shim log)")
                process = self.output.process(pid, plan, reader)
            # The limits once the init has built the container (it waits at the start
            # gate), before its program runs: as runc sets them at procReady. Earlier, a
            # small --cpus or --pids-limit would throttle or break our own setup steps.
            self.cgroup.set_resources(spec.linux.resources)
            self._oom_kills_before = self.cgroup.oom_kills()
        except BaseException:
            # The init exits by itself after reporting an error; a hang gets killed.
            _kill(pid, signal.SIGKILL)
            _reap_blocking(pid)
            if process is not None:
                self.output.close_process(process)
            else:
                plan.close_console()
            os.close(plan.status_r)
            os.close(plan.start_w)
            self._start_w = -1
            raise
        self.init = process
        self.output.watch(process, None, self._maybe_finish_init)

    def _processes(self) -> list[Process]:
        return ([self.init] if self.init else []) + self.execs.processes()

    def process_fds(self) -> list[int]:
        """Every pipe end of ours a new child must not inherit."""
        fds: list[int] = []
        for process in self._processes():
            fds.extend(process.outputs)
            if process.stdin is not None and process.stdin.fd >= 0:
                fds.append(process.stdin.fd)
            if process.status is not None:
                fds.append(process.status.fd)
            if process.console >= 0:
                fds.append(process.console)
        if self._start_w >= 0:
            fds.append(self._start_w)
        return fds

    def release(self) -> None:
        """What the task made on the host: the container's cgroup; and the log file.

        Whatever is still in the cgroup is killed first: without a pid namespace of its
        own (a spec may leave it out) the init's children outlive it, and the cgroup could
        not be removed while they run (containerd's shim does the same for a shared pid
        namespace). The shim itself is not in the cgroup.
        """
        # A frozen task (v1) would not even die of SIGKILL: the pause and the freezes go.
        paused, self.paused = self.paused, False
        for conn in list(self._freezers):
            self._release_freeze(conn)
        if paused:
            self._thaw_unless_held()
        try:
            killed, left = destroy(self.cgroup, _RELEASE_TIMEOUT)
        except PalletError as exc:
            left, reason = self.cgroup.paths(), f": {exc}"
        else:
            reason = ""
            if killed:
                diaglog.warn(f"killed what the container left: {killed}")
        if left:
            diaglog.warn(f"cgroups left: {left}{reason}")
        if self.output.log is not None:
            self.output.log.close()
            self.output.log = None

    # -- requests ----------------------------------------------------------------------

    def _init(self) -> Process:
        assert self.init is not None
        return self.init

    def op_state(self, conn: Conn, request: StateRequest) -> ShimState:
        init = self._init()
        status = self.state.status
        return ShimState(
            status=status,
            pid=init.pid if status is not CREATED else 0,
            shim_pid=os.getpid(),
            exit=init.exit,
            started_at_ns=self.started_at_ns,
            paused=self.paused and status is RUNNING,
        )

    def op_start(self, conn: Conn, request: StartRequest) -> Reply:
        self.state.require({CREATED}, "it can only be started once")
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
        init.exec_error = init.exec_error or reader.read_failure()
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
        if self.state.status is CREATED:
            self.state.move(RUNNING)
        self._reply_start()

    def _reply_start(self) -> None:
        conn, self._start_conn = self._start_conn, None
        if conn is None:
            return
        init = self._init()
        if init.exec_error:
            self.io.send(conn, wire.encode_control(wire.error_reply(FailedPrecondition(init.exec_error))))
        else:
            self._send(conn, StartResponse(pid=init.pid))

    def op_kill(self, conn: Conn, request: KillRequest) -> Ack:
        signum = request.signal
        if not 0 < signum < signal.NSIG:
            raise InvalidArgument(f"invalid signal {signum!r}")
        init = self._init()
        self.state.require({CREATED, RUNNING}, "it is not running, there is nothing to signal")
        if request.all:
            self.cgroup.kill(signum)
        _kill(init.pid, signum)
        return Ack()

    def op_kill_exec(self, conn: Conn, request: KillExecRequest) -> Ack:
        """Signal one exec's process (its process only, as containerd kills an exec)."""
        signum = request.signal
        if not 0 < signum < signal.NSIG:
            raise InvalidArgument(f"invalid signal {signum!r}")
        process = self.execs.running(request.exec_id)
        if process.exit is not None:
            raise FailedPrecondition(f"exec {request.exec_id} has ended")
        _kill(process.pid, signum)
        return Ack()

    def op_update(self, conn: Conn, request: UpdateRequest) -> Ack:
        """New limits for the container's cgroup, live (`pallet update`): all of them
        or, when the kernel refuses one, none (what was written is put back)."""
        self.state.require({CREATED, RUNNING}, "it is not running: its next start applies the limits")
        self.cgroup.set_resources(request.resources, live=True)
        return Ack()

    def op_freeze(self, conn: Conn, request: FreezeRequest) -> Ack:
        self.state.require({RUNNING}, "only a running container can be frozen")
        if not self._frozen():
            # Blocks for the few milliseconds the kernel takes (bounded: see the cgroup).
            self.cgroup.freeze()
        self._freezers.add(conn)
        return Ack()

    def op_pause(self, conn: Conn, request: PauseRequest) -> Ack:
        self.state.require({RUNNING}, "only a running container can be paused")
        if not self._frozen():
            self.cgroup.freeze()  # raises (and leaves it running) when it cannot
        self.paused = True
        return Ack()

    def op_resume(self, conn: Conn, request: ResumeRequest) -> Ack:
        if self.paused:
            self.paused = False
            if not self._freezers:
                self.cgroup.thaw()
        return Ack()

    def _frozen(self) -> bool:
        return self.paused or bool(self._freezers)

    def op_thaw(self, conn: Conn, request: ThawRequest) -> Ack:
        self._release_freeze(conn)
        return Ack()

    def _release_freeze(self, conn: Conn) -> None:
        if conn not in self._freezers:
            return
        self._freezers.discard(conn)
        self._thaw_unless_held()

    def _thaw_unless_held(self) -> None:
        """Thaw the cgroup unless a pause or a connection's freeze still holds it."""
        if self._frozen():
            return
        try:
            self.cgroup.thaw()
        except PalletError as exc:
            diaglog.warn(f"cannot thaw the container's cgroup: {exc}")

    def kill_unstarted(self) -> None:
        """Deleted before start: the init waiting for its exec dies (and is reaped)."""
        _kill(self._init().pid, signal.SIGKILL)

    def op_wait(self, conn: Conn, request: WaitRequest) -> Reply:
        if self.finished:
            exit = self._init().exit
            assert exit is not None
            return WaitResponse(exit)
        self._waiters.append(conn)
        conn.mode = "wait"
        return None

    def op_attach(self, conn: Conn, request: AttachRequest) -> Reply:
        init = self._init()
        conn.mode = "attach"
        conn.stdout = request.stdout
        conn.stderr = request.stderr
        conn.stdin = request.stdin and init.stdin is not None
        self.output.attached.append(conn)
        self._send(conn, Ack())
        if not init.outputs:
            self._send(conn, EofEvent())
        return None

    def op_exec(self, conn: Conn, request: ExecRequest) -> Reply:
        self.state.require({RUNNING}, "it is not running, start it first")
        return self.execs.start(conn, request, self._init().pid, self.cgroup)

    def op_resize(self, conn: Conn, request: ResizeRequest) -> Ack:
        """The window size of the init's terminal, or of an exec's."""
        check_size(request.height, request.width)
        if request.exec_id:
            process = self.execs.running(request.exec_id)
        else:
            self.state.require({RUNNING}, "start it first")
            process = self._init()
        if process.console < 0:
            what = f"exec {request.exec_id}" if request.exec_id else f"container {self.id}"
            if process.exit is not None:
                raise FailedPrecondition(f"{what} has ended: its terminal is closed")
            raise FailedPrecondition(f"{what} has no terminal: it was not started with -t")
        set_window_size(process.console, request.height, request.width)
        return Ack()

    def op_close_stdin(self, conn: Conn, request: CloseStdinRequest) -> Reply:
        target = self.stdin_target(conn)
        if target is not None and target.console >= 0:
            # A terminal's input has no end (docker's too): one client's EOF or detach
            # must not cut off the next client attached to it.
            return None
        self.output.close_stdin(conn, target)
        return None

    # -- stdin and clients -------------------------------------------------------------

    def stdin_target(self, conn: Conn) -> Process | None:
        return self.execs.stdin_of(conn) if conn.exec_pid else self.init

    def write_stdin(self, conn: Conn, data: bytes) -> None:
        self.output.write_stdin(conn, self.stdin_target(conn), data)

    def drop(self, conn: Conn) -> None:
        """A client went away: forget it wherever it waited."""
        if conn in self._waiters:
            self._waiters.remove(conn)
        if self._start_conn is conn:
            self._start_conn = None
        self._release_freeze(conn)  # a freeze ends with the connection that holds it
        self.execs.drop(conn)

    # -- exits ---------------------------------------------------------------------------

    def reaped(self, pid: int, code: int) -> None:
        """A child of ours ended with `code` (128+n for signal n)."""
        if self.init is not None and pid == self.init.pid:
            self._on_init_exit(code)
        else:
            self.execs.reaped(pid, code)
        # Anything else is an orphan re-parented to us (we are a subreaper): reaped.

    def _on_init_exit(self, code: int) -> None:
        init = self._init()
        if init.status is not None:
            # The pipe holds everything the init wrote before dying; read it now so an
            # exec error is part of the recorded status.
            self._on_init_status()
        # The kernel counts the OOM killer's kills in the cgroup; one during this run is
        # an OOM kill of the container (recorded with the exit: palletd may be down).
        try:
            oom = self.cgroup.oom_kills() > self._oom_kills_before
        except PalletError:
            oom = False
        init.exit = ExitStatus(
            exit_code=code, exited_at_ns=time.time_ns(), error=init.exec_error, oom_killed=oom
        )
        self._write_exit_status()  # on disk before anyone is told, unless the disk refuses
        self.state.move(STOPPED)
        if self._start_w >= 0:
            os.close(self._start_w)
            self._start_w = -1
        self._reply_start()
        if init.stdin is not None:
            init.stdin.close()
        init.drain_deadline = time.monotonic() + DRAIN_TIMEOUT
        self._maybe_finish_init()

    def _write_exit_status(self) -> None:
        init = self._init()
        assert init.exit is not None
        try:
            write_exit_status(self.spec.bundle_dir, init.exit)
        except FileNotFoundError:
            # The bundle is gone (the container removed): nobody is left to read it.
            diaglog.warn(f"container {self.id}: its bundle {self.spec.bundle_dir} is gone")
        except OSError as exc:
            if not self._exit_write_failed:
                # Once: the retries repeat it every second until the disk takes it.
                diaglog.warn(
                    f"container {self.id} exited with {init.exit.exit_code} but its exit "
                    f"status cannot be written to {self.spec.bundle_dir}: "
                    f"{exc.strerror or exc}; kept and reported to palletd, written once "
                    "the disk takes it (retrying every "
                    f"{RETRY_S:g} s)"
                )
            self._exit_write_failed = True
            return
        else:
            if self._exit_write_failed:
                diaglog.warn(f"container {self.id}: its exit status is written at last")
        self.exit_on_disk = True

    @property
    def may_idle_exit(self) -> bool:
        """Finished, with its exit on disk: a shim nobody talks to may go.

        Until the exit is on disk the shim is the only one who knows it (palletd may be
        down, or unable to commit it): it stays, to answer `state`/`wait` and retry.
        """
        return self.finished and self.exit_on_disk

    def _writes_pending(self) -> bool:
        init = self.init
        exit_pending = init is not None and init.exit is not None and not self.exit_on_disk
        log = self.output.log
        return exit_pending or (log is not None and log.dropping)

    def next_retry(self, now: float) -> float | None:
        """When `retry_writes` is next due; None while nothing waits for the disk."""
        if not self._writes_pending():
            self._retry_at = 0.0
            return None
        if not self._retry_at:
            self._retry_at = now + RETRY_S
        return self._retry_at

    def retry_writes(self, now: float) -> None:
        """Try again what the disk refused: exit.json, the record of dropped output."""
        if not self._retry_at or now < self._retry_at:
            return
        self._retry_at = 0.0
        init = self.init
        if init is not None and init.exit is not None and not self.exit_on_disk:
            self._write_exit_status()
        if self.output.log is not None and self.output.log.dropping:
            try:
                self.output.log.flush_drops(time.time_ns())
            except OSError:
                diaglog.log_exception("recording dropped output failed")

    def _maybe_finish_init(self) -> None:
        init = self._init()
        if init.exit is None or init.outputs or self.finished:
            return
        self.finished = True
        log = self.output.log
        if log is not None and log.dropping:
            try:
                log.flush_drops(time.time_ns(), final=True)  # no output left to compete
            except OSError:
                diaglog.log_exception("recording dropped output failed")
        reply = wire.encode_control(messages.encode(WaitResponse(init.exit)))
        for conn in list(self._waiters):
            self.io.send(conn, reply)
        self._waiters.clear()
        self._on_finished()

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
