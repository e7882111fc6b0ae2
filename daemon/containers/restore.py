"""Restoring containers when palletd starts, after a clean stop or a kill -9.

Owns: deciding, for each container record, what the previous palletd left and acting on
it: a live shim is re-adopted, a dead one's exit is taken from disk (or recorded as 255
with a reason) and settled as any other exit (`Supervisor.settle_exit`: an `--rm`
container is removed, one with a restart policy restarted by it), a back-off a killed
palletd left goes on (`Supervisor.schedule_restart`), a start or remove cut short is
finished or undone, and leftovers
(state directories without a record, shims and sockets without a container) are removed.
Each container is reconciled under its lock, as the manager's own changes are. Must
not: hold container state or write records itself; it acts through the `Supervisor` (the
container manager), which owns both.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

import structlog

from pallet.daemon.containers import leftovers
from pallet.daemon.containers.exits import Outcome, Why, of_this_run
from pallet.daemon.containers.model import Container, Status
from pallet.daemon.store import space
from pallet.v1.errors import PalletError, ResourceExhausted, Unavailable
from pallet.daemon.shims.api import ShimClient, ShimLauncher
from pallet.shim.api.spec import ExitStatus, ShimState, TaskStatus
from pallet.daemon.snapshots.overlay import OverlaySnapshots
from pallet.daemon.snapshots.view import remove_leftover_views

log = structlog.get_logger(__name__)

# Shims reconciled at once when palletd starts.
RECONCILE_CONCURRENCY = 16
# How often a shim that did not answer at start is asked again.
READOPT_RETRY_S = 5.0


class Supervisor(Protocol):
    """What restoring needs from the component that owns containers and their runs."""

    @property
    def closing(self) -> bool: ...

    def lookup(self, container_id: str) -> Container | None: ...

    def lock(self, container_id: str) -> asyncio.Lock: ...

    def supervises(self, container_id: str) -> bool:
        """Whether the container's run is watched (its shim adopted)."""
        ...

    def supervise(self, c: Container, shim: ShimClient) -> None:
        """Watch a running container through its (re-adopted) shim."""
        ...

    async def reconcile_paused(self, c: Container, paused: bool) -> Container:
        """Record `c` paused or running as its re-adopted shim says it is."""
        ...

    async def adopt_start(self, c: Container, shim: ShimClient, state: ShimState) -> None:
        """Record as started a container whose start was cut short, and supervise it."""
        ...

    async def settle_exit(
        self, c: Container, status: ExitStatus, why: Why, shim: ShimClient | None = None
    ) -> Outcome:
        """Record the end of `c`'s run (once), release `shim`, do what follows (`--rm`)."""
        ...

    async def release_shim(self, shim: ShimClient) -> bool:
        """Shut the shim down; True when it acknowledged (its socket and cgroup are gone)."""
        ...

    async def finish_remove(self, c: Container, volumes: bool = False) -> None: ...

    async def clean_after_shim(self, c: Container) -> None: ...

    async def resume_execs(self, container_id: str) -> None: ...

    def background(self, key: str, work: Coroutine[Any, Any, None]) -> None: ...

    def schedule_restart(self, c: Container) -> None:
        """Start `c`, RESTARTING, when its back-off (in its record) is over."""
        ...


class Restorer:
    """Brings every container record in line with what is really on the host."""

    def __init__(
        self,
        supervisor: Supervisor,
        launcher: ShimLauncher,
        snapshots: OverlaySnapshots,
        containers_dir: Path,
        run_root: Path | None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._sup = supervisor
        self._launcher = launcher
        self._snapshots = snapshots
        self._dir = containers_dir
        # Where shims keep their sockets; None (tests with fake shims): nothing to clean.
        self._run_root = run_root
        self._clock = clock
        # Ids with a shim socket when palletd started (read once).
        self._sockets: set[str] = set()
        # Containers whose shim did not answer at start: asked again in the background.
        self._retrying: set[str] = set()

    def retrying(self, container_id: str) -> bool:
        return container_id in self._retrying

    async def restore(self, containers: list[Container]) -> None:
        await self._remove_orphan_dirs({c.id for c in containers})
        if self._run_root is not None:
            self._sockets = set(leftovers.shim_sockets(self._run_root))
        # Concurrently, but bounded: each reconcile is a few round trips to one shim.
        gate = asyncio.Semaphore(RECONCILE_CONCURRENCY)

        async def reconcile(c: Container) -> None:
            async with gate, self._sup.lock(c.id):
                try:
                    await self._reconcile(c)
                except ResourceExhausted as e:
                    # palletd starts on a full disk: what could not be recorded is tried
                    # again in the background (an end of a run is held, not failed: runs).
                    log.warning("cannot record what was found; retrying",
                                container_id=c.id, reason=str(e))
                    self._retry_reconcile(c.id)

        # Essential: what is recorded here is what happened while palletd was down.
        with space.essential():
            await asyncio.gather(*(reconcile(c) for c in containers))

    async def _remove_orphan_dirs(self, known: set[str]) -> None:
        """State dirs with no record are leftovers of a create or remove cut short; first,
        in every state dir, the read-only views a killed palletd left mounted come off."""
        for entry in self._dir.iterdir():
            await asyncio.to_thread(remove_leftover_views, entry)
            if entry.name not in known:
                log.info("removing leftover container dir", container_id=entry.name)
                await asyncio.to_thread(self._snapshots.remove, entry)

    async def _reconcile(self, c: Container) -> None:
        """Re-adopt the shim of a container the records say is running, or record its end."""
        if c.state.status is Status.REMOVING:
            await self._sup.finish_remove(c)
            return
        if c.state.status in (Status.CREATED, Status.EXITED, Status.RESTARTING):
            await self._reconcile_unstarted(c)
            now = self._sup.lookup(c.id)
            if now is not None and now.state.status is Status.RESTARTING:
                # In a back-off: it goes on from the record, at the time planned.
                self._sup.schedule_restart(now)
                return
            if now is None or now.state.status not in (Status.CREATED, Status.EXITED):
                return  # adopted: its start had got the process running
            # What follows the end of the last run may not have happened (palletd died
            # between recording it and an auto-remove): it happens now. A Created container
            # with an error is one whose start failed.
            recorded = ExitStatus(now.state.exit_code, now.state.finished_at_ns, now.state.error)
            # (And a restart policy's boot rule: `exits.after_exit`.)
            if now.state.status is Status.EXITED:
                await self._sup.settle_exit(now, recorded, Why.RECORDED)
            elif now.state.error:
                await self._sup.settle_exit(now, recorded, Why.START_FAILED)
            return
        if c.state.status not in (Status.RUNNING, Status.PAUSED):
            return
        bound = log.bind(container_id=c.id, shim_pid=c.state.shim_pid)
        try:
            shim = await self._launcher.connect(c.id, Path(c.state_dir))
            state = await shim.state()
        except Unavailable as e:
            bound.info("shim gone; reading exit status from disk", reason=str(e))
            on_disk = of_this_run(await asyncio.to_thread(
                self._launcher.exit_status_on_disk, Path(c.state_dir)
            ), c.state.started_at_ns)
            status = on_disk or ExitStatus(
                255,
                self._clock(),
                f"the container's shim (pid {c.state.shim_pid}) died while palletd was "
                "down, without recording the exit: its processes were killed with it",
            )
            await self._sup.clean_after_shim(c)
            await self._sup.settle_exit(c, status, Why.FOUND_EXITED)
            return
        except PalletError as e:
            # Only Unavailable means gone. Connected but no answer (DeadlineExceeded: the
            # shim is stopped, swapped out, overloaded) or an answer we cannot read (a newer
            # shim's): the shim lives, its container may be fine, and taking it for dead
            # would leave it running unsupervised. Retry.
            bound.warning("shim does not answer; retrying in the background", reason=str(e))
            self._retry_adopt(c.id)
            return
        if state.status is TaskStatus.RUNNING:
            bound.info("re-adopted running container", paused=state.paused)
            try:
                # The shim holds a pause: the record follows what it says.
                c = await self._sup.reconcile_paused(c, state.paused)
            except PalletError:
                await shim.aclose()  # not recorded (a full disk): reconciled again later
                raise
            self._sup.supervise(c, shim)
            return
        on_disk = of_this_run(await asyncio.to_thread(
            self._launcher.exit_status_on_disk, Path(c.state_dir)
        ), c.state.started_at_ns)
        status = state.exit or on_disk or ExitStatus(
            255, self._clock(), "shim reported no exit status"
        )
        await self._sup.settle_exit(c, status, Why.FOUND_EXITED, shim)

    def _retry_reconcile(self, container_id: str) -> None:
        # Like a shim that did not answer: its execs are settled once it is reconciled.
        self._retrying.add(container_id)

        async def retry() -> None:
            try:
                while not self._sup.closing:
                    await asyncio.sleep(READOPT_RETRY_S)
                    async with self._sup.lock(container_id):
                        c = self._sup.lookup(container_id)
                        if c is None:
                            return
                        try:
                            with space.essential():  # as at boot (see `restore`)
                                await self._reconcile(c)
                        except ResourceExhausted:
                            continue
                    await self._sup.resume_execs(container_id)
                    return
            finally:
                self._retrying.discard(container_id)

        self._sup.background(f"reconcile-{container_id}", retry())

    def _retry_adopt(self, container_id: str) -> None:
        self._retrying.add(container_id)

        async def retry() -> None:
            try:
                while not self._sup.closing:
                    await asyncio.sleep(READOPT_RETRY_S)
                    with space.essential():  # as at boot (see `restore`)
                        settled = await self._retry_once(container_id)
                    if settled:
                        return
            finally:
                self._retrying.discard(container_id)

        self._sup.background(f"readopt-{container_id}", retry())

    async def _retry_once(self, container_id: str) -> bool:
        """Ask a silent shim again; True once the container is settled either way."""
        async with self._sup.lock(container_id):
            c = self._sup.lookup(container_id)
            if c is None or c.state.status not in (Status.RUNNING, Status.PAUSED):
                return True
            if self._sup.supervises(container_id):
                return True
            try:
                shim = await self._launcher.connect(c.id, Path(c.state_dir))
                await shim.aclose()
            except Unavailable:
                pass
            except PalletError:
                return False  # alive but silent or unreadable: ask again later
            await self._reconcile(c)
        # Its execs were left alone until now: settle them with the container.
        await self._sup.resume_execs(container_id)
        return True

    async def _reconcile_unstarted(self, c: Container) -> None:
        """A created or exited container may have a shim from a start cut short by a crash.

        A start persists RUNNING only after the shim started the process; palletd killed in
        between leaves a shim (building, built, or running the container) that the records
        do not know. A running one is adopted, as if the start had finished; any other is
        shut down, so the container stays as recorded.
        """
        if c.id not in self._sockets:
            return
        bound = log.bind(container_id=c.id)
        try:
            shim = await self._launcher.connect(c.id, Path(c.state_dir))
            state = await shim.state()
        except Unavailable as e:
            bound.info("stale shim socket removed", reason=str(e))
            await self._sup.clean_after_shim(c)
            return
        except PalletError as e:  # alive (see _reconcile): left alone
            bound.warning("the shim of a start cut short does not answer", reason=str(e))
            return
        if state.status is TaskStatus.RUNNING:
            bound.info("adopted a container whose start was cut short", pid=state.pid)
            try:
                await self._sup.adopt_start(c, shim, state)
            except PalletError:
                await shim.aclose()  # not recorded (a full disk): asked again later
                raise
            return
        # Built but never started (its init waits for `start`), or already stopped.
        bound.info("shut down the shim of a start cut short", shim_status=state.status)
        await self._sup.release_shim(shim)

    async def remove_stray_shims(self) -> None:
        """Shim sockets of containers that have no record: stale files or stray shims."""
        if self._run_root is None:
            return
        for cid, path in leftovers.shim_sockets(self._run_root).items():
            if self._sup.lookup(cid) is not None:
                continue
            try:
                shim = await self._launcher.connect(cid, self._dir / cid)
            except Unavailable:
                await asyncio.to_thread(path.unlink, missing_ok=True)
                continue
            except PalletError:
                log.warning("a shim with no container record does not answer", container_id=cid)
                continue
            log.warning("stopping the shim of a container with no record", container_id=cid)
            try:
                await shim.kill(signal.SIGKILL, all_processes=True)
            except PalletError:
                pass
            await self._sup.release_shim(shim)
