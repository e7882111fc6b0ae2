"""The live sessions a container manager hands out: runs and attachments.

Owns: `Run` (one run of a container, from start to recorded exit) and attach requests that
wait for a start. Must not: change a container's state (the manager does). Exec sessions
are `pallet.daemon.containers.execs`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pallet.daemon.shims.api import ShimClient, Stdio
from pallet.shim.api.spec import ExitStatus


@dataclass(slots=True)
class Run:
    """One run of a container: from a successful start to its recorded exit."""

    shim: ShimClient
    done: asyncio.Event = field(default_factory=asyncio.Event)
    exit: ExitStatus | None = None
    # A user's stop or kill was sent: the exit that follows is theirs (`exits.Why.STOPPED`).
    stopped: bool = False
    # How the run ends if its shim goes away without recording the exit: set when palletd
    # itself kills a shim that does not answer (`rm -f`), so the end says what happened.
    killed: ExitStatus | None = None


@dataclass(slots=True)
class PendingAttach:
    stdin: bool
    stdout: bool
    stderr: bool
    ready: asyncio.Future[tuple[Stdio, Run]]


class Attachment:
    """An attach request: ready once the container runs (at once if it already does)."""

    def __init__(self, future: asyncio.Future[tuple[Stdio, Run]], stdin_once: bool = False) -> None:
        self._future = future
        #: The container's stdin is to be closed when this attach ends (it gives stdin, and
        #: the container was made with stdin_once and no tty: docker's StdinOnce).
        self.stdin_once = stdin_once

    async def ready(self) -> Stdio:
        stdio, self._run = await self._future
        return stdio

    async def exit(self) -> ExitStatus:
        """After the output ended: wait for the run's recorded exit status."""
        await self._run.done.wait()
        assert self._run.exit is not None
        return self._run.exit

    def cancel(self) -> None:
        if not self._future.done():
            self._future.cancel()
