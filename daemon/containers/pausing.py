"""Pausing containers: `pause`, `unpause`, and the thaw that follows a stop's signal.

Owns: `Pauses`, the part of the container manager that freezes a running container's
processes through its shim (the cgroup freezer: v1's freezer.state, v2's cgroup.freeze)
and records it PAUSED with its `pause` event, thaws it again (`unpause`), lets a stop or
kill of a paused container through (the signal first, then the thaw: the kernel delivers
it once the processes run again, as docker does), and puts a record right whose pause the
shim says otherwise (`reconcile_paused`: the shim holds the pause and is the truth).
Must not: freeze anything itself (the shim does), or hold state of its own: it works on
the manager's (`ContainerManager` is a `Pauses`; what it uses is declared below).

A pause is the shim's, not a connection's (commit's freeze is a connection's): it outlives
palletd, so a palletd killed while a container is paused finds it paused at boot.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from pallet.daemon.containers.health import HealthMonitor
from pallet.daemon.containers.model import Container, Status
from pallet.daemon.containers.sessions import Run
from pallet.v1.errors import FailedPrecondition, PalletError

log = structlog.get_logger(__name__)


class Pauses:
    """Pauses and unpauses containers (mixed into `ContainerManager`)."""

    # The manager's state this part works on.
    _containers: dict[str, Container]
    _runs: dict[str, Run]
    _health: HealthMonitor  # docker does not probe a paused container

    if TYPE_CHECKING:  # the manager's methods this part calls

        def resolve(self, ref: str) -> Container: ...

        def lock(self, container_id: str) -> asyncio.Lock: ...

        def _attrs(self, c: Container, **extra: str) -> dict[str, str]: ...

        async def _transition(
            self,
            c: Container,
            event: tuple[str, dict[str, str]] | None = None,
            **state: object,
        ) -> Container: ...

    async def pause(self, ref: str) -> None:
        """Freeze every process of a running container; PAUSED with its `pause` event."""
        c = self.resolve(ref)
        async with self.lock(c.id):
            c = self._containers.get(c.id, c)
            run = self._runs.get(c.id)
            if c.state.status is Status.PAUSED:
                raise FailedPrecondition(f"Container {c.name} is already paused")
            if c.state.status is not Status.RUNNING or run is None:
                raise FailedPrecondition(f"Container {c.name} is not running")
            # No probe from here on (one under way would freeze with the container).
            self._health.unwatch(c.id)
            try:
                await run.shim.pause()
                try:
                    await self._transition(c, event=("pause", self._attrs(c)), status=Status.PAUSED)
                except BaseException:
                    # Not recorded (a full disk, say): it must not stay frozen unrecorded.
                    await asyncio.shield(_resume_quietly(run, c.id))
                    raise
            except BaseException:
                current = self._containers.get(c.id)
                if current is not None and current.state.status is Status.RUNNING:
                    self._health.watch(current)  # still running: probed again
                raise

    async def unpause(self, ref: str) -> None:
        """Thaw a paused container; RUNNING with its `unpause` event."""
        c = self.resolve(ref)
        async with self.lock(c.id):
            c = self._containers.get(c.id, c)
            if c.state.status is not Status.PAUSED:
                raise FailedPrecondition(f"Container {c.name} is not paused")
            run = self._runs.get(c.id)
            if run is None:
                raise FailedPrecondition(
                    f"container {c.name} is paused but its shim is not adopted yet (it did "
                    "not answer when palletd started): try again in a few seconds, or "
                    f"remove it with force (rm -f {c.name})"
                )
            await run.shim.resume()
            c = await self._transition(c, event=("unpause", self._attrs(c)), status=Status.RUNNING)
            self._health.watch(c)

    async def _resume_after_signal(self, container_id: str, run: Run) -> None:
        """A stop's (or kill's) signal was sent to a paused container: thaw it so that
        the signal is delivered, and record it running again (`unpause`), as docker does.
        Its exit, if the signal ends it, is recorded by its monitor as usual."""
        c = self._containers.get(container_id)
        if c is None or c.state.status is not Status.PAUSED:
            return  # not paused: no lock taken (a stop does not wait for a commit's)
        async with self.lock(container_id):
            c = self._containers.get(container_id)
            if c is None or c.state.status is not Status.PAUSED or self._runs.get(c.id) is not run:
                return  # unpaused or ended meanwhile
            try:
                await run.shim.resume()
            except PalletError as e:
                log.warning("cannot thaw a paused container after its stop signal",
                            container_id=c.id, reason=str(e))
                return
            # Not probed again: the signal that made it thaw is ending it (docker's).
            await self._transition(c, event=("unpause", self._attrs(c)), status=Status.RUNNING)

    async def reconcile_paused(self, c: Container, paused: bool) -> Container:
        """At boot: the record of a re-adopted container says what its shim says (the
        shim holds the pause; a palletd killed between the two left them apart)."""
        if paused and c.state.status is Status.RUNNING:
            self._health.unwatch(c.id)
            return await self._transition(c, event=("pause", self._attrs(c)), status=Status.PAUSED)
        if not paused and c.state.status is Status.PAUSED:
            return await self._transition(c, event=("unpause", self._attrs(c)), status=Status.RUNNING)
        return c


async def _resume_quietly(run: Run, container_id: str) -> None:
    try:
        await run.shim.resume()
    except PalletError as e:
        log.warning("cannot thaw a container whose pause was not recorded",
                    container_id=container_id, reason=str(e))
