"""palletd's side of the shims: start them through the launcher, talk to them, re-adopt them.

Owns: `ShimLauncherImpl` (starts `pallet-shim launcher` on first use, or finds the one a
previous palletd left running; asks it to fork a shim per container; reconnects to live
shims) and `ShimClientImpl` with its `Stdio` / `ExecSession` streams. Every request has a
deadline, so a hung shim surfaces as `DeadlineExceeded` ("the shim (pid N) of container X
does not answer (stopped or hung)"; at once for one /proc shows stopped) and a dead one as
`Unavailable`; neither can hang the daemon. Must not: interpret container state (the container manager
does) or keep shims alive (they outlive palletd by design).

Connections: one control connection per client for short requests (serialised by a lock),
and one connection of its own for each `wait`, `attach` and `exec`, since those stream,
and for each `freeze`, which lasts as long as its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import structlog

from pallet.v1.errors import DeadlineExceeded, Internal, PalletError, Unavailable
from pallet.daemon.shims import hung
from pallet.daemon.shims.api import ExecSession, ShimClient, Stdio
from pallet.shim.api.spec import ExecSpec, ExitStatus, Output, Resources, ShimSpec, ShimState
from pallet.daemon.shims.channel import Channel
from pallet.daemon.shims.delete import shim_delete
from pallet.shim.api.delete import DeleteResult
from pallet.shim.api import sockpath, wire
from pallet.shim.api.messages import (
    DEFAULT_IDLE_EXIT,
    Ack,
    AttachRequest,
    CloseStdinRequest,
    EofEvent,
    Event,
    ExecRequest,
    ExecResponse,
    ExecWaitRequest,
    ExitEvent,
    FreezeRequest,
    KillExecRequest,
    KillRequest,
    LeftoversRequest,
    LeftoversResponse,
    PauseRequest,
    PingRequest,
    PingResponse,
    Request,
    ResizeRequest,
    ResumeRequest,
    ShutdownRequest,
    SpawnRequest,
    SpawnResponse,
    StartRequest,
    StartResponse,
    StateRequest,
    StateResponse,
    ThawRequest,
    UpdateRequest,
    WaitRequest,
    WaitResponse,
)
from pallet.shim.api.files import (
    discard_exec_exit,
    discard_exit_status,
    read_exec_exit,
    read_exit_status,
    write_seccomp,
    write_spec,
)

log = structlog.get_logger(__name__)

R = TypeVar("R")

DEFAULT_CALL_TIMEOUT = 5.0
DEFAULT_SPAWN_TIMEOUT = 60.0
LAUNCHER_START_TIMEOUT = 30.0


#: The most output `coalesce` puts in one chunk.
COALESCE_BYTES = 1 << 20


def coalesce(outputs: list[Output], limit: int = COALESCE_BYTES) -> list[Output]:
    """Merge adjacent chunks of the same stream (up to `limit` bytes each).

    Output that queued up while palletd was busy goes on as a few big gRPC messages
    instead of one per pipe read; a merged chunk keeps its first part's capture time.
    """
    merged: list[Output] = []
    parts: list[bytes] = []
    size = 0
    for out in outputs:
        if parts and (out.stream != merged[-1].stream or size + len(out.data) > limit):
            merged[-1] = replace(merged[-1], data=b"".join(parts))
            parts, size = [], 0
        if not parts:
            merged.append(out)
        parts.append(out.data)
        size += len(out.data)
    if len(parts) > 1:
        merged[-1] = replace(merged[-1], data=b"".join(parts))
    return merged


class _Stdio:
    """The output of the container's init (or an exec) as it is produced, and its stdin."""

    def __init__(self, channel: Channel, timeout: float) -> None:
        self._channel = channel
        self._timeout = timeout

    async def output(self) -> AsyncIterator[Output]:
        while True:
            try:
                frames = await self._channel.read_frames(None)
            except Unavailable:
                return  # the shim went away: no more output will come
            ended = False
            outputs: list[Output] = []
            for kind, payload in frames:
                if kind in (wire.STDOUT, wire.STDERR):
                    time_ns, data = wire.decode_output(payload)
                    outputs.append(Output(stream=kind, data=data, time_ns=time_ns))
                elif kind == wire.CONTROL and isinstance(_event(self._channel, payload), EofEvent):
                    ended = True
                    break
            for out in coalesce(outputs):
                yield out
            if ended:
                return

    async def write_stdin(self, data: bytes) -> None:
        await self._channel.send(wire.encode_stdin(data), self._timeout)

    async def close_stdin(self) -> None:
        await self._channel.send_request(CloseStdinRequest(), self._timeout)

    async def aclose(self) -> None:
        await self._channel.close()


def _event(channel: Channel, payload: bytes) -> Event:
    """The event in a control frame of an output stream (Internal if it is none)."""
    try:
        raw = wire.decode_control(payload)
    except wire.FrameError as exc:
        raise Internal(f"{channel.peer} sent a malformed message: {exc}") from None
    return channel.decode(raw, Event)


class _ExecSession:
    """A running exec: output until it ends, then its exit status.

    One reader task (owned here, cancelled by aclose) feeds both `output()` and `wait()`,
    so either may be used alone or both at once.
    """

    def __init__(self, channel: Channel, pid: int, timeout: float) -> None:
        self.pid = pid
        self._channel = channel
        self._timeout = timeout
        self._queue: asyncio.Queue[Output | None] = asyncio.Queue()
        self._exit: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(), name=f"exec-{pid}-reader")

    async def _read(self) -> None:
        try:
            while True:
                outputs: list[Output] = []
                exit_status: ExitStatus | None = None
                for kind, payload in await self._channel.read_frames(None):
                    if kind in (wire.STDOUT, wire.STDERR):
                        time_ns, data = wire.decode_output(payload)
                        outputs.append(Output(stream=kind, data=data, time_ns=time_ns))
                    elif kind == wire.CONTROL:
                        event = _event(self._channel, payload)
                        if isinstance(event, ExitEvent):
                            exit_status = event.exit
                            break
                for out in coalesce(outputs):
                    self._queue.put_nowait(out)
                if exit_status is not None:
                    self._exit.set_result(exit_status)
                    return
        except PalletError as exc:  # gone (Unavailable) or confused (Internal)
            if not self._exit.done():
                self._exit.set_exception(
                    type(exc)(f"{exc.message}; the exit status of exec {self.pid} is unknown")
                )
        finally:
            self._queue.put_nowait(None)

    async def output(self) -> AsyncIterator[Output]:
        while True:
            item = await self._queue.get()
            if item is None:
                self._queue.put_nowait(None)  # later readers see the end too
                return
            yield item

    async def wait(self) -> ExitStatus:
        return await asyncio.shield(self._exit)

    async def write_stdin(self, data: bytes) -> None:
        await self._channel.send(wire.encode_stdin(data), self._timeout)

    async def close_stdin(self) -> None:
        await self._channel.send_request(CloseStdinRequest(), self._timeout)

    async def aclose(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        if not self._exit.done():
            self._exit.cancel()
        await self._channel.close()


class _Freeze:
    """A freeze held on a connection of its own: the shim thaws when it closes."""

    def __init__(self, channel: Channel, timeout: float) -> None:
        self._channel = channel
        self._timeout = timeout

    async def thaw(self) -> None:
        try:
            await self._channel.request(ThawRequest(), Ack, self._timeout)
        finally:
            await self._channel.close()  # thaws too, should the request have failed


class ShimClientImpl:
    """A connection to one container's shim."""

    def __init__(
        self,
        container_id: str,
        socket_path: str,
        bundle_dir: Path,
        shim_pid: int,
        control: Channel | None = None,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
    ) -> None:
        self.container_id = container_id
        self.shim_pid = shim_pid
        self._socket_path = socket_path
        self._bundle_dir = bundle_dir
        self._control = control
        self._timeout = call_timeout
        self._lock = asyncio.Lock()

    @property
    def _peer(self) -> str:
        pid = f" (pid {self.shim_pid})" if self.shim_pid else ""
        return f"the shim{pid} of container {self.container_id[:12]}"

    async def _open(self) -> Channel:
        return await Channel.open(self._socket_path, self._peer, self._timeout)

    async def _call(self, request: Request, expect: type[R], timeout: float | None = None) -> R:
        timeout = timeout or self._timeout
        self._check_not_stopped(request)
        async with self._lock:
            try:
                if self._control is None:
                    self._control = await self._open()
                await self._control.send_request(request, timeout)
                raw = await self._control.read_control(timeout)
            except DeadlineExceeded:
                await self._drop_control()
                raise self._not_answering(request, timeout) from None
            except BaseException:
                # After a timeout or a broken pipe the stream position is unknown: start
                # over on a fresh connection next time.
                await self._drop_control()
                raise
            return self._control.decode(wire.raise_if_error(raw), expect)

    def _check_not_stopped(self, request: Request) -> None:
        """A stopped shim cannot answer until it is continued: say so now, not after
        the deadline."""
        if self.shim_pid and hung.process_state(self.shim_pid) in hung.STOPPED:
            raise self._not_answering(request, 0)

    async def _request(self, channel: Channel, request: Request, expect: type[R]) -> R:
        """`channel.request` on a stream connection of its own (closed on failure)."""
        try:
            self._check_not_stopped(request)
        except DeadlineExceeded:
            await channel.close()
            raise
        try:
            return await channel.request(request, expect, self._timeout)
        except DeadlineExceeded:
            await channel.close()
            raise self._not_answering(request, self._timeout) from None
        except BaseException:
            await channel.close()
            raise

    def _not_answering(self, request: Request, timeout: float) -> DeadlineExceeded:
        """The error for a shim that let a request's deadline pass: it lives (it would
        have closed its socket otherwise) but does not answer."""
        why = hung.describe_state(self.shim_pid) if self.shim_pid else ""
        waited = f"no reply to {request.op!r} within {timeout:g}s" if timeout else (
            f"{request.op!r} not sent")
        return DeadlineExceeded(
            f"{self._peer} does not answer (stopped or hung): {waited}"
            + (f"; {why}" if why else "")
        )

    async def _drop_control(self) -> None:
        control, self._control = self._control, None
        if control is not None:
            await control.close()

    async def start(self) -> int:
        return (await self._call(StartRequest(), StartResponse)).pid

    async def state(self) -> ShimState:
        return await self._call(StateRequest(), StateResponse)

    async def kill(self, signal: int, all_processes: bool = False) -> None:
        await self._call(KillRequest(signal=signal, all=all_processes), Ack)

    async def kill_exec(self, exec_id: str, signal: int) -> None:
        await self._call(KillExecRequest(exec_id=exec_id, signal=signal), Ack)

    async def wait(self) -> ExitStatus:
        """Wait for the exit; no deadline on the wait itself, but a dead shim ends it.

        If the shim dies first: Unavailable. The caller reads the status on disk, which
        only it can tell apart from a previous run's (it knows when this run started).
        """
        channel: Channel | None = None
        try:
            channel = await self._open()
            await channel.send_request(WaitRequest(), self._timeout)
            return (await channel.read_reply(WaitResponse, None)).exit
        finally:
            if channel is not None:
                await channel.close()

    async def attach(self, stdin: bool, stdout: bool, stderr: bool) -> Stdio:
        channel = await self._open()
        await self._request(channel, AttachRequest(stdin=stdin, stdout=stdout, stderr=stderr), Ack)
        return _Stdio(channel, self._timeout)

    async def exec(self, spec: ExecSpec) -> ExecSession:
        channel = await self._open()
        reply = await self._request(channel, ExecRequest(spec), ExecResponse)
        return _ExecSession(channel, reply.pid, self._timeout)

    async def wait_exec(self, exec_id: str) -> ExitStatus:
        """The exit of an exec; no deadline on the wait itself, but a dead shim ends it."""
        channel = await self._open()
        try:
            await channel.send_request(ExecWaitRequest(exec_id), self._timeout)
            return (await channel.read_reply(WaitResponse, None)).exit
        finally:
            await channel.close()

    async def freeze(self) -> _Freeze:
        channel = await self._open()
        await self._request(channel, FreezeRequest(), Ack)
        return _Freeze(channel, self._timeout)

    async def pause(self) -> None:
        await self._call(PauseRequest(), Ack)

    async def resume(self) -> None:
        await self._call(ResumeRequest(), Ack)

    async def resize(self, height: int, width: int, exec_id: str = "") -> None:
        await self._call(ResizeRequest(height=height, width=width, exec_id=exec_id), Ack)

    async def update(self, resources: Resources) -> None:
        await self._call(UpdateRequest(resources), Ack)

    async def shutdown(self) -> None:
        # Generous: a created container is killed first, and cgroup removal may wait.
        await self._call(ShutdownRequest(), Ack, max(self._timeout, 10.0))
        await self._drop_control()

    async def aclose(self) -> None:
        async with self._lock:
            await self._drop_control()


class ShimLauncherImpl:
    """Starts shims through the fork-server and re-adopts running ones."""

    def __init__(
        self,
        run_root: Path,
        *,
        python: str = sys.executable,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        spawn_timeout: float = DEFAULT_SPAWN_TIMEOUT,
        idle_exit: float = DEFAULT_IDLE_EXIT,
    ) -> None:
        self.run_root = Path(run_root).absolute()
        self._python = python
        self._timeout = call_timeout
        self._spawn_timeout = spawn_timeout
        self._idle_exit = idle_exit
        self._launcher_lock = asyncio.Lock()

    @property
    def launcher_socket(self) -> str:
        return sockpath.launcher_socket(str(self.run_root))

    async def spawn(self, spec: ShimSpec, seccomp: bytes = b"") -> ShimClient:
        await asyncio.to_thread(_prepare_bundle, spec, seccomp)
        channel = await self._launcher_channel()
        try:
            reply = await channel.request(
                SpawnRequest(bundle=spec.bundle_dir, idle_exit=self._idle_exit),
                SpawnResponse,
                self._spawn_timeout,
            )
        except BaseException:
            await channel.close()
            raise
        # The shim answered on the launcher's connection and now serves it as ours.
        channel.peer = f"the shim (pid {reply.shim_pid}) of container {spec.container_id[:12]}"
        log.debug("shim spawned", container_id=spec.container_id, shim_pid=reply.shim_pid)
        return ShimClientImpl(
            spec.container_id,
            sockpath.shim_socket(str(self.run_root), spec.container_id),
            Path(spec.bundle_dir),
            reply.shim_pid,
            control=channel,
            call_timeout=self._timeout,
        )

    async def connect(self, container_id: str, bundle_dir: Path) -> ShimClient:
        client = ShimClientImpl(
            container_id,
            sockpath.shim_socket(str(self.run_root), container_id),
            Path(bundle_dir),
            shim_pid=0,
            call_timeout=self._timeout,
        )
        try:
            state = await client.state()
        except BaseException:
            await client.aclose()
            raise
        client.shim_pid = state.shim_pid
        return client

    def exit_status_on_disk(self, bundle_dir: Path) -> ExitStatus | None:
        return read_exit_status(str(bundle_dir))

    def exec_exit_on_disk(self, bundle_dir: Path, exec_id: str) -> ExitStatus | None:
        return read_exec_exit(str(bundle_dir), exec_id)

    def discard_exec_exit(self, bundle_dir: Path, exec_id: str) -> None:
        discard_exec_exit(str(bundle_dir), exec_id)

    async def delete(self, container_id: str, bundle_dir: Path, cgroup_path: str) -> DeleteResult:
        return await shim_delete(self._python, self.run_root, container_id, bundle_dir, cgroup_path)

    async def kill_unresponsive(self, container_id: str, shim_pid: int, init_pid: int) -> list[int]:
        sock = sockpath.shim_socket(str(self.run_root), container_id)
        killed = await hung.kill_shim_async(sock, shim_pid, init_pid)
        log.warning("killed a shim that does not answer", container_id=container_id,
                    shim_pid=shim_pid, killed=killed)
        return killed

    async def has_leftovers(self, container_id: str, bundle_dir: Path) -> bool:
        """Whether the container has a shim socket or a cgroup on the host (the launcher
        looks: it knows the cgroup layout, and asking it costs no new interpreter)."""
        channel = await self._launcher_channel()
        try:
            reply = await channel.request(
                LeftoversRequest(container_id=container_id, bundle=str(bundle_dir)),
                LeftoversResponse,
                self._timeout,
            )
        finally:
            await channel.close()
        return reply.socket or bool(reply.cgroups)

    async def launcher_pid(self) -> int:
        """Pid of the running launcher (started if needed)."""
        channel = await self._launcher_channel()
        try:
            return (await channel.request(PingRequest(), PingResponse, self._timeout)).pid
        finally:
            await channel.close()

    async def aclose(self) -> None:
        """Nothing to stop: the launcher and the shims outlive palletd on purpose."""

    async def _launcher_channel(self) -> Channel:
        try:
            return await Channel.open(self.launcher_socket, "shim launcher", self._timeout)
        except Unavailable:
            pass
        async with self._launcher_lock:
            try:
                return await Channel.open(self.launcher_socket, "shim launcher", self._timeout)
            except Unavailable:
                await self._start_launcher()
            return await Channel.open(self.launcher_socket, "shim launcher", self._timeout)

    async def _start_launcher(self) -> None:
        await asyncio.to_thread(_compile_shim_code)
        # Not a PATH lookup: the daemon's own interpreter, so venvs and editable installs work.
        process = await asyncio.create_subprocess_exec(
            self._python, "-m", "pallet.shim.main", "launcher", "--run-root", str(self.run_root),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, err = await asyncio.wait_for(process.communicate(), LAUNCHER_START_TIMEOUT)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            raise Unavailable(
                f"the shim launcher for {self.run_root} did not start within "
                f"{LAUNCHER_START_TIMEOUT:g}s"
            ) from None
        if process.returncode != 0:
            raise Internal(
                f"the shim launcher for {self.run_root} failed to start: "
                f"{err.decode(errors='replace').strip()}"
            )
        log.info("shim launcher started", run_root=str(self.run_root))


def _compile_shim_code() -> None:
    """Write the .pyc files of the code the launcher imports, where missing or stale.

    The launcher lives on and every shim is a fork of it. One that had to compile its
    modules from source (no .pyc yet: an editable install run with
    PYTHONDONTWRITEBYTECODE=1, say) keeps the compiler's leftovers among them, and every
    shim then copies more of its pages: 0.05-0.2 MiB more PSS per shim, measured with
    20 running (bench/security.py). Best effort: a tree we may not write to was compiled
    when it was installed, and the launcher starts all the same.
    """
    import compileall

    import pallet.shim.api
    import pallet.v1

    # The shim's package is the API's parent (the daemon imports nothing else of it).
    shim_dirs = [os.path.dirname(api) for api in pallet.shim.api.__path__]
    for directory in [*shim_dirs, *pallet.v1.__path__]:
        compileall.compile_dir(directory, quiet=2)


def _prepare_bundle(spec: ShimSpec, seccomp: bytes) -> None:
    os.makedirs(spec.bundle_dir, mode=0o711, exist_ok=True)
    if spec.linux.seccomp:
        write_seccomp(spec.bundle_dir, seccomp)  # before the spec that names it
    write_spec(spec)
    # The shim removes it too, before its fork; here as well, so no reader sees the last
    # run's status once this start is under way, even if the shim never gets that far.
    discard_exit_status(spec.bundle_dir)
