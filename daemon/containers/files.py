"""The files of a container: `cp` in and out, and the stat it needs, for palletd.

Owns: `ContainerFiles`, which holds the container's lock for the length of a copy (so a
start cannot race a stopped container's layer mounted for it, nor a second copy), tells
the cp helper (`cphelper`) where the container's root is — its running init, or its
layers, upper directory, volumes and binds — and pumps the tar between the caller and
the helper, both streamed (a gigabyte file passes in 1 MiB pieces). It publishes docker's
`archive-path` and `extract-to-dir` container events. Must not: touch the container's
files itself (the helper does, inside the container's root), or hold a whole file.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from pallet.daemon.containers.bundle import cgroup_path
from pallet.daemon.containers.cparchive import PathInfo
from pallet.daemon.containers.model import MOUNT_BIND, MOUNT_VOLUME, Container, Status
from pallet.daemon.events.model import EventPublisher
from pallet.daemon.faults import NO_CRASHES, CrashHook
from pallet.v1.errors import FailedPrecondition, Internal, PalletError, from_code

log = structlog.get_logger(__name__)

HELPER = "pallet.daemon.containers.cphelper"
#: The size of a tar piece out of the helper: one gRPC message (the channel allows
#: 64 MiB); the helper's pipes hold 1 MiB (see `cphelper`).
READ_SIZE = 4 << 20
#: Statuses whose root is the running init's (a paused container's files are there too).
_LIVE = (Status.RUNNING, Status.PAUSED)
_STOPPED = (Status.CREATED, Status.EXITED)


class FilesHost(Protocol):
    """What the copies need of the container manager."""

    def resolve(self, ref: str) -> Container: ...

    def lock(self, container_id: str) -> asyncio.Lock: ...

    async def layer_dirs(self, c: Container) -> list[str]: ...

    def volume_dir(self, name: str) -> str: ...


@dataclass(frozen=True, slots=True)
class PutOptions:
    copy_uid_gid: bool = False
    no_overwrite_dir_non_dir: bool = True


@dataclass(frozen=True, slots=True)
class PutResult:
    entries: int
    size: int


class _Helper:
    """One running cp helper and its report lines."""

    def __init__(self, proc: asyncio.subprocess.Process, commit_fd: int, tar_fd: int = -1) -> None:
        self.proc = proc
        self.commit_fd = commit_fd
        self.tar_fd = tar_fd  # `put`: our end of the helper's stdin (non-blocking)
        self._tail: list[str] = []

    async def next_report(self) -> dict[str, Any]:
        """The next JSON report; an error report (or a helper that died) raised."""
        assert self.proc.stderr is not None
        while True:
            line = await self.proc.stderr.readline()
            if not line:
                await self.proc.wait()
                detail = " ".join(self._tail[-5:])
                raise Internal(f"the cp helper exited ({self.proc.returncode}) without an answer: {detail}")
            text = line.decode(errors="replace").strip()
            if not text.startswith("{"):
                self._tail.append(text)  # a traceback: kept for the message above
                continue
            message: dict[str, Any] = json.loads(text)
            if "error" in message:
                raise from_code(message["error"]["code"], message["error"]["message"])
            return message

    def commit(self) -> None:
        if self.commit_fd >= 0:
            os.write(self.commit_fd, b"commit\n")
            self.close_commit()

    def close_commit(self) -> None:
        if self.commit_fd >= 0:
            os.close(self.commit_fd)
            self.commit_fd = -1

    def close_tar(self) -> None:
        """The end of the tar: the helper reads EOF."""
        if self.tar_fd >= 0:
            os.close(self.tar_fd)
            self.tar_fd = -1

    async def write_tar(self, data: bytes | memoryview) -> None:
        """All of `data` into the helper's stdin, straight from its buffer: os.write on
        the pipe, waiting on the loop while the pipe is full (asyncio's pipe transport
        would copy what the pipe does not take at once, megabytes per piece of a cp)."""
        view = memoryview(data)
        loop = asyncio.get_running_loop()
        while view:
            try:
                view = view[os.write(self.tar_fd, view):]
            except BlockingIOError:
                writable: asyncio.Future[None] = loop.create_future()

                def ready(waiter: asyncio.Future[None] = writable) -> None:
                    if not waiter.done():
                        waiter.set_result(None)

                loop.add_writer(self.tar_fd, ready)
                try:
                    await writable
                finally:
                    loop.remove_writer(self.tar_fd)

    async def finish(self) -> None:
        """Ask a helper still running to stop (SIGTERM: it undoes a `put`), and reap it."""
        self.close_commit()
        self.close_tar()
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()


def _path_info(data: Mapping[str, Any]) -> PathInfo:
    return PathInfo(str(data["name"]), int(data["size"]), int(data["mode"]),
                    int(data["mtime_ns"]), str(data.get("link_target", "")))


async def _read_piece(stream: asyncio.StreamReader) -> bytes:
    """READ_SIZE bytes of the stream, fewer only at its end."""
    try:
        return await stream.readexactly(READ_SIZE)
    except asyncio.IncompleteReadError as exc:
        return exc.partial


class ContainerFiles:
    """cp for every container of one manager."""

    def __init__(self, host: FilesHost, events: EventPublisher, cgroup_parent: str,
                 crashes: CrashHook = NO_CRASHES, python: str = sys.executable) -> None:
        self._host = host
        self._events = events
        self._cgroup_parent = cgroup_parent
        self._crashes = crashes
        self._python = python

    async def _root_spec(self, c: Container, writable: bool) -> dict[str, Any]:
        if c.state.status in _LIVE and c.state.pid > 0:
            return {"pid": c.state.pid, "cgroup": cgroup_path(c, self._cgroup_parent)}
        if c.state.status not in _STOPPED:
            raise FailedPrecondition(
                f"container {c.name} is {c.state.status.value}: its files cannot be copied now"
            )
        state = c.state_dir
        mounts = []
        for m in c.host_config.mounts:
            if m.type == MOUNT_VOLUME:
                source = self._host.volume_dir(m.source)
            elif m.type == MOUNT_BIND:
                source = m.source
            else:
                continue  # tmpfs: nothing of it exists while the container does not run
            if source:
                mounts.append({"source": source, "target": m.target, "read_only": m.read_only})
        return {
            "target": f"{state}/rootfs", "upper": f"{state}/upper", "work": f"{state}/work",
            "layers": await self._host.layer_dirs(c), "mounts": mounts,
        }

    async def _spawn(self, c: Container, op: str, path: str, **extra: Any) -> _Helper:
        root = await self._root_spec(c, writable=op == "put")
        commit_read, commit_write = os.pipe() if op == "put" else (-1, -1)
        # `put` is kept only once palletd writes "commit" on this pipe (the upload whole).
        tar_read, tar_write = os.pipe() if op == "put" else (-1, -1)
        if tar_write >= 0:
            os.set_blocking(tar_write, False)
            with contextlib.suppress(OSError):  # above pipe-max-size: 64 KiB, only slower
                fcntl.fcntl(tar_write, fcntl.F_SETPIPE_SZ, READ_SIZE // 4)
        request = {
            "op": op, "path": path, "container": c.name, "parent_pid": os.getpid(),
            "root": root, "commit_fd": commit_read, **extra,
        }
        try:
            proc = await asyncio.create_subprocess_exec(
                self._python, "-m", HELPER, json.dumps(request),
                stdin=tar_read if op == "put" else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if op == "get" else asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(commit_read,) if op == "put" else (),
                limit=READ_SIZE,  # the read buffer: pieces of READ_SIZE, no pause per 128 KiB
            )
        except BaseException:
            for fd in (commit_write, tar_write):
                if fd >= 0:
                    os.close(fd)
            raise
        finally:
            for fd in (commit_read, tar_read):
                if fd >= 0:
                    os.close(fd)
        return _Helper(proc, commit_write, tar_write)

    def _attrs(self, c: Container, path: str) -> dict[str, str]:
        attrs = dict(c.config.labels)
        attrs.update(name=c.name, image=c.config.image, path=path)
        return attrs

    async def stat(self, ref: str, path: str) -> PathInfo:
        c = self._host.resolve(ref)
        async with self._host.lock(c.id):
            c = self._host.resolve(c.id)
            helper = await self._spawn(c, "stat", path)
            try:
                return _path_info((await helper.next_report())["stat"])
            finally:
                await helper.finish()

    async def archive(self, ref: str, path: str, follow_link: bool = False) -> AsyncIterator[PathInfo | bytes]:
        """The path's stat, then its tar in pieces (docker's archive GET)."""
        c = self._host.resolve(ref)
        async with self._host.lock(c.id):
            c = self._host.resolve(c.id)
            helper = await self._spawn(c, "get", path, follow_link=follow_link)
            try:
                yield _path_info((await helper.next_report())["stat"])
                assert helper.proc.stdout is not None
                while data := await _read_piece(helper.proc.stdout):
                    yield data
                await helper.next_report()  # done, or the error that cut the tar short
                await helper.proc.wait()
            finally:
                await helper.finish()
        await self._events.publish("container", "archive-path", c.id, self._attrs(c, path))

    async def extract(self, ref: str, path: str, options: PutOptions,
                      chunks: AsyncIterator[bytes | memoryview]) -> PutResult:
        """Extract the tar `chunks` carry below the directory `path` (docker's archive
        PUT). `chunks` raises when the upload is cut short: then nothing is kept."""
        c = self._host.resolve(ref)
        async with self._host.lock(c.id):
            c = self._host.resolve(c.id)
            helper = await self._spawn(
                c, "put", path, copy_uid_gid=options.copy_uid_gid,
                no_overwrite_dir_non_dir=options.no_overwrite_dir_non_dir,
            )
            try:
                await helper.next_report()  # ready: the extraction point is good
                await self._pump(helper, chunks)
                helper.commit()
                done = (await helper.next_report())["done"]
                await helper.proc.wait()
            finally:
                await helper.finish()
        await self._events.publish("container", "extract-to-dir", c.id, self._attrs(c, path))
        return PutResult(int(done["entries"]), int(done["size"]))

    async def _pump(self, helper: _Helper, chunks: AsyncIterator[bytes | memoryview]) -> None:
        first = True
        try:
            async for chunk in chunks:
                await helper.write_tar(chunk)
                if first:
                    self._crashes.hit("cp", "extracting")
                    first = False
        except (BrokenPipeError, ConnectionResetError):
            # The helper stopped reading: it failed, and says why.
            helper.close_tar()
            await helper.next_report()
            raise Internal("the cp helper stopped reading the archive") from None
        except PalletError:
            helper.close_commit()  # cut short: the helper undoes what it made
            helper.close_tar()
            with contextlib.suppress(PalletError):
                await helper.next_report()
            raise
        helper.close_tar()
