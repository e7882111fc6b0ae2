"""Restart policies at work: the back-off between a run's end and the restart.

Owns: `Restarting`, the part of the container manager that carries out a RESTART outcome
(`enter_backoff`: the container is recorded RESTARTING with its `restart` event, the count
and the planned attempt in its record), the one task per container that starts it when
the back-off is over (`schedule_restart`, keyed `restart-<id>`, owned by the manager's
`background`; it prepares the start during the last `PREPARE_S` of the back-off and lets
the process exec when it is over), ending a back-off (`end_backoff`: a user's stop or kill, or a failed
restart after which the policy gives up) and a user's stop or kill (`stopped_by_user`: it
ends a back-off, or marks the run they stop). Must not: decide whether or when (`exits.after_exit` and
`restarts` do), record the end of a run (`runs.RunEnds`) or start containers itself (the
manager's `_start_locked`); it holds no state of its own (`ContainerManager` is a
`Restarting`; what it uses is declared below).

The planned attempt is on disk: a palletd killed during a back-off resumes it at boot
(`restore.Restorer` calls `schedule_restart`), at the time planned, never at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import structlog

from pallet.daemon.containers import restarts
from pallet.daemon.containers.exits import Why
from pallet.daemon.containers.model import RESTART_NO, Container, RestartState, Status
from pallet.daemon.containers.store import ContainerRecords
from pallet.daemon.store import space
from pallet.shim.api.spec import ExitStatus
from pallet.v1.errors import PalletError

log = structlog.get_logger(__name__)


# How long before the end of a back-off its start begins (a start takes 50-150 ms on a
# busy two-core machine: most of it is the shim's building of the container).
PREPARE_S = 0.25


def _task_key(container_id: str) -> str:
    return f"restart-{container_id}"


class Restarting:
    """Runs the restart policies' back-offs (mixed into `ContainerManager`)."""

    # The manager's state this part works on.
    _booted: asyncio.Event  # set once palletd has reconciled what it found at boot
    _clock: Callable[[], int]
    _closing: bool
    _containers: dict[str, Container]
    _records: ContainerRecords
    _removing: dict[str, int]
    _tasks: dict[str, asyncio.Task[None]]

    if TYPE_CHECKING:  # the manager's methods this part calls

        def lock(self, container_id: str) -> asyncio.Lock: ...

        def _attrs(self, c: Container, **extra: str) -> dict[str, str]: ...

        async def _transition(
            self,
            c: Container,
            event: tuple[str, dict[str, str]] | None = None,
            **state: object,
        ) -> Container: ...

        async def _start_locked(
            self, c: Container, not_before: Callable[[], Awaitable[None]] | None = None
        ) -> int: ...

        def background(self, key: str, work: Coroutine[Any, Any, None]) -> None: ...

    async def enter_backoff(self, c: Container, status: ExitStatus, why: Why) -> Container:
        """Record `c` RESTARTING until its planned restart, and plan it. The caller holds
        the lock; the end of the run (`die`) is recorded already: `restart` follows it."""
        plan = restarts.plan(
            c.restarts, c.state.started_at_ns, status, why is Why.START_FAILED, self._clock()
        )
        # An end settled again at boot was counted when it happened (docker does not
        # count the starts of its boot either).
        count = c.restart_count if why is Why.RECORDED else c.restart_count + 1
        c = replace(c, restart_count=count, restarts=plan)
        attrs = self._attrs(c, restartCount=str(count), exitCode=str(status.exit_code))
        c = await self._transition(c, event=("restart", attrs), status=Status.RESTARTING)
        log.info("restarting after a back-off", container_id=c.id, restart_count=count,
                 delay_ms=plan.delay_ns // restarts.MS)
        self.schedule_restart(c)
        return c

    def schedule_restart(self, c: Container) -> None:
        """Start `c` (RESTARTING) when its planned attempt is due; not while palletd
        stops: the next palletd resumes the back-off from the record."""
        if self._closing:
            return
        self.background(_task_key(c.id), self._restart_when_due(c.id, c.restarts.next_at_ns))

    def cancel_restart(self, container_id: str) -> None:
        """Drop the planned attempt (the caller holds the lock, so it is not under way)."""
        task = self._tasks.get(_task_key(container_id))
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _restart_when_due(self, container_id: str, due_ns: int) -> None:
        c = self._containers.get(container_id)
        if c is None:
            return
        # The start begins a little before the back-off ends: what it prepares (rootfs,
        # network, the shim that builds the container) is done meanwhile, and only the
        # init's exec waits for the end (`not_before`). The lock is held from there on,
        # so a stop or rm in those last moments comes right after the start.
        await asyncio.sleep(max(0.0, restarts.wait_s(c.restarts, self._clock()) - PREPARE_S))
        # A back-off found at boot ends after the boot's reconciling (networks, volumes):
        # a start in the middle of it would be taken for a leftover.
        await self._booted.wait()
        async with self.lock(container_id):
            c = self._containers.get(container_id)
            if (
                c is None
                or c.state.status is not Status.RESTARTING
                or c.restarts.next_at_ns != due_ns
                or container_id in self._removing
            ):
                return  # stopped, started, removed or planned again meanwhile
            try:
                # A failure is settled by the start itself (after_exit: another back-off,
                # or the policy gives up).
                planned = c.restarts

                async def back_off_over() -> None:
                    await asyncio.sleep(restarts.wait_s(planned, self._clock()))

                await self._start_locked(c, not_before=back_off_over)
            except PalletError as e:
                log.info("a restart failed to start", container_id=container_id,
                         reason=str(e))

    async def end_backoff(self, c: Container, by_user: bool) -> Container:
        """RESTARTING -> EXITED: a user's stop or kill (their mark kept, with its `stop`
        event, as docker's), or a failed restart after which the policy gives up. The
        caller holds the lock."""
        self.cancel_restart(c.id)
        state = replace(c.restarts, next_at_ns=0,
                        stopped_by_user=c.restarts.stopped_by_user or by_user)
        c = replace(c, restarts=state)
        event = ("stop", self._attrs(c)) if by_user else None
        return await self._transition(c, event=event, status=Status.EXITED)

    async def stopped_by_user(self, container_id: str) -> bool:
        """A user stops or kills the container: True when that ended a back-off (there is
        no process to signal then); else, for a running container with a restart policy,
        the user's mark is written to its record before the signal, so no restart follows
        the exit, even one a palletd killed meanwhile finds at boot (unless-stopped,
        on-failure). One look under the lock: the container cannot slip from one to the
        other in between (a restart's start finishing, its run ending at once)."""
        c = self._containers.get(container_id)
        if c is None or c.host_config.restart_policy.name == RESTART_NO:
            if c is None or c.state.status is not Status.RESTARTING:
                return False  # (a policy changed to "no" during a back-off ends it)
        async with self.lock(container_id):
            c = self._containers.get(container_id)
            if c is None:
                return False
            with space.essential():  # like recording an end
                if c.state.status is Status.RESTARTING:
                    await self.end_backoff(c, by_user=True)
                    return True
                if c.state.status not in (Status.RUNNING, Status.PAUSED):
                    return False
                if c.restarts.stopped_by_user:
                    return False
                updated = replace(c, restarts=replace(c.restarts, stopped_by_user=True))
                try:
                    await self._records.update(updated)
                except PalletError as e:  # in memory, the run's `stopped` says as much
                    log.warning("cannot record a user's stop", container_id=c.id,
                                reason=str(e))
                    return False
                self._containers[c.id] = updated
                return False


def started_by_user(c: Container) -> Container:
    """`c` as a user's start (start, restart) leaves it: the policy's count and back-off
    start over and their stop no longer holds (docker resets its restart manager)."""
    return replace(c, restart_count=0, restarts=RestartState())
