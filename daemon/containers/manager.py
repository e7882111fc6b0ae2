"""The container lifecycle: create, start, stop, kill, restart, remove, wait, attach, exec.

Owns: the in-memory view of every container (loaded from and persisted to
`ContainerRecords`), the state machine's transitions, one shim connection and one exit
monitor per running container. Every transition
commits with its event in one transaction. A start runs `start.ContainerStart`'s steps
(with rollback); every end of a run, whoever learns of it, goes through `settle_exit`,
which does what `exits.after_exit` decides (`runs.RunEnds`: the monitor, recording an
end, releasing the shim). Execs are run and followed to their end by
`execs.ExecTracker`; what a previous palletd left is put right by `restore.Restorer`, which
acts through this manager (the `Supervisor` methods).

Must not: build namespaces or touch the log file's bytes (the shim does), or parse image
archives (the image store does).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import structlog

from pallet.daemon.containers import filters as container_filters
from pallet.daemon.containers import leftovers
from pallet.daemon.containers.execs import ExecTracker, TrackedExec
from pallet.daemon.containers.exits import Why
from pallet.daemon.containers.bundle import cgroup_path, exec_process, write_etc_files
from pallet.daemon.containers.model import (
    Container,
    ContainerState,
    CreateRequest,
    Status,
    check_transition,
)
from pallet.daemon.containers.merge import effective_config
from pallet.daemon.containers.restore import Restorer
from pallet.daemon.containers.runs import HeldEnd, RunEnds
from pallet.daemon.containers.names import generate_name, validate_name
from pallet.daemon.containers.sessions import Attachment, PendingAttach, Run
from pallet.daemon.containers.start import ContainerStart, StartDeps
from pallet.daemon.containers.signals import parse_signal
from pallet.daemon.containers.store import (
    ContainerRecords,
    delete_writer,
    insert_writer,
    update_writer,
)
from pallet.v1.errors import (
    AlreadyExists,
    Conflict,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PalletError,
    ResourceExhausted,
)
from pallet.daemon.events.model import EventPublisher
from pallet.daemon.faults import NO_CRASHES, CrashHook
from pallet.daemon.images.model import Image, ImageStore
from pallet.daemon.shims.api import ShimClient, ShimLauncher, Stdio
from pallet.shim.api.spec import ExecSpec, ExitStatus, ShimState
from pallet.daemon.snapshots.overlay import OverlaySnapshots
from pallet.daemon.store import space

log = structlog.get_logger(__name__)

# How long remove/stop wait for a SIGKILLed container to be reported gone.
KILL_GRACE_S = 30.0


class ContainerManager(RunEnds):
    """Runs containers through shims and keeps their records true."""

    def __init__(
        self,
        records: ContainerRecords,
        images: ImageStore,
        snapshots: OverlaySnapshots,
        shims: ShimLauncher,
        events: EventPublisher,
        root: Path,
        cgroup_parent: str = "pallet",
        clock: Callable[[], int] = time.time_ns,
        run_root: Path | None = None,
        crashes: CrashHook = NO_CRASHES,
    ) -> None:
        self._records = records
        self._images = images
        self._snapshots = snapshots
        self._launcher = shims
        self._events = events
        self._dir = root / "containers"
        self._cgroup_parent = cgroup_parent
        self._clock = clock
        # Where shims keep their sockets; None (tests with fake shims): nothing to clean.
        self._run_root = run_root
        self._crashes = crashes
        self._execs = ExecTracker(records, events, shims, clock, crashes)
        self._containers: dict[str, Container] = {}
        self._reserved_names: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        # Containers `rm -f` calls are removing (how many): no start of them begins.
        self._removing: dict[str, int] = {}
        self._runs: dict[str, Run] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._pending: dict[str, list[PendingAttach]] = {}
        self._held: dict[str, HeldEnd] = {}
        self._closing = False
        self._restorer = Restorer(self, shims, snapshots, self._dir, run_root, clock)
        self._start_deps = StartDeps(self, snapshots, shims, crashes, cgroup_parent, clock)

    # ---- component lifecycle -------------------------------------------------------

    async def start(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        await self._records.start()
        for c in await self._records.load_all():
            self._containers[c.id] = c
        started = time.monotonic()
        # Execs first: a remove the restorer finishes settles the container's execs.
        await self._execs.start()
        await self._restorer.restore(list(self._containers.values()))
        for cid in self._execs.containers_with_execs():
            if not self._restorer.retrying(cid):  # else settled once it is adopted
                await self.resume_execs(cid)
        await self._restorer.remove_stray_shims()
        log.info(
            "containers reconciled",
            containers=len(self._containers),
            running=len(self._runs),
            seconds=round(time.monotonic() - started, 3),
        )

    async def stop_all(self) -> None:
        """Stop every running container (palletd --stop-containers-on-exit)."""
        running = [c.id for c in self._containers.values() if c.id in self._runs]
        results = await asyncio.gather(
            *(self.stop(cid) for cid in running), return_exceptions=True
        )
        for cid, result in zip(running, results):
            if isinstance(result, BaseException):
                log.warning("could not stop container on exit", container_id=cid,
                            reason=str(result))

    async def aclose(self) -> None:
        """Stop watching containers; they keep running under their shims."""
        self._closing = True
        await self._execs.aclose()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Shims of ends not yet written keep them: a palletd started later finds them.
        shims = [r.shim for r in self._runs.values()]
        shims += [h.shim for h in self._held.values() if h.shim is not None]
        for shim in shims:
            try:
                await shim.aclose()
            except PalletError:
                pass
        self._runs.clear()

    # ---- the Supervisor the restorer acts through --------------------------------------

    @property
    def closing(self) -> bool:
        return self._closing

    def lookup(self, container_id: str) -> Container | None:
        return self._containers.get(container_id)

    def supervises(self, container_id: str) -> bool:
        return container_id in self._runs

    def supervise(self, c: Container, shim: ShimClient) -> None:
        run = Run(shim)
        self._runs[c.id] = run
        self._watch(c.id, run)

    async def adopt_start(self, c: Container, shim: ShimClient, state: ShimState) -> None:
        with space.essential():  # what happened: the start had got the process running
            c = await self._adopt_start(c, shim, state)
        self.supervise(c, shim)

    async def _adopt_start(self, c: Container, shim: ShimClient, state: ShimState) -> Container:
        return await self._transition(
            c,
            event=("start", self._attrs(c)),
            status=Status.RUNNING,
            pid=state.pid,
            started_at_ns=state.started_at_ns or self._clock(),
            exit_code=0,
            error="",
            shim_pid=shim.shim_pid,
        )

    async def resume_execs(self, container_id: str) -> None:
        """Execs a previous palletd left: followed through the re-adopted shim, or settled
        from disk when the container's run is over."""
        run = self._runs.get(container_id)
        await self._execs.resume(container_id, run.shim if run is not None else None)

    async def clean_after_shim(self, c: Container) -> None:
        if self._run_root is None:
            return
        await leftovers.clean_after_dead_shim(
            self._launcher, c.id, Path(c.state_dir), cgroup_path(c, self._cgroup_parent)
        )

    async def _clean_leftovers(self, c: Container) -> None:
        """`clean_after_shim` for a container no shim serves, if its shim left anything:
        asked of the launcher first, so a healthy remove starts no `pallet-shim delete`."""
        if self._run_root is None or c.id in self._runs:
            return
        try:
            found = await self._launcher.has_leftovers(c.id, Path(c.state_dir))
        except PalletError as e:
            # An older launcher, say: the delete command finds out itself.
            log.debug("cannot ask about leftovers", container_id=c.id, reason=str(e))
            found = True
        if found:
            await self.clean_after_shim(c)

    def take_pending(self, container_id: str) -> list[PendingAttach]:
        return self._pending.pop(container_id, [])

    # ---- lookups -------------------------------------------------------------------

    def resolve(self, ref: str) -> Container:
        """By full id, name (with or without '/'), or unique id prefix."""
        if not ref:
            raise InvalidArgument("no container given: name one by id, id prefix or name")
        c = self._containers.get(ref)
        if c is not None:
            return c
        name = ref[1:] if ref.startswith("/") else ref
        for c in self._containers.values():
            if c.name == name:
                return c
        matches = [c for c in self._containers.values() if c.id.startswith(ref.lower())]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(
                f"container id prefix {ref!r} is ambiguous: it matches {len(matches)} "
                "containers; give more characters or the name"
            )
        raise NotFound(f"No such container: {ref}")

    def get(self, ref: str) -> Container:
        return self.resolve(ref)

    def containers(self) -> list[Container]:
        """Every container, newest first."""
        return sorted(self._containers.values(), key=lambda c: c.created_ns, reverse=True)

    async def list_filtered(self, all: bool, filters: Sequence[str]) -> list[Container]:
        """`ps`: running containers (every one with `all` or a status filter), filtered."""
        terms = container_filters.parse(filters)
        ancestors: set[str] = set()
        for ref in terms.get("ancestor", ()):
            try:
                ancestors.add((await self._images.get(ref)).id)
            except (NotFound, InvalidArgument):
                pass
        everything = all or "status" in terms or "exited" in terms
        return [
            c
            for c in self.containers()
            if (everything or c.state.status is Status.RUNNING)
            and container_filters.matches(c, terms, ancestors)
        ]

    async def layer_dirs(self, c: Container) -> list[str]:
        """The image layers under the container's rootfs (none when the image is gone)."""
        try:
            return self._images.layer_dirs(await self._images.get(c.image_id))
        except NotFound:
            return []

    def lock(self, container_id: str) -> asyncio.Lock:
        return self._locks.setdefault(container_id, asyncio.Lock())

    def _attrs(self, c: Container, **extra: str) -> dict[str, str]:
        attrs = dict(c.config.labels)
        attrs.update(name=c.name, image=c.config.image)
        attrs.update(extra)
        return attrs

    async def _transition(
        self,
        c: Container,
        event: tuple[str, dict[str, str]] | None = None,
        **state: object,
    ) -> Container:
        """Persist a state change (checked against the transition table).

        With `event` (action, attributes), the change and its event are committed in one
        transaction: a crash leaves both or neither.
        """
        target = state.get("status", c.state.status)
        assert isinstance(target, Status)
        check_transition(c.name, c.state.status, target)
        # An end held in memory (a full disk) is written first: events stay in order.
        await self.write_held(c.id)
        updated = c.with_state(**state)
        if event is None:
            await self._records.update(updated)
        else:
            action, attrs = event
            await self._events.publish(
                "container", action, c.id, attrs, also=update_writer(updated)
            )
        self._containers[c.id] = updated
        return updated

    # ---- create --------------------------------------------------------------------

    async def create(self, req: CreateRequest) -> Container:
        name = validate_name(req.name) if req.name else ""
        try:
            image = await self._images.get(req.config.image)
        except NotFound:
            raise NotFound(
                f"No such image: {req.config.image}: import or load it first (pallet images lists "
                "what is here)"
            ) from None
        taken = {c.name for c in self._containers.values()} | self._reserved_names
        if name and name in taken:
            owner = next((c for c in self._containers.values() if c.name == name), None)
            suffix = f" by container {owner.short_id}" if owner else ""
            raise AlreadyExists(
                f"the container name {name!r} is already in use{suffix}: remove that "
                "container or choose another name"
            )
        name = name or generate_name(taken)
        cid = secrets.token_hex(32)
        config, host_config = effective_config(req, image, req.config.hostname or cid[:12])
        state_dir = self._dir / cid
        container = Container(
            id=cid,
            name=name,
            image_id=image.id,
            config=config,
            host_config=host_config,
            state=ContainerState(),
            created_ns=self._clock(),
            state_dir=str(state_dir),
        )
        self._reserved_names.add(name)
        try:
            # Files first, record last: a crash in between leaves only a dir, which
            # start() removes as an orphan; a record never points at a missing dir.
            try:
                await asyncio.to_thread(self._prepare_dir, container, image)
            except OSError as e:
                if e.errno not in space.FULL_ERRNOS:
                    raise
                raise space.disk_full(self._dir, "cannot create the container") from e
            self._crashes.hit("create", "dir")
            try:
                # The record and its create event in one transaction.
                await self._events.publish(
                    "container", "create", cid, self._attrs(container),
                    also=insert_writer(container),
                )
            except Exception as e:
                if "UNIQUE" in str(e):
                    raise AlreadyExists(
                        f"the container name {name!r} is already in use: choose another name"
                    ) from None
                raise
        except BaseException:
            await asyncio.to_thread(self._snapshots.remove, state_dir)
            raise
        finally:
            self._reserved_names.discard(name)
        self._containers[cid] = container
        self._crashes.hit("create", "recorded")
        return container

    def _prepare_dir(self, container: Container, image: Image) -> None:
        state_dir = Path(container.state_dir)
        state_dir.mkdir(mode=0o710)
        self._snapshots.prepare(state_dir, self._images.layer_dirs(image))
        write_etc_files(container)

    # ---- start ---------------------------------------------------------------------

    async def start_container(self, ref: str) -> int:
        c = self.resolve(ref)
        async with self.lock(c.id):
            c = self.resolve(c.id)
            self._check_not_removing(c)
            if c.state.status is Status.RUNNING:
                return c.state.pid
            if c.state.status not in (Status.CREATED, Status.EXITED):
                raise FailedPrecondition(
                    f"container {c.name} is {c.state.status.value}: it cannot be started"
                )
            return await self._start_locked(c)

    def _check_not_removing(self, c: Container) -> None:
        """A start loses to an `rm -f` under way (docker: "marked for removal")."""
        if c.id in self._removing:
            raise Conflict(
                f"container {c.name} is being removed (rm -f): it cannot be started"
            )

    async def _start_locked(self, c: Container) -> int:
        # The last run's end, if it was held (a full disk), is written before a new run
        # begins (its shim still holds the container's socket); else the start fails.
        await self.write_held(c.id)
        try:
            image = await self._images.get(c.image_id)
        except NotFound:
            raise FailedPrecondition(
                f"the image of container {c.name} ({c.config.image}, "
                f"{c.image_id[7:19]}) was removed: create the container again from an "
                "image that exists"
            ) from None
        start = ContainerStart(c, self._images.layer_dirs(image), self._start_deps)
        failed: list[ExitStatus] = []

        async def record_failure(e: PalletError) -> None:
            # Before the rollback (why: `ContainerStart.run_steps`); settle_exit below finds
            # it recorded and does what follows.
            status = start.exit or ExitStatus(128, self._clock(), str(e))
            if not status.error:
                status = replace(status, error=str(e))
            failed.append(status)
            await self._record_failed_start(c, status)
            self._crashes.hit("start", "failure-recorded")

        try:
            await start.run_steps(record_failure)
        except PalletError as e:
            # The steps were released (no shim, no cgroup); what the start made is gone.
            self._crashes.hit("start", "rolled-back")
            status = failed[0] if failed else ExitStatus(128, self._clock(), str(e))
            if not status.error:
                status = replace(status, error=str(e))
            if start.run is not None:  # attached clients hear of the end
                start.run.exit = status
                start.run.done.set()
            await self.settle_exit(self._containers.get(c.id, c), status, Why.START_FAILED)
            raise
        shim, run, pid = start.shim, start.run, start.pid
        assert shim is not None and run is not None
        try:
            c = await self._transition(
                c,
                event=("start", self._attrs(c)),
                status=Status.RUNNING,
                pid=pid,
                # Taken before the init was started: an exit on disk from before it is the
                # previous run's (`of_this_run`), even for an init that exited at once.
                started_at_ns=start.started_at_ns,
                exit_code=0,
                error="",
                shim_pid=shim.shim_pid,
            )
        except PalletError as e:
            # Not recorded (a full disk): the container must not run unrecorded. Its init
            # is killed and the shim let go, as a failed step's rollback does.
            await start.release_shim()
            status = ExitStatus(128, self._clock(), f"the start could not be recorded: {e}")
            run.exit = status
            run.done.set()
            await self.settle_exit(self._containers.get(c.id, c), status, Why.START_FAILED)
            raise
        self._runs[c.id] = run
        self._watch(c.id, run)
        return pid

    # ---- stop / kill / restart -----------------------------------------------------

    async def kill(self, ref: str, sig: str = "") -> None:
        c = self.resolve(ref)
        num = parse_signal(sig, signal.SIGKILL)
        run = self._runs.get(c.id)
        if c.state.status is not Status.RUNNING or run is None:
            raise FailedPrecondition(
                f"container {c.name} is not running: there is nothing to signal"
            )
        was_stopped, run.stopped = run.stopped, True
        try:
            await run.shim.kill(num)
        except DeadlineExceeded as e:
            run.stopped = was_stopped  # not delivered: an exit later is not this kill's
            raise DeadlineExceeded(
                f"cannot signal container {c.name}: {e.message}. `pallet rm -f {c.name}` "
                "kills the shim and the container's processes"
            ) from None

    async def stop(self, ref: str, timeout: int | None = None) -> None:
        c = self.resolve(ref)
        run = self._runs.get(c.id)
        if c.state.status is not Status.RUNNING or run is None:
            return
        wait_s = c.config.stop_timeout if timeout is None else timeout
        if wait_s < 0:
            raise InvalidArgument(f"invalid stop timeout {wait_s}: use 0 or more seconds")
        was_stopped, run.stopped = run.stopped, True
        try:
            await run.shim.kill(parse_signal(c.config.stop_signal, signal.SIGTERM))
        except DeadlineExceeded as e:
            # Waiting on would not help: the signal was not delivered, nor would SIGKILL be.
            # Nor is an exit later this stop's (a restart policy will tell the two apart).
            run.stopped = was_stopped
            raise _cannot_stop(c, e) from None
        except PalletError as e:
            log.info("stop signal not delivered", container_id=c.id, reason=str(e))
        try:
            await asyncio.wait_for(run.done.wait(), wait_s)
            return
        except TimeoutError:
            pass
        await self._kill_and_wait(c, run)

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

    async def restart(self, ref: str, timeout: int | None = None) -> int:
        c = self.resolve(ref)
        await self.stop(c.id, timeout)
        run = self._runs.get(c.id)
        if run is not None:
            await run.done.wait()
        async with self.lock(c.id):
            c = self.resolve(c.id)
            self._check_not_removing(c)
            if c.state.status is Status.RUNNING:
                return c.state.pid
            c = replace(c, restart_count=c.restart_count + 1)
            self._containers[c.id] = c
            return await self._start_locked(c)

    # ---- remove --------------------------------------------------------------------

    async def remove(self, ref: str, force: bool = False) -> None:
        # Essential: removing is how space comes back, so it may spend the state disk's
        # reserve (`space`), as recording the exit of a container it kills does.
        with space.essential():
            await self._remove(ref, force)

    async def _remove(self, ref: str, force: bool) -> None:
        c = self.resolve(ref)
        if not force:
            async with self.lock(c.id):
                c = self._present(c.id, ref)
                if c.state.status is Status.RUNNING:
                    raise FailedPrecondition(
                        f"container {c.name} is running: stop it first, or remove it with "
                        "force (rm -f)"
                    )
                await self._remove_locked(c)
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
                    if c.state.status is Status.RUNNING:
                        # No run: a shim that did not answer when palletd started (the
                        # restorer keeps asking it). Killed here; the remove cleans up.
                        status = await self._kill_shim(
                            c, None, DeadlineExceeded("its shim was not re-adopted")
                        )
                        c = await self._record_exit(c, status)  # die before destroy
                    await self._remove_locked(c)
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

    async def _remove_locked(self, c: Container) -> None:
        if c.state.status is Status.REMOVING:
            # A remove that failed after recording REMOVING (a full disk): finish it.
            await self.finish_remove(c)
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
        await self.finish_remove(c)

    def _discard_own_files(self, c: Container) -> None:
        log.warning("disk full: emptying the container's layer and log before recording "
                    "its remove", container_id=c.id)
        self._snapshots.discard(Path(c.state_dir))
        with contextlib.suppress(FileNotFoundError):
            os.truncate(c.log_path, 0)

    async def finish_remove(self, c: Container) -> None:
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
        for pending in self._pending.pop(c.id, []):
            if not pending.ready.done():
                pending.ready.set_exception(NotFound(f"container {c.name} was removed"))
        self._crashes.hit("remove", "deleted")
        await asyncio.to_thread(self._snapshots.remove, Path(c.state_dir))

    # ---- wait / attach / exec ------------------------------------------------------

    async def wait(self, ref: str) -> ExitStatus:
        """Block while the container runs; return its last exit status."""
        c = self.resolve(ref)
        run = self._runs.get(c.id)
        if run is not None:  # running, or its end is being settled
            await run.done.wait()
            assert run.exit is not None
            return run.exit
        return ExitStatus(c.state.exit_code, c.state.finished_at_ns, c.state.error)

    async def attach(self, ref: str, stdin: bool, stdout: bool, stderr: bool) -> Attachment:
        c = self.resolve(ref)
        stdin = stdin and c.config.open_stdin
        future: asyncio.Future[tuple[Stdio, Run]] = asyncio.get_running_loop().create_future()
        run = self._runs.get(c.id)
        if c.state.status is Status.RUNNING and run is not None:
            stdio = await run.shim.attach(stdin, stdout, stderr)
            future.set_result((stdio, run))
        elif c.state.status in (Status.CREATED, Status.EXITED):
            pending = PendingAttach(stdin, stdout, stderr, future)
            self._pending.setdefault(c.id, []).append(pending)
        else:
            raise FailedPrecondition(
                f"container {c.name} is {c.state.status.value}: you cannot attach to it"
            )
        return Attachment(future)

    async def exec(
        self,
        ref: str,
        args: tuple[str, ...],
        env: tuple[str, ...] = (),
        working_dir: str = "",
        user: str = "",
        stdin: bool = False,
    ) -> TrackedExec:
        c = self.resolve(ref)
        run = self._runs.get(c.id)
        if c.state.status is not Status.RUNNING or run is None:
            raise FailedPrecondition(f"container {c.name} is not running: start it first")
        if not args:
            raise InvalidArgument("no command given to exec")
        for item in env:
            if "=" not in item:
                raise InvalidArgument(f"invalid environment variable {item!r}: use KEY=value")
        spec = ExecSpec(
            exec_id="",  # the tracker gives it one
            process=exec_process(c, args, env, working_dir, user, stdin),
        )
        return await self._execs.run(c.id, c.state_dir, run.shim, spec, self._attrs(c))

    def counts(self) -> Mapping[Status, int]:
        counts: dict[Status, int] = {}
        for c in self._containers.values():
            counts[c.state.status] = counts.get(c.state.status, 0) + 1
        return counts


def _cannot_stop(c: Container, e: PalletError) -> DeadlineExceeded:
    """A stop (or kill) of `c` whose shim let the deadline pass: it does not answer."""
    return DeadlineExceeded(
        f"cannot stop container {c.name}: {e.message}. `pallet rm -f {c.name}` kills the "
        "shim and the container's processes"
    )
