"""Ending containers: stop, kill, restart and remove.

Owns: `StopsAndRemoves`, the part of the container manager that signals a container's
processes (through its shim, or by killing a shim that does not answer), waits for the end
its monitor records, and removes containers: the REMOVING record, the execs' ends, what a
dead shim left, the `destroy` event, then the state directory. `rm -f` always wins over a
start (`_removing`); on a disk too full to record a remove, the container's own layer and
log go first. Must not: record the end of a run (`runs.RunEnds` does), start containers
(the manager's `_start_locked`), or hold state of its own: it works on the manager's
(`ContainerManager` is a `StopsAndRemoves`; the attributes and methods it uses are declared
below).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from pallet.daemon.containers.waiting import ExitWaiters
from pallet.daemon.containers.execs import ExecTracker
from pallet.daemon.containers.health import HealthMonitor
from pallet.daemon.containers.model import Container, Status
from pallet.daemon.containers.mounting import Volumes, remove_anonymous
from pallet.daemon.containers.restarting import started_by_user
from pallet.daemon.containers.sessions import PendingAttach, Run
from pallet.daemon.containers.signals import parse_signal
from pallet.daemon.containers.store import delete_writer
from pallet.daemon.events.model import EventPublisher
from pallet.daemon.faults import CrashHook
from pallet.daemon.shims.api import ShimLauncher
from pallet.daemon.snapshots.overlay import OverlaySnapshots
from pallet.daemon.store import space
from pallet.shim.api.spec import ExitStatus
from pallet.v1.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PalletError,
    ResourceExhausted,
)

log = structlog.get_logger(__name__)

# How long remove/stop wait for a SIGKILLed container to be reported gone.
KILL_GRACE_S = 30.0


class StopsAndRemoves:
    """Stops, kills, restarts and removes containers (mixed into `ContainerManager`)."""

    # The manager's state this part works on.
    _clock: Callable[[], int]
    _crashes: CrashHook
    _volumes: Volumes
    _launcher: ShimLauncher
    _events: EventPublisher
    _snapshots: OverlaySnapshots
    _execs: ExecTracker
    _health: HealthMonitor  # no probes once a stop (or a SIGKILL) is under way
    _containers: dict[str, Container]
    _locks: dict[str, asyncio.Lock]
    _pending: dict[str, list[PendingAttach]]
    _removing: dict[str, int]
    _runs: dict[str, Run]
    _waiters: ExitWaiters  # wait's removed callers hear of each removal

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

        def _check_not_removing(self, c: Container) -> None: ...

        async def _start_locked(self, c: Container) -> int: ...

        async def _clean_leftovers(self, c: Container) -> None: ...

        async def _record_exit(self, c: Container, status: ExitStatus) -> Container: ...

        async def _resume_after_signal(self, container_id: str, run: Run) -> None: ...

        async def stopped_by_user(self, container_id: str) -> bool: ...

        def cancel_restart(self, container_id: str) -> None: ...

    # ---- stop / kill / restart -----------------------------------------------------

    async def kill(self, ref: str, sig: str = "") -> None:
        c = self.resolve(ref)
        num = parse_signal(sig, signal.SIGKILL)
        # In a back-off there is no process: the kill ends the back-off (docker's).
        if await self.stopped_by_user(c.id):
            return
        c = self.resolve(c.id)
        run = self._runs.get(c.id)
        if c.state.status not in (Status.RUNNING, Status.PAUSED) or run is None:
            raise FailedPrecondition(
                f"container {c.name} is not running: there is nothing to signal"
            )
        was_stopped, run.stopped = run.stopped, True
        if num == signal.SIGKILL:
            # As docker: a dying container is probed no more (its probes would fail,
            # counted, until its end is recorded). Other signals may not end it.
            self._health.unwatch(c.id)
        try:
            await run.shim.kill(num)
        except DeadlineExceeded as e:
            run.stopped = was_stopped  # not delivered: an exit later is not this kill's
            self._probe_again(c.id)
            raise DeadlineExceeded(
                f"cannot signal container {c.name}: {e.message}. `pallet rm -f {c.name}` "
                "kills the shim and the container's processes"
            ) from None
        # A paused container gets SIGKILL or its stop signal once thawed (docker's rule;
        # any other signal waits, pending, for its unpause).
        if c.state.status is Status.PAUSED and num in (
            signal.SIGKILL, parse_signal(c.config.stop_signal, signal.SIGTERM)
        ):
            await self._resume_after_signal(c.id, run)

    async def stop(
        self, ref: str, timeout: int | None = None, by_user: bool = True, sig: str = ""
    ) -> bool:
        """Stop the container's run: its stop signal (or `sig`, docker's stop --signal),
        SIGKILL after the timeout. A user's stop (not palletd's own, at exit) also ends its
        restart policy's restarts until the next start; during a back-off that is all it
        does. A bad signal or timeout is refused before anything is done. False when there
        was nothing to stop (docker's 304: not running, nor in a back-off)."""
        c = self.resolve(ref)
        if timeout is not None and timeout < 0:
            raise InvalidArgument(f"invalid stop timeout {timeout}: use 0 or more seconds")
        number = parse_signal(sig) if sig else None
        if by_user:
            if await self.stopped_by_user(c.id):
                return True
            c = self.resolve(c.id)
        run = self._runs.get(c.id)
        if c.state.status not in (Status.RUNNING, Status.PAUSED) or run is None:
            return False
        wait_s = c.config.stop_timeout if timeout is None else timeout
        if number is None:
            number = parse_signal(c.config.stop_signal, signal.SIGTERM)
        was_stopped, run.stopped = run.stopped, True
        self._health.unwatch(c.id)  # docker's: no probes once a stop is under way
        try:
            await run.shim.kill(number)
        except DeadlineExceeded as e:
            # Waiting on would not help: the signal was not delivered, nor would SIGKILL be.
            # Nor is an exit later this stop's (a restart policy will tell the two apart).
            run.stopped = was_stopped
            self._probe_again(c.id)
            raise _cannot_stop(c, e) from None
        except PalletError as e:
            log.info("stop signal not delivered", container_id=c.id, reason=str(e))
        # Paused: the signal is delivered once its processes are thawed.
        await self._resume_after_signal(c.id, run)
        try:
            await asyncio.wait_for(run.done.wait(), wait_s)
            return True
        except TimeoutError:
            pass
        await self._kill_and_wait(c, run)
        return True

    def _probe_again(self, container_id: str) -> None:
        """A stop or kill whose signal was not delivered: the container runs on, probed."""
        c = self._containers.get(container_id)
        if c is not None and c.state.status is Status.RUNNING and container_id in self._runs:
            self._health.watch(c)

    async def _kill_and_wait(self, c: Container, run: Run, force: bool = False) -> None:
        """SIGKILL every process of the container and wait (bounded) for its recorded end.

        A shim that does not answer fails this at once (DeadlineExceeded), unless `force`
        (`rm -f`): then palletd kills the shim itself, and its container with it.
        """
        try:
            await run.shim.kill(signal.SIGKILL, all_processes=True)
        except DeadlineExceeded as e:
            if not force:
                raise _cannot_stop(c, e) from None
            await self._kill_shim(c, run, e)
        except PalletError as e:
            log.info("SIGKILL not delivered", container_id=c.id, reason=str(e))
        # A frozen process (cgroup v1) does not even die of SIGKILL until it is thawed.
        await self._resume_after_signal(c.id, run)
        try:
            await asyncio.wait_for(run.done.wait(), KILL_GRACE_S)
        except TimeoutError:
            raise FailedPrecondition(
                f"container {c.name} did not exit {KILL_GRACE_S:.0f}s after SIGKILL: "
                "its processes may be stuck in the kernel (D state)"
            ) from None

    async def _kill_shim(self, c: Container, run: Run | None, why: PalletError) -> ExitStatus:
        """SIGKILL the shim that does not answer, and the container's init; return the
        end to record (137). With a run, its monitor records it when the shim's
        connection closes; without one the caller does."""
        shim_pid = run.shim.shim_pid if run is not None else c.state.shim_pid
        log.warning("killing a shim that does not answer", container_id=c.id,
                    shim_pid=shim_pid, reason=why.message)
        status = ExitStatus(
            137,
            self._clock(),
            f"the container's shim (pid {shim_pid}) did not answer and was killed by "
            "rm -f, with the container's processes",
        )
        if run is not None:
            run.killed = status
        await self._launcher.kill_unresponsive(c.id, shim_pid, c.state.pid)
        return status

    async def restart(self, ref: str, timeout: int | None = None, sig: str = "") -> int:
        """Stop (as `stop`, with `sig` instead of the stop signal when given), then start."""
        c = self.resolve(ref)
        await self.stop(c.id, timeout, sig=sig)
        run = self._runs.get(c.id)
        if run is not None:
            await run.done.wait()
        async with self.lock(c.id):
            c = self.resolve(c.id)
            self._check_not_removing(c)
            if c.state.status is Status.RUNNING:
                return c.state.pid
            # A user's start: docker's restart resets the restart count too.
            return await self._start_locked(started_by_user(c))

    # ---- remove --------------------------------------------------------------------

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        """Remove a container; with `volumes` (rm -v) its anonymous volumes too."""
        # Essential: removing is how space comes back, so it may spend the state disk's
        # reserve (`space`), as recording the exit of a container it kills does.
        with space.essential():
            await self._remove(ref, force, volumes)

    async def _remove(self, ref: str, force: bool, volumes: bool) -> None:
        c = self.resolve(ref)
        if not force:
            async with self.lock(c.id):
                c = self._present(c.id, ref)
                if c.state.status is Status.RUNNING:
                    raise FailedPrecondition(
                        f"container {c.name} is running: stop it first, or remove it with "
                        "force (rm -f)"
                    )
                if c.state.status is Status.PAUSED:
                    raise FailedPrecondition(
                        f"container {c.name} is paused: unpause and stop it first, or "
                        "remove it with force (rm -f)"
                    )
                if c.state.status is Status.RESTARTING:
                    raise FailedPrecondition(
                        f"container {c.name} is restarting: stop it first, or remove it "
                        "with force (rm -f)"
                    )
                await self._remove_locked(c, volumes)
            return
        # `rm -f` always wins: from here on no start of the container begins; one already
        # under way (holding the lock) may still get it running, so kill -> wait -> lock
        # goes round until the lock is held with nothing running. Twice at most.
        cid = c.id
        self._removing[cid] = self._removing.get(cid, 0) + 1
        try:
            while True:
                run = self._runs.get(c.id)
                if run is not None:
                    await self._kill_and_wait(c, run, force=True)
                async with self.lock(c.id):
                    c = self._present(c.id, ref)
                    if c.id in self._runs:
                        continue  # started meanwhile, or its end is still being settled
                    self.cancel_restart(c.id)  # in a back-off: no restart comes
                    if c.state.status in (Status.RUNNING, Status.PAUSED):
                        # No run: a shim that did not answer when palletd started (the
                        # restorer keeps asking it). Killed here; the remove cleans up.
                        status = await self._kill_shim(
                            c, None, DeadlineExceeded("its shim was not re-adopted")
                        )
                        c = await self._record_exit(c, status)  # die before destroy
                    await self._remove_locked(c, volumes)
                    return
        finally:
            self._removing[cid] -= 1
            if not self._removing[cid]:
                del self._removing[cid]

    def _present(self, container_id: str, ref: str) -> Container:
        c = self._containers.get(container_id)
        if c is None:
            raise NotFound(f"No such container: {ref}")
        return c

    async def _remove_locked(self, c: Container, volumes: bool = False) -> None:
        if c.state.status is Status.REMOVING:
            # A remove that failed after recording REMOVING (a full disk): finish it.
            await self.finish_remove(c, volumes)
            return
        try:
            c = await self._transition(c, status=Status.REMOVING)
        except ResourceExhausted:
            # No room even to record the remove (the disk's reserve spent, or never made
            # on a disk full from the start): what only this container holds, the layer
            # it wrote and its log, goes first, then the remove is recorded. A crash in
            # between leaves the container, emptied: the remove it was asked for, half done.
            await asyncio.to_thread(self._discard_own_files, c)
            try:
                c = await self._transition(c, status=Status.REMOVING)
            except ResourceExhausted as e:
                raise ResourceExhausted(
                    f"cannot remove container {c.name}: its layer and log were emptied, and "
                    f"still {e.message.removeprefix('cannot write the state database: ')}"
                ) from None
        self._crashes.hit("remove", "removing")
        await self.finish_remove(c, volumes)

    def _discard_own_files(self, c: Container) -> None:
        log.warning("disk full: emptying the container's layer and log before recording "
                    "its remove", container_id=c.id)
        self._snapshots.discard(Path(c.state_dir))
        with contextlib.suppress(FileNotFoundError):
            os.truncate(c.log_path, 0)

    async def finish_remove(self, c: Container, volumes: bool = False) -> None:
        """The rest of a remove once REMOVING is recorded; `volumes` (rm -v), and every
        --rm container's, take its anonymous volumes along after it is gone."""
        # The container's execs died with it; their ends are recorded before its directory
        # (where the shim wrote them) goes.
        await self._execs.settle(c.id)
        # A cleanup after a dead shim that failed (or never ran) is tried again, while the
        # bundle, whose spec names the cgroup, is still there.
        await self._clean_leftovers(c)
        # Record first: once it is gone the container is gone for every caller; a crash
        # before the directory is deleted leaves an orphan dir that start() removes.
        await self._events.publish(
            "container", "destroy", c.id, self._attrs(c), also=delete_writer(c.id)
        )
        self._containers.pop(c.id, None)
        self._locks.pop(c.id, None)
        self._waiters.removed(
            c.id, ExitStatus(c.state.exit_code, c.state.finished_at_ns, c.state.error)
        )
        for pending in self._pending.pop(c.id, []):
            if not pending.ready.done():
                pending.ready.set_exception(NotFound(f"container {c.name} was removed"))
        self._crashes.hit("remove", "deleted")
        await asyncio.to_thread(self._snapshots.remove, Path(c.state_dir))
        if volumes or c.host_config.auto_remove:
            await remove_anonymous(self._volumes, c)


def _cannot_stop(c: Container, e: PalletError) -> DeadlineExceeded:
    """A stop (or kill) of `c` whose shim let the deadline pass: it does not answer."""
    return DeadlineExceeded(
        f"cannot stop container {c.name}: {e.message}. `pallet rm -f {c.name}` kills the "
        "shim and the container's processes"
    )
