"""Probing running containers' healthchecks.

Owns: `HealthMonitor`, one task per running container that has something to probe: it
waits the interval docker's rules give (`healthcheck.next_wait_ns`), runs the probe as an
exec in the container (through the host: the daemon's one exec path, `execs.ExecTracker`,
so every probe has its exec_create, exec_start and exec_die as docker's do), gathers its
output (cut at 4096 bytes), kills it through its shim when it outlives its timeout, and
hands each result, as the health it leads to (`healthcheck.record`), to the host to record.
Must not: write records or publish events (the host, the container manager, does both in
one transaction, and judges whether the run the result belongs to is still the
container's), or decide a container's lifecycle.

A task ends when its container's run does (or is paused: docker does not probe paused
containers): the manager calls `unwatch`; the task also stops by itself when it finds the
container not running, or running another run. What a probe in flight was doing then is
followed to its end by the exec tracker as any exec's.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from typing import Protocol

import structlog

from pallet.daemon.containers import healthcheck
from pallet.daemon.containers.execs import TrackedExec
from pallet.daemon.containers.model import Container, Health, HealthResult, Status
from pallet.shim.api.spec import ExitStatus
from pallet.v1.errors import PalletError

log = structlog.get_logger(__name__)

# How long a probe that was killed for its timeout may take to be reported gone (docker
# waits for it, so that dying probes do not pile up; this bounds the wait).
KILL_WAIT_S = 10.0
# Read of a probe's output: one byte past the limit tells that there was more.
_KEEP = healthcheck.MAX_OUTPUT_BYTES + 1


class HealthHost(Protocol):
    """What probing needs from the component that owns containers and their execs."""

    def lookup(self, container_id: str) -> Container | None: ...

    async def run_probe(self, c: Container, args: tuple[str, ...]) -> TrackedExec:
        """Start `args` as an exec in the running container `c` (its user, working
        directory and environment; no stdin, no terminal)."""
        ...

    async def kill_probe(self, c: Container, exec_id: str) -> None:
        """SIGKILL the probe's process (it outlived its timeout)."""
        ...

    async def record_health(self, container_id: str, started_at_ns: int, health: Health) -> bool:
        """Record `health` for the run that started at `started_at_ns`, with a
        `health_status` event when its status changed; False when that run is no longer
        the container's running one (the result is dropped, and probing stops)."""
        ...


class HealthMonitor:
    """Runs every running container's probes (one task each, owned here)."""

    def __init__(self, host: HealthHost, clock: Callable[[], int] = time.time_ns) -> None:
        self._host = host
        self._clock = clock
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def watch(self, c: Container) -> None:
        """Probe `c` (running) from now on, if it has something to probe; the first probe
        comes after one interval (or start interval), as docker's does."""
        self.unwatch(c.id)
        if healthcheck.probe_args(c.config.healthcheck) is None:
            return
        task = asyncio.create_task(
            self._probe_loop(c.id, c.state.started_at_ns),
            name=f"health-{c.id[:12]}", context=contextvars.Context(),
        )
        self._tasks[c.id] = task

        def forget(t: asyncio.Task[None]) -> None:
            if self._tasks.get(c.id) is t:
                del self._tasks[c.id]

        task.add_done_callback(forget)

    def unwatch(self, container_id: str) -> None:
        """Stop probing the container (its run ended, or it is paused)."""
        task = self._tasks.pop(container_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def watching(self, container_id: str) -> bool:
        return container_id in self._tasks

    async def aclose(self) -> None:
        tasks = set(self._tasks.values())
        self._tasks.clear()
        while tasks:
            for task in tasks:
                task.cancel()
            # Asked again should a cancel be lost (a task also ends at its next turn, once
            # it finds it is no longer the container's).
            _, tasks = await asyncio.wait(tasks, timeout=1.0)

    def _current(self, container_id: str, started_at_ns: int) -> Container | None:
        c = self._host.lookup(container_id)
        if (
            c is None
            or c.state.status is not Status.RUNNING
            or c.state.started_at_ns != started_at_ns
        ):
            return None
        return c

    async def _probe_loop(self, container_id: str, started_at_ns: int) -> None:
        bound = log.bind(container_id=container_id)
        while self._tasks.get(container_id) is asyncio.current_task():
            c = self._current(container_id, started_at_ns)
            if c is None or c.config.healthcheck is None:
                return
            status = (c.state.health or Health()).status
            wait = healthcheck.next_wait_ns(c.config.healthcheck, status, started_at_ns,
                                            self._clock())
            await asyncio.sleep(wait / 1e9)
            c = self._current(container_id, started_at_ns)
            args = (healthcheck.probe_args(c.config.healthcheck, c.config.shell)
                    if c is not None else None)
            if c is None or c.config.healthcheck is None or args is None:
                return
            result = await self._probe(c, args, bound)
            # The health as it is now (a write that failed left it as it was: the change
            # is found again, and announced, with the next result).
            c = self._current(container_id, started_at_ns)
            if c is None or c.config.healthcheck is None:
                return
            health = healthcheck.record(
                c.state.health or Health(), result, c.config.healthcheck, started_at_ns
            )
            try:
                if not await self._host.record_health(container_id, started_at_ns, health):
                    return
            except Exception as e:  # noqa: BLE001 - probing goes on: a failure must not end it silently
                bound.warning("cannot record a health probe's result", reason=str(e))

    async def _probe(self, c: Container, args: tuple[str, ...], bound: object) -> HealthResult:
        """One probe: its result, whatever happens (-1 when it did not run or timed out)."""
        assert c.config.healthcheck is not None
        timeout = healthcheck.timeout_ns(c.config.healthcheck)
        start = self._clock()
        try:
            probe = await self._host.run_probe(c, args)
        except Exception as e:  # noqa: BLE001 - whatever stops a probe is its failure, not probing's end
            return HealthResult(start, self._clock(), -1, str(e) or type(e).__name__)
        output = bytearray()

        async def to_the_end() -> ExitStatus:
            async for chunk in probe.session.output():
                if len(output) < _KEEP:
                    output.extend(chunk.data[: _KEEP - len(output)])
            return await probe.wait()

        try:
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel that
                # comes as the probe ends (the task then never stops).
                async with asyncio.timeout(timeout / 1e9):
                    status = await to_the_end()
            except TimeoutError:
                await self._kill(c, probe)
                text = healthcheck.timed_out_output(timeout, healthcheck.output_text(bytes(output)))
                return HealthResult(start, self._clock(), -1, text)
            except Exception as e:  # noqa: BLE001 - its shim went away (the run is ending), or worse
                return HealthResult(start, self._clock(), -1, str(e) or type(e).__name__)
        finally:
            try:
                await probe.session.aclose()
            except PalletError:
                pass
        text = healthcheck.output_text(bytes(output))
        if status.error:  # it did not run (an exec that failed): docker's output is why
            text = f"{text}{status.error}"
        return HealthResult(start, self._clock(), status.exit_code, text)

    async def _kill(self, c: Container, probe: TrackedExec) -> None:
        """Kill a probe that outlived its timeout and wait (bounded) for its end."""
        try:
            await self._host.kill_probe(c, probe.exec_id)
        except PalletError as e:  # ended meanwhile, or the run is ending
            log.debug("a timed-out probe was not killed", container_id=c.id, reason=str(e))
        try:
            async with asyncio.timeout(KILL_WAIT_S):
                await probe.wait()
        except (TimeoutError, PalletError) as e:
            log.warning("a killed health probe did not end", container_id=c.id,
                        exec_id=probe.exec_id, reason=str(e) or "no end in time")
