"""The directories builds run in: `<root>/builds/<id>/`, the context received in its
`context/`, and nothing left behind.

Owns: `BuildDirs` (a fresh directory per build, removed when the build is over however it
ends, and at palletd's start every leftover of builds a kill -9 cut short: no build
survives a restart) and `receive` (an uploaded context tar written into `context/` by
`contexttar.extract_context` on a thread, fed through a pipe as the chunks arrive, so a
context is never held whole in memory). Must not: parse Dockerfiles or run steps (the
builder does), or know protobuf.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import structlog

from pallet.daemon.builder.contexttar import ContextStats, extract_context
from pallet.daemon.images.fsutil import remove_tree

log = structlog.get_logger(__name__)

#: What the pipe between the upload and the extracting thread holds (the default
#: pipe-max-size: 1 MiB; 64 KiB would make the two take turns every 64 KiB).
PIPE_SIZE = 1 << 20


class BuildDirs:
    """Build directories below `<root>/builds`."""

    def __init__(self, root: Path) -> None:
        self.top = root / "builds"
        # Directories being removed after their build (see `new`), awaited by aclose.
        self._removing: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Remove what builds cut short by a kill -9 left (nothing builds before this)."""
        await asyncio.to_thread(self._sweep)

    async def aclose(self) -> None:
        if self._removing:
            await asyncio.gather(*self._removing, return_exceptions=True)

    def _sweep(self) -> None:
        self.top.mkdir(mode=0o700, parents=True, exist_ok=True)
        for child in self.top.iterdir():
            log.info("removing the directory of a build cut short", path=str(child))
            remove_tree(child)

    @contextlib.asynccontextmanager
    async def new(self) -> AsyncIterator[Path]:
        """A fresh, empty build directory (holding an empty `context/`), gone from its
        place when the block ends, also by an error or a cancel: renamed at once to
        `.removing-<id>` and removed with everything in it in the background (a 20,000-file
        context takes seconds to delete: the build's answer does not wait for that; a
        kill -9 meanwhile leaves it to the next start's sweep)."""
        name = secrets.token_hex(16)
        path = self.top / name
        context = path / "context"
        await asyncio.to_thread(context.mkdir, mode=0o700, parents=True)
        try:
            yield path
        finally:
            # A rename, not awaited on a thread: nothing cancelled meanwhile can skip it.
            doomed = self.top / f".removing-{name}"
            try:
                os.rename(path, doomed)
            except OSError as exc:
                log.warning("could not set a build's directory aside; removing it in place",
                            path=str(path), error=str(exc))
                doomed = path
            task = asyncio.get_running_loop().create_task(self._remove(doomed))
            self._removing.add(task)
            task.add_done_callback(self._removing.discard)

    async def _remove(self, path: Path) -> None:
        try:
            await asyncio.to_thread(remove_tree, path)
        except OSError as exc:
            log.warning("could not remove a build's directory (the next start will)", path=str(path), error=str(exc))


async def receive(chunks: AsyncIterator[bytes | memoryview], context: Path) -> ContextStats:
    """Extract the tar `chunks` spell into the empty directory `context`; returns once the
    upload is whole and every entry is in place. An upload that fails (cut short, damaged,
    a refused entry) raises, and what was written stays for the caller to remove."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    with contextlib.suppress(OSError):  # above pipe-max-size: the default 64 KiB, slower only
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    stream = io.FileIO(read_fd, "rb", closefd=True)
    extracting = asyncio.ensure_future(asyncio.to_thread(extract_context, stream, str(context)))
    extracting.add_done_callback(lambda _: stream.close())
    try:
        try:
            async for chunk in chunks:
                if not await _write_all(write_fd, chunk, extracting):
                    break  # the extraction stopped early (a refused entry): its error below
        finally:
            os.close(write_fd)  # the end of the tar for the thread
    except BaseException:
        # The upload failed (cut short, damaged, cancelled): its error is the one to tell.
        # The thread cannot be stopped: it is waited for, so nothing writes into the
        # directory once the caller removes it; what it made of a part is dropped.
        await _finished(extracting)
        raise
    try:
        return await asyncio.shield(extracting)
    except asyncio.CancelledError:
        await _finished(extracting)
        raise


async def _finished(extracting: asyncio.Future[ContextStats]) -> None:
    """Wait for the extracting thread to end (a cancel meanwhile still waits), its outcome seen."""
    while not extracting.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([extracting])
    if not extracting.cancelled():
        extracting.exception()


async def _write_all(fd: int, data: bytes | memoryview, extracting: asyncio.Future[ContextStats]) -> bool:
    """All of `data` into the pipe, waiting on the loop while it is full; False when the
    extraction ended (it reads no more)."""
    view = memoryview(data)
    loop = asyncio.get_running_loop()
    while view:
        if extracting.done():
            return False
        try:
            view = view[os.write(fd, view):]
            continue
        except BlockingIOError:
            pass
        except BrokenPipeError:
            return False
        ready: asyncio.Future[ContextStats] = loop.create_future()

        def writable() -> None:
            if not ready.done():
                ready.set_result(ContextStats())  # a placeholder: only its being set counts

        loop.add_writer(fd, writable)
        try:
            await asyncio.wait([ready, extracting], return_when=asyncio.FIRST_COMPLETED)
        finally:
            loop.remove_writer(fd)
            ready.cancel()
    return True
