"""The live sessions a container manager hands out: runs, attachments, exec sessions.

Owns: `Run` (one run of a container, from start to recorded exit), attach requests that
wait for a start, and `TrackedExec`, which publishes `exec_die` once. Must not: change a
container's state (the manager does).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pallet.daemon.containers.model import Container
from pallet.daemon.events.model import EventPublisher
from pallet.daemon.shims.api import ExecSession, ExitStatus, ShimClient, Stdio


@dataclass(slots=True)
class Run:
    """One run of a container: from a successful start to its recorded exit."""

    shim: ShimClient
    done: asyncio.Event = field(default_factory=asyncio.Event)
    exit: ExitStatus | None = None


@dataclass(slots=True)
class PendingAttach:
    stdin: bool
    stdout: bool
    stderr: bool
    ready: asyncio.Future[tuple[Stdio, Run]]


class Attachment:
    """An attach request: ready once the container runs (at once if it already does)."""

    def __init__(self, future: asyncio.Future[tuple[Stdio, Run]]) -> None:
        self._future = future

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


class TrackedExec:
    """An exec session that publishes exec_die once when its exit is collected."""

    def __init__(
        self, session: ExecSession, exec_id: str, container: Container, events: EventPublisher
    ) -> None:
        self.session = session
        self.exec_id = exec_id
        self.pid = session.pid
        self._container = container
        self._events = events
        self._exit: ExitStatus | None = None

    async def wait(self) -> ExitStatus:
        if self._exit is None:
            self._exit = await self.session.wait()
            await self._events.publish(
                "container",
                "exec_die",
                self._container.id,
                {
                    "name": self._container.name,
                    "image": self._container.config.image,
                    "execID": self.exec_id,
                    "exitCode": str(self._exit.exit_code),
                },
            )
        return self._exit
