"""Exec processes and their events: exec_create, exec_start, and exactly one exec_die.

Owns: the order of an exec (record and exec_create in one transaction, then the shim runs
it, then exec_start), one watcher per exec that records its end whatever happens to the
client that started it, and settling the execs a previous palletd left behind (through the
re-adopted shim, or from the exit the shim wrote to disk). Must not: change a container's
state (the manager does) or decide whether a container may run an exec.

The `execs` table holds exactly the execs whose exec_die is still to come; each exec_die
is journalled in the transaction that deletes its row, so a crash never loses it nor
writes it twice.
"""

from __future__ import annotations

import asyncio
import contextvars
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

import structlog

from pallet.daemon.containers.model import ExecRecord
from pallet.daemon.containers.store import (
    ContainerRecords,
    exec_delete_writer,
    exec_insert_writer,
    exec_started_writer,
)
from pallet.v1.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PalletError,
    ResourceExhausted,
)
from pallet.daemon.events.model import EventPublisher
from pallet.daemon.faults import NO_CRASHES, CrashHook
from pallet.daemon.store import space
from pallet.daemon.shims.api import ExecSession, ShimClient, ShimLauncher
from pallet.shim.api.spec import ExecSpec, ExitStatus

log = structlog.get_logger(__name__)

# The exit code of an exec that never ran (docker: "cannot invoke"), and of one whose end
# nobody recorded.
NEVER_RAN = 126
UNKNOWN = 255
# How long removing a container waits for its execs' watchers to record their ends.
SETTLE_S = 5.0
# How often ends a full disk kept from being written are tried again.
UNWRITTEN_RETRY_S = 1.0


class TrackedExec:
    """An exec as the client that started it sees it: its stdio, and its recorded end."""

    def __init__(
        self, session: ExecSession, exec_id: str, ended: asyncio.Future[ExitStatus]
    ) -> None:
        self.session = session
        self.exec_id = exec_id
        self.pid = session.pid
        self._ended = ended

    async def wait(self) -> ExitStatus:
        """The exit status, once its exec_die is journalled."""
        return await asyncio.shield(self._ended)

    def status(self) -> ExitStatus | None:
        """The exit status once its end is known, else None (it runs)."""
        if self._ended.done() and not self._ended.cancelled():
            return self._ended.result()
        return None


class ExecTracker:
    """Runs execs through shims and journals each one's end exactly once."""

    def __init__(
        self,
        records: ContainerRecords,
        events: EventPublisher,
        launcher: ShimLauncher,
        clock: Callable[[], int] = time.time_ns,
        crashes: CrashHook = NO_CRASHES,
    ) -> None:
        self._crashes = crashes
        self._records = records
        self._events = events
        self._launcher = launcher
        self._clock = clock
        self._pending: dict[str, ExecRecord] = {}
        self._ended: dict[str, asyncio.Future[ExitStatus]] = {}
        # Ends known but not written (a full disk): tried again once a second by
        # `_rewriting`, and by `settle` when the container goes.
        self._unwritten: dict[str, ExitStatus] = {}
        self._rewriting: asyncio.Task[None] | None = None
        self._watchers: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        """Load the execs a previous palletd did not see end (settled by `resume`)."""
        for record in await self._records.load_execs():
            self._pending[record.id] = record

    async def aclose(self) -> None:
        """Stop watching; the execs keep running and the next palletd settles them."""
        tasks = list(self._watchers.values())
        if self._rewriting is not None:
            tasks.append(self._rewriting)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def containers_with_execs(self) -> set[str]:
        return {r.container_id for r in self._pending.values()}

    # ---- a new exec ------------------------------------------------------------------

    async def run(
        self,
        container_id: str,
        state_dir: str,
        shim: ShimClient,
        spec: ExecSpec,
        attributes: Mapping[str, str],
    ) -> TrackedExec:
        """Start `spec` in the container, under its exec_id, or a fresh one if it has none."""
        exec_id = spec.exec_id or secrets.token_hex(32)
        if exec_id in self._pending:
            raise AlreadyExists(f"exec {exec_id} exists already")
        spec = replace(spec, exec_id=exec_id)
        record = ExecRecord(
            id=exec_id,
            container_id=container_id,
            state_dir=state_dir,
            command=" ".join(spec.process.args),
            attributes={**attributes, "execID": exec_id},
            created_ns=self._clock(),
        )
        # Recorded before the shim hears of it: a palletd that dies from here on leaves a
        # row that the next one settles, whether or not the shim got to run it.
        await self._events.publish(
            "container", "exec_create: " + record.command, container_id,
            record.attributes, also=exec_insert_writer(record),
        )  # fmt: skip
        self._pending[exec_id] = record
        ended = self._ended[exec_id] = asyncio.get_running_loop().create_future()
        self._crashes.hit("exec", "recorded")
        try:
            session = await shim.exec(spec)
        except (FailedPrecondition, InvalidArgument, AlreadyExists) as e:
            # The shim refused it: it never ran.
            refused = ExitStatus(NEVER_RAN, self._clock(), f"the exec did not start: {e}")
            await self._end(record, refused)
            raise
        except BaseException:
            # No answer (deadline, lost shim, cancelled): the shim may have started it. The
            # watcher asks the shim, which knows.
            self._watch(record, shim)
            raise
        self._crashes.hit("exec", "started")
        record = await self._mark_started(record)
        self._watch(record, shim, session)
        return TrackedExec(session, exec_id, ended)

    async def _mark_started(self, record: ExecRecord) -> ExecRecord:
        """Journal exec_start (essential: it runs). On a disk too full even for that, the
        exec runs on unannounced (warned): its watcher tries again at its end."""
        try:
            with space.essential():
                await self._events.publish(
                    "container", "exec_start: " + record.command, record.container_id,
                    record.attributes, also=exec_started_writer(record.id),
                )  # fmt: skip
        except ResourceExhausted as e:
            log.warning("cannot write the start of an exec", exec_id=record.id, reason=str(e))
            return record
        record = replace(record, started=True)
        if record.id in self._pending:
            self._pending[record.id] = record
        return record

    # ---- following an exec to its end -----------------------------------------------

    def _watch(
        self, record: ExecRecord, shim: ShimClient, session: ExecSession | None = None
    ) -> None:
        task = asyncio.create_task(
            self._follow(record, shim, session), name=f"exec-{record.id[:12]}"
        )
        self._watchers[record.id] = task

        def forget(t: asyncio.Task[None]) -> None:
            if self._watchers.get(record.id) is t:
                del self._watchers[record.id]

        task.add_done_callback(forget)

    async def _follow(
        self, record: ExecRecord, shim: ShimClient, session: ExecSession | None = None
    ) -> None:
        if session is not None:
            # The exec's own stream says how it ended (the shim sends the same status to
            # `wait_exec`): no connection of its own for the watcher, as long as the
            # stream lasts. Closed by its client first, or broken: asked as below.
            status = await _end_from(session)
            if status is not None:
                if not record.started:  # its exec_start was not written (a full disk)
                    record = await self._mark_started(record)
                await self._end(record, status)
                return
        try:
            status = await shim.wait_exec(record.id)
        except NotFound:
            # Recorded, then palletd died (or lost the shim) before the shim ran it.
            status = ExitStatus(NEVER_RAN, self._clock(), "the exec was never started")
        except PalletError as e:
            status = await self._from_disk(record, f"its container's shim went away ({e})")
        else:
            if not record.started:
                # It ran, but palletd died before journalling that: say so, in order.
                record = await self._mark_started(record)
        await self._end(record, status)

    async def _from_disk(self, record: ExecRecord, why: str) -> ExitStatus:
        on_disk = await asyncio.to_thread(
            self._launcher.exec_exit_on_disk, Path(record.state_dir), record.id
        )
        return on_disk or ExitStatus(
            UNKNOWN, self._clock(),
            f"the exit status of the exec is unknown: {why} without recording it",
        )  # fmt: skip

    async def _end(self, record: ExecRecord, status: ExitStatus) -> None:
        """Journal exec_die and drop the row, in one transaction; tell the client."""
        if self._pending.pop(record.id, None) is None:
            return  # ended already (a watcher and a removal racing)
        attrs = {**record.attributes, "exitCode": str(status.exit_code)}
        if status.error:
            attrs["error"] = status.error
        try:
            with space.essential():  # an end that happened: it may spend the disk's reserve
                await self._events.publish(
                    "container", "exec_die", record.container_id, attrs,
                    also=exec_delete_writer(record.id),
                )  # fmt: skip
        except ResourceExhausted as e:
            # The client still hears how it ended; the record is written from what is kept
            # here, once there is room (tried every second, and when its container goes).
            log.warning("cannot write the end of an exec; kept and retried",
                        exec_id=record.id, reason=str(e))
            self._pending[record.id] = record
            self._unwritten[record.id] = status
            self._answer(record.id, status)
            if self._rewriting is None or self._rewriting.done():
                self._rewriting = asyncio.create_task(
                    self._write_unwritten(), name="exec-ends-unwritten",
                    context=contextvars.Context(),
                )
            return
        self._unwritten.pop(record.id, None)
        try:
            await asyncio.to_thread(
                self._launcher.discard_exec_exit, Path(record.state_dir), record.id
            )
        except (OSError, PalletError) as e:
            log.warning("could not remove an exec's exit file", exec_id=record.id, reason=str(e))
        self._answer(record.id, status)

    async def _write_unwritten(self) -> None:
        """Once a second, the exec ends a full disk kept from being written, until all are."""
        while self._unwritten:
            await asyncio.sleep(UNWRITTEN_RETRY_S)
            for exec_id, status in list(self._unwritten.items()):
                record = self._pending.get(exec_id)
                if record is None:
                    self._unwritten.pop(exec_id, None)
                    continue
                await self._end(record, status)  # kept again when still full
                if exec_id in self._unwritten:
                    break

    def _answer(self, exec_id: str, status: ExitStatus) -> None:
        ended = self._ended.pop(exec_id, None)
        if ended is not None and not ended.done():
            ended.set_result(status)

    # ---- after a restart, and when a container goes ----------------------------------

    async def resume(self, container_id: str, shim: ShimClient | None) -> None:
        """Settle the container's execs a previous palletd left: follow them through its
        re-adopted shim, or, with no shim (the container ended), take their exits from
        disk."""
        for record in [r for r in self._pending.values() if r.container_id == container_id]:
            if record.id in self._watchers:
                continue
            if shim is not None:
                log.info("following an exec started before palletd restarted", exec_id=record.id)
                self._watch(record, shim)
            else:
                why = "its container ended while palletd was down"
                await self._end(record, await self._from_disk(record, why))

    async def settle(self, container_id: str) -> None:
        """Before a container's directory goes: let its execs' ends be recorded (they die
        with the container), and record the rest as unknown."""
        ids = [r.id for r in self._pending.values() if r.container_id == container_id]
        watchers = [self._watchers[i] for i in ids if i in self._watchers]
        if watchers:
            await asyncio.wait(watchers, timeout=SETTLE_S)
        for exec_id in ids:
            task = self._watchers.pop(exec_id, None)
            if task is not None:
                task.cancel()
            record = self._pending.get(exec_id)
            if record is not None:  # else its watcher recorded the end
                status = self._unwritten.get(exec_id) or await self._from_disk(
                    record, "its container was removed"
                )
                await self._end(record, status)


async def _end_from(session: ExecSession) -> ExitStatus | None:
    """The exit its stream reported; None when the stream ended without one (its client
    closed it, or the shim went away): the caller asks the shim (or the disk)."""
    try:
        return await session.wait()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # the watcher itself is cancelled (palletd stops)
        return None  # the session was closed: its exit future was cancelled with it
    except PalletError:
        return None
