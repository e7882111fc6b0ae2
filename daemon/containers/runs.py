"""The end of a container's run: one path for the monitor, a failed start, the restorer.

Owns: `RunEnds`, the part of the container manager that follows runs to their end: the
exit monitor of each running container (`_monitor`, `_watch`, the manager's `background`
tasks), recording an end (`_record_exit`, `_record_failed_start`), letting a shim go
(`release_shim`) and `settle_exit`, which records the end, then does what
`exits.after_exit` decides (remove an --rm container, or restart one after a back-off:
`restarting.Restarting`); and ends that could not be written
(`_held`: a full state disk), which are kept in memory, reported as recorded, and written
as soon as there is room. Must not: decide what follows an exit (`exits.after_exit` does),
start or stop containers, or hold state of its own: it works on the manager's
(`ContainerManager` is a `RunEnds`; the attributes and methods it uses are declared below).

Recording an end is essential (`space.essential()`): it may spend the state disk's reserve.
When even that is not enough, the end is held: the container is Exited in memory (`ps`,
`inspect`, `wait` and `stop` see it), and a background task writes it, with its `die`
event, once a second until it goes through. Before any other change to that container is
written, its held end is (`write_held`): its events stay in order, `die` before `destroy`.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from pallet.daemon.containers.waiting import ExitWaiters
from pallet.daemon.containers.exits import Outcome, Why, after_exit, of_this_run
from pallet.daemon.containers.health import HealthMonitor
from pallet.daemon.containers.mounting import Volumes, unmount_volumes, volume_names
from pallet.daemon.containers.networking import Networking
from pallet.daemon.containers.model import Container, Status
from pallet.daemon.containers.sessions import PendingAttach, Run
from pallet.daemon.containers.store import ContainerRecords, update_writer
from pallet.daemon.events.model import EventPublisher
from pallet.daemon.faults import CrashHook
from pallet.daemon.shims.api import ShimClient, ShimLauncher
from pallet.daemon.store import space
from pallet.shim.api.spec import ExitStatus
from pallet.v1.errors import FailedPrecondition, PalletError, ResourceExhausted, Unavailable

log = structlog.get_logger(__name__)

# How soon a monitor asks a live shim that gave no usable answer to `wait` again.
MONITOR_RETRY_S = 1.0
# How often ends held in memory (the state disk was full) are tried again.
HELD_RETRY_S = 1.0


@dataclass(slots=True)
class HeldEnd:
    """An end of a run known but not yet written (a full state disk)."""

    # The events it announces when written, in order: `die`, after an `oom` when the OOM
    # killer ended the run (none: a failed start's).
    events: tuple[tuple[str, dict[str, str]], ...]
    # The container's shim, kept until the end is written: it holds the exit too (and
    # retries its exit.json), so a palletd killed meanwhile finds it at boot.
    shim: ShimClient | None = None
    # What follows the end is a remove (--rm), done once it is written.
    remove: bool = False


class RunEnds:
    """Follows every run to its recorded end (mixed into `ContainerManager`)."""

    # The manager's state this part works on.
    _closing: bool
    _clock: Callable[[], int]
    _crashes: CrashHook
    _launcher: ShimLauncher
    _records: ContainerRecords
    _events: EventPublisher
    _containers: dict[str, Container]
    _networking: Networking
    _volumes: Volumes
    # Ends known but not yet written (see the module), by container id.
    _held: dict[str, HeldEnd]
    _pending: dict[str, list[PendingAttach]]
    _runs: dict[str, Run]
    _tasks: dict[str, asyncio.Task[None]]
    _health: HealthMonitor  # probing ends with the run
    _waiters: ExitWaiters  # wait's next-exit callers hear of each end

    if TYPE_CHECKING:  # the manager's methods this part calls

        def lock(self, container_id: str) -> asyncio.Lock: ...

        def _attrs(self, c: Container, **extra: str) -> dict[str, str]: ...

        async def _transition(
            self,
            c: Container,
            event: tuple[str, dict[str, str]] | None = None,
            **state: object,
        ) -> Container: ...

        async def _transition_events(
            self, c: Container, events: Sequence[tuple[str, dict[str, str]]], **state: object
        ) -> Container: ...

        async def _journal(self, c: Container, events: Sequence[tuple[str, dict[str, str]]]) -> None: ...

        async def _remove_locked(self, c: Container, volumes: bool = False) -> None: ...

        async def clean_after_shim(self, c: Container) -> None: ...

        async def enter_backoff(self, c: Container, status: ExitStatus, why: Why) -> Container: ...

        async def end_backoff(self, c: Container, by_user: bool) -> Container: ...

    async def settle_exit(
        self,
        c: Container,
        status: ExitStatus,
        why: Why,
        shim: ShimClient | None = None,
    ) -> Outcome:
        """Record how `c`'s run ended, let its shim go, then do what `after_exit` decides.

        Every end of a run comes here: the monitor's, a failed start's, and the restorer's
        for an exit that happened while palletd was down. The caller holds the container's
        lock. The exit is recorded (with its event) before anything follows it, so `die`
        is journalled before `destroy`; and whoever waits on the run hears of its end only
        after this returns, so `run --rm` returns once the container is gone.
        """
        # Essential, all of it: recording what happened, and an --rm remove (`space`).
        with space.essential():
            return await self._settle(c, status, why, shim)

    async def _settle(
        self, c: Container, status: ExitStatus, why: Why, shim: ShimClient | None
    ) -> Outcome:
        self._health.unwatch(c.id)
        try:
            if why is Why.START_FAILED:
                c = await self._record_failed_start(c, status)
            else:
                c = await self._record_exit(c, status)
            # The end is recorded, what follows it is not done: the restorer does it.
            self._crashes.hit("exit", "recorded")
            # What carried its traffic goes with the run (a restart makes it again).
            try:
                await self._networking.release(c.id)
            except Exception as e:
                log.warning("releasing the network failed", container_id=c.id, reason=str(e))
            await unmount_volumes(self._volumes, c.id, volume_names(c))
            outcome = after_exit(c, status, why)
            held = self._held.get(c.id)
            if held is not None:
                # Not written yet: the shim stays, what follows waits (`write_held`).
                held.shim = held.shim or shim
                held.remove = outcome is Outcome.REMOVE
                return outcome
            if shim is not None:
                await self.release_shim(shim)
            if outcome is Outcome.REMOVE:
                try:
                    await self._remove_locked(c)
                except PalletError as e:
                    log.warning("auto-remove failed", container_id=c.id, reason=str(e))
            elif outcome is Outcome.RESTART or c.state.status is Status.RESTARTING:
                try:  # restart after a back-off, or (a restart failed) give up
                    if outcome is Outcome.RESTART:
                        await self.enter_backoff(c, status, why)
                    else:
                        await self.end_backoff(c, by_user=False)
                except PalletError as e:  # the restorer decides again at the next boot
                    log.warning("cannot record the restart policy's step",
                                container_id=c.id, reason=str(e))
            return outcome
        finally:
            # Only now is the run over for `wait`: it never sees an --rm container Exited.
            self._runs.pop(c.id, None)
            self._waiters.exited(c.id, status)

    async def _record_failed_start(self, c: Container, status: ExitStatus) -> Container:
        """A start that failed: keep the container, record why (docker keeps it Created)."""
        for pending in self._pending.pop(c.id, []):
            if not pending.ready.done():
                pending.ready.set_exception(FailedPrecondition(status.error))
        s = c.state
        if (s.exit_code, s.error, s.pid, s.shim_pid) == (status.exit_code, status.error, 0, 0):
            return c  # recorded already (the restorer settles it again at boot)
        return await self._record_end(
            c,
            None,
            status=c.state.status,
            exit_code=status.exit_code,
            error=status.error,
            pid=0,
            shim_pid=0,
        )

    async def _record_exit(self, c: Container, status: ExitStatus) -> Container:
        """The run is over: EXITED with its `die` event (once: an exit already recorded,
        found again by the restorer, is left as it is)."""
        if c.state.status is Status.EXITED:
            return c
        # Killed by the OOM killer (the shim saw it in the cgroup): `oom`, then `die`.
        oom = (("oom", self._attrs(c)),) if status.oom_killed else ()
        return await self._record_end(
            c,
            ("die", self._attrs(c, exitCode=str(status.exit_code))),
            preceded_by=oom,
            oom_killed=status.oom_killed,
            status=Status.EXITED,
            pid=0,
            shim_pid=0,
            exit_code=status.exit_code,
            finished_at_ns=status.exited_at_ns or self._clock(),
            error=status.error,
        )

    async def _record_end(
        self,
        c: Container,
        event: tuple[str, dict[str, str]] | None,
        preceded_by: Sequence[tuple[str, dict[str, str]]] = (),
        **state: object,
    ) -> Container:
        """Write an end (essential); on a disk too full even for that, hold it in memory,
        its events with it (an `oom` and its `die`)."""
        events = (*preceded_by, event) if event else tuple(preceded_by)
        with space.essential():
            try:
                return await self._transition_events(c, events, **state)
            except ResourceExhausted as e:
                updated = c.with_state(**state)
                self._containers[c.id] = updated
                earlier = self._held.get(c.id)
                if earlier is None:
                    self._held[c.id] = HeldEnd(events)
                elif events:
                    earlier.events = events
                # (else a failed start after a held exit: the exit's `die` is kept, and
                # the record written is the newest state either way)
                log.warning("cannot write the end of a run; held in memory and retried",
                            container_id=c.id, reason=str(e))
                retrying = self._tasks.get("write-held-ends")
                if retrying is None or retrying.done():
                    self.background("write-held-ends", self._write_held_ends())
                return updated

    async def write_held(self, container_id: str) -> HeldEnd | None:
        """Write `container_id`'s held end, if it has one, and let its shim go; return it.
        ResourceExhausted: still no room (it stays held). The caller holds the lock."""
        held = self._held.get(container_id)
        if held is None:
            return None
        c = self._containers.get(container_id)
        if c is not None:
            with space.essential():
                await self._journal(c, held.events)
            log.info("held end of a run written", container_id=container_id)
        del self._held[container_id]
        if held.shim is not None:
            await self.release_shim(held.shim)
        return held

    async def _write_held_ends(self) -> None:
        """Try the held ends once a second until every one is written (or palletd stops);
        then what follows each (an --rm container is removed)."""
        while self._held and not self._closing:
            await asyncio.sleep(HELD_RETRY_S)
            for cid in list(self._held):
                async with self.lock(cid):
                    try:
                        held = await self.write_held(cid)
                    except ResourceExhausted:
                        break  # still full: the rest would fail the same way
                    except Exception as e:  # noqa: BLE001 - the others are still tried
                        log.warning("writing a held end failed; retrying", container_id=cid,
                                    reason=str(e))
                        continue
                    c = self._containers.get(cid)
                    if held is None or not held.remove or c is None:
                        continue
                    try:
                        with space.essential():
                            await self._remove_locked(c)
                    except PalletError as e:  # the restorer removes it at the next boot
                        log.warning("auto-remove failed", container_id=cid, reason=str(e))

    def background(self, key: str, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as a task this manager owns: kept under `key`, cancelled by aclose.

        In a context of its own: a scope of its starter's (`space.essential()`) does not
        follow it for its whole life.
        """
        task = asyncio.create_task(work, name=key, context=contextvars.Context())
        self._tasks[key] = task

        def forget(t: asyncio.Task[None]) -> None:
            if self._tasks.get(key) is t:
                del self._tasks[key]

        task.add_done_callback(forget)

    def _watch(self, container_id: str, run: Run) -> None:
        self.background(f"monitor-{container_id}", self._monitor(container_id, run))

    async def _monitor(self, container_id: str, run: Run) -> None:
        """Wait for the container's exit and settle it (`settle_exit`)."""
        bound = log.bind(container_id=container_id, shim_pid=run.shim.shim_pid)
        try:
            status = await self._wait_for_exit(run, bound)
        except asyncio.CancelledError:
            raise
        except Unavailable as e:
            if self._closing:
                return
            c = self._containers.get(container_id)
            disk = None
            if c is not None:
                disk = of_this_run(await asyncio.to_thread(
                    self._launcher.exit_status_on_disk, Path(c.state_dir)
                ), c.state.started_at_ns)
            status = disk or run.killed or ExitStatus(
                255,
                self._clock(),
                f"the container's shim (pid {run.shim.shim_pid}) died without recording "
                f"the exit ({e}): its processes were killed with it",
            )
            bound.warning("shim connection lost", reason=str(e), exit_code=status.exit_code)
            if c is not None:
                # Even when it recorded the exit: a shim gone before its shutdown left its
                # cgroup and socket (the delete command refuses a shim that answers).
                await self.clean_after_shim(c)
        why = Why.STOPPED if run.stopped else Why.EXITED
        try:
            async with self.lock(container_id):
                c = self._containers.get(container_id)
                if c is None:
                    await self.release_shim(run.shim)
                else:
                    await self.settle_exit(c, status, why, run.shim)
        finally:
            run.exit = status
            run.done.set()

    async def _wait_for_exit(self, run: Run, bound: Any) -> ExitStatus:
        """The shim's answer to `wait`; Unavailable once it is gone.

        Only Unavailable means the shim is gone. Any other error (no answer in time, an
        answer we cannot read: a newer shim's) comes from a shim that lives, whose
        container may be running: asked again, never taken for an exit.
        """
        while True:
            try:
                return await run.shim.wait()
            except Unavailable:
                raise
            except PalletError as e:
                if self._closing:
                    raise Unavailable(f"palletd is stopping: {e}") from None
                bound.warning("shim wait failed; asking again", reason=str(e))
                await asyncio.sleep(MONITOR_RETRY_S)

    async def release_shim(self, shim: ShimClient) -> bool:
        """Shut `shim` down and close the connection. True when it acknowledged the
        shutdown: it answers only once its socket and the container's cgroup are gone, so
        nothing is left for `pallet-shim delete`."""
        acknowledged = False
        try:
            await shim.shutdown()
            acknowledged = True
        except PalletError as e:
            log.debug("shim release", container_id=shim.container_id, reason=str(e))
        try:
            await shim.aclose()
        except PalletError as e:
            log.debug("shim release", container_id=shim.container_id, reason=str(e))
        return acknowledged
