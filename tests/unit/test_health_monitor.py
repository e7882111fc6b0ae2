"""The probing loop with a fake host: each probe an exec of the host's, its output and exit
recorded as docker records them, a probe that outlives its timeout killed and counted, a
probe that cannot run counted, and probing stopped by `unwatch`, by a run that ended, and
by `aclose`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

from pallet.daemon.containers.health import HealthMonitor
from pallet.daemon.containers.model import Config, Container, ContainerState, Health, Status
from pallet.daemon.images.model import HealthConfig
from pallet.shim.api.spec import ExitStatus, Output
from pallet.v1.errors import FailedPrecondition

MS = 1_000_000


class FakeSession:
    def __init__(self, chunks: list[bytes], exit_code: int | None, error: str = "") -> None:
        self._chunks = chunks
        self.exit: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
        if exit_code is not None:
            self.exit.set_result(ExitStatus(exit_code, 1, error))
        self.closed = False

    async def output(self) -> AsyncIterator[Output]:
        for data in self._chunks:
            yield Output(stream=1, data=data, time_ns=0)
        await asyncio.shield(self.exit)  # the stream ends with the process

    async def aclose(self) -> None:
        self.closed = True


class FakeProbe:
    def __init__(self, session: FakeSession, exec_id: str) -> None:
        self.session = session
        self.exec_id = exec_id

    async def wait(self) -> ExitStatus:
        return await asyncio.shield(self.session.exit)


class FakeHost:
    """One container; each probe answers from `script` (a list of (output, exit code,
    error); exit code None hangs until killed), and what is recorded is kept."""

    def __init__(self, config: HealthConfig, script: list[tuple[list[bytes], int | None, str]]) -> None:
        self.container = Container(
            id="c" * 64, name="web", image_id="sha256:" + "0" * 64,
            config=Config(image="busybox", healthcheck=config),
            state=ContainerState(status=Status.RUNNING, started_at_ns=1, health=Health()),
            created_ns=0, state_dir="/x",
        )
        self.script = script
        self.args: list[tuple[str, ...]] = []
        self.sessions: list[FakeSession] = []
        self.killed: list[str] = []
        self.recorded: list[Health] = []
        self.done = asyncio.Event()

    def lookup(self, container_id: str) -> Container | None:
        return self.container if container_id == self.container.id else None

    async def run_probe(self, c: Container, args: tuple[str, ...]) -> FakeProbe:
        self.args.append(args)
        if not self.script:
            self.done.set()
            await asyncio.Event().wait()  # no more probes in the script: wait to be stopped
        chunks, code, error = self.script.pop(0)
        if code == -2:
            raise FailedPrecondition("container web is not running")
        session = FakeSession(chunks, code, error)
        self.sessions.append(session)
        return FakeProbe(session, f"e{len(self.sessions)}")

    async def kill_probe(self, c: Container, exec_id: str) -> None:
        self.killed.append(exec_id)
        session = self.sessions[int(exec_id[1:]) - 1]
        session.exit.set_result(ExitStatus(137, 2))

    async def record_health(self, container_id: str, started_at_ns: int, health: Health) -> bool:
        assert started_at_ns == self.container.state.started_at_ns
        self.recorded.append(health)
        self.container = self.container.with_state(health=health)
        return True


async def probing(host: FakeHost) -> HealthMonitor:
    monitor = HealthMonitor(host)  # type: ignore[arg-type]
    monitor.watch(host.container)
    await asyncio.wait_for(host.done.wait(), 10)
    await monitor.aclose()
    return monitor


async def test_each_result_is_recorded_by_dockers_rules() -> None:
    config = HealthConfig(test=("CMD-SHELL", "check"), interval_ns=MS, retries=2)
    host = FakeHost(config, [([b"ok\n"], 0, ""), ([b"bad", b"ly\n"], 1, ""), ([], 3, ""),
                             ([b"x" * 5000], 0, "")])
    await probing(host)
    assert host.args[0] == ("/bin/sh", "-c", "check")
    assert [(h.status, h.failing_streak) for h in host.recorded] == [
        ("healthy", 0), ("healthy", 1), ("unhealthy", 2), ("healthy", 0),
    ]
    log = host.recorded[-1].log
    assert [r.exit_code for r in log] == [0, 1, 3, 0]
    assert log[1].output == "badly\n"
    assert log[3].output == "x" * 4096 + "..."
    assert all(r.start_ns <= r.end_ns for r in log)
    assert all(s.closed for s in host.sessions)


async def test_a_probe_past_its_timeout_is_killed_and_fails() -> None:
    config = HealthConfig(test=("CMD", "sleep", "9"), interval_ns=MS, timeout_ns=20 * MS, retries=1)
    host = FakeHost(config, [([b"started\n"], None, "")])
    await probing(host)
    assert host.killed == ["e1"]
    (health,) = host.recorded
    assert health.status == "unhealthy"
    assert health.log[0].exit_code == -1
    assert health.log[0].output == "Health check exceeded timeout (20ms): started\n"


async def test_a_probe_that_cannot_run_fails_saying_why() -> None:
    config = HealthConfig(test=("CMD", "nope"), interval_ns=MS)
    host = FakeHost(config, [([], -2, ""), ([], 127, 'exec: "nope": executable file not found in $PATH')])
    await probing(host)
    first, second = host.recorded[-1].log
    assert (first.exit_code, first.output) == (-1, "container web is not running")
    assert second.exit_code == 127 and "executable file not found" in second.output
    assert host.recorded[-1].failing_streak == 2


async def test_probing_stops_when_the_run_is_over_or_unwatched() -> None:
    config = HealthConfig(test=("CMD", "true"), interval_ns=MS)
    host = FakeHost(config, [([], 0, "")] * 1000)
    monitor = HealthMonitor(host)  # type: ignore[arg-type]
    monitor.watch(host.container)
    while not host.recorded:
        await asyncio.sleep(0.001)
    # The run ended (another start, say): the task notices and ends by itself.
    host.container = replace(host.container, state=replace(host.container.state, status=Status.EXITED))
    for _ in range(200):
        if not monitor.watching(host.container.id):
            break
        await asyncio.sleep(0.005)
    assert not monitor.watching(host.container.id)
    seen = len(host.recorded)
    await asyncio.sleep(0.02)
    assert len(host.recorded) == seen
    # Running again, then unwatched: no more probes.
    host.container = replace(host.container, state=replace(host.container.state, status=Status.RUNNING))
    monitor.watch(host.container)
    while len(host.recorded) == seen:
        await asyncio.sleep(0.001)
    monitor.unwatch(host.container.id)
    await asyncio.sleep(0)
    seen = len(host.recorded)
    await asyncio.sleep(0.02)
    assert len(host.recorded) == seen
    await monitor.aclose()


async def test_nothing_to_probe_starts_no_task() -> None:
    for config in (HealthConfig(test=("NONE",)), HealthConfig()):
        host = FakeHost(config, [])
        monitor = HealthMonitor(host)  # type: ignore[arg-type]
        monitor.watch(host.container)
        assert not monitor.watching(host.container.id)
