"""The daemon's start steps and their rollback, with fake snapshots, shims and host."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from pallet.daemon.containers import bundle
from pallet.daemon.containers.model import (
    Config,
    Container,
    ContainerState,
    HostConfig,
    LogConfig,
)
from pallet.daemon.containers.sessions import PendingAttach
from pallet.daemon.containers.networking import LoopbackOnly
from pallet.daemon.containers.mounting import NoVolumes
from pallet.daemon.containers.start import (
    ContainerStart,
    StartDeps,
    StartStep,
    run_with_rollback,
)
from pallet.daemon.faults import CrashPoints
from pallet.daemon.shims.api import ShimClient, Stdio
from pallet.shim.api.spec import ExecSpec, ExitStatus, Mount, Root, ShimSpec, ShimState, TaskStatus
from pallet.v1.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    PalletError,
    Unavailable,
)

# ---- the runner ------------------------------------------------------------------------

NAMES = ("one", "two", "three", "four", "five")


def recording_steps(
    journal: list[str], fail_at: str = "", bad_release: str = ""
) -> list[StartStep]:
    def step(name: str) -> StartStep:
        async def run() -> None:
            if name == fail_at:
                raise FailedPrecondition(f"{name} broke")
            journal.append(f"run {name}")

        async def release() -> None:
            if name == bad_release:
                raise OSError("device busy")
            journal.append(f"release {name}")

        return StartStep(name, run, release)

    return [step(n) for n in NAMES]


async def test_steps_run_in_order() -> None:
    journal: list[str] = []
    await run_with_rollback(recording_steps(journal))
    assert journal == [f"run {n}" for n in NAMES]


@pytest.mark.parametrize("k", range(len(NAMES)))
async def test_a_failure_at_step_k_releases_the_steps_before_it_in_reverse(k: int) -> None:
    journal: list[str] = []
    with pytest.raises(FailedPrecondition, match=f"{NAMES[k]} broke"):
        await run_with_rollback(recording_steps(journal, fail_at=NAMES[k]))
    done = NAMES[:k]
    assert journal == [f"run {n}" for n in done] + [f"release {n}" for n in reversed(done)]


async def test_a_release_that_fails_is_logged_and_the_others_still_run() -> None:
    journal: list[str] = []
    with capture_logs() as logs, pytest.raises(FailedPrecondition):
        await run_with_rollback(
            recording_steps(journal, fail_at="five", bad_release="three"), "c1"
        )
    assert journal[4:] == ["release four", "release two", "release one"]
    [entry] = [e for e in logs if e["log_level"] == "warning"]
    assert entry["step"] == "three" and entry["failed_step"] == "five"
    assert entry["container_id"] == "c1" and "device busy" in entry["reason"]


async def test_the_failure_is_told_before_anything_is_released() -> None:
    """The manager records a failed start there: a palletd killed during the rollback
    leaves a record that says the start failed."""
    journal: list[str] = []

    async def told(e: PalletError) -> None:
        journal.append(f"failed: {e}")

    with pytest.raises(FailedPrecondition):
        await run_with_rollback(recording_steps(journal, fail_at="three"), "c1", told)
    assert journal == ["run one", "run two", "failed: three broke", "release two",
                       "release one"]


async def test_an_unexpected_error_names_its_step() -> None:
    async def broken() -> None:
        raise OSError("no space left on device")

    journal: list[str] = []
    steps = recording_steps(journal)[:2] + [StartStep("disk", broken)]
    with pytest.raises(Internal, match="failed at disk: no space left on device"):
        await run_with_rollback(steps)
    assert journal == ["run one", "run two", "release two", "release one"]


async def test_steps_without_a_release_are_skipped_in_the_rollback() -> None:
    journal: list[str] = []
    steps = recording_steps(journal)
    steps[1] = StartStep("two", steps[1].run)  # makes nothing to undo
    with pytest.raises(FailedPrecondition):
        await run_with_rollback(steps[:3] + recording_steps(journal, fail_at="four")[3:])
    assert journal == ["run one", "run two", "run three", "release three", "release one"]


# ---- one container's start, against fakes that keep what is "on the host" -----------


class Host:
    """What a start leaves on the (fake) host: live shims, cgroups, sockets."""

    def __init__(self) -> None:
        self.live_shims: set[int] = set()
        self.cgroups: set[str] = set()
        self.sockets: set[str] = set()
        self.running_inits: set[int] = set()
        # The shim dies before it is shut down (its cgroup and socket stay).
        self.shim_dies = False
        # `pallet-shim delete` runs (clean_after_shim).
        self.deletes = 0
        self.pending: list[PendingAttach] = []


class FakeShim:
    """A shim with an init that is created, running or stopped, as the real one's is."""

    def __init__(self, host: Host, spec: ShimSpec, pid: int, fail_start: str) -> None:
        self.host = host
        self.container_id = spec.container_id
        self.shim_pid = pid
        # "exec": the exec fails (127); "deadline": the init execs, the answer is late.
        self.fail_start = fail_start
        self.status = TaskStatus.CREATED
        self.exit: ExitStatus | None = None
        self.kills: list[tuple[int, bool]] = []
        # Attach requests answered before one fails (-1: none fails).
        self.attach_fails_after = -1
        self.attached = 0

    async def start(self) -> int:
        if self.fail_start == "exec":
            self._stopped(127)
            raise FailedPrecondition('exec: "nosuch": executable file not found in $PATH')
        self.status = TaskStatus.RUNNING
        self.host.running_inits.add(4242)
        if self.fail_start == "deadline":
            raise DeadlineExceeded("the shim did not answer start within 5s")
        return 4242

    def _stopped(self, code: int) -> None:
        self.status = TaskStatus.STOPPED
        self.exit = ExitStatus(code, 2, "")
        self.host.running_inits.discard(4242)

    async def attach(self, stdin: bool, stdout: bool, stderr: bool) -> Stdio:
        if self.attached == self.attach_fails_after:
            raise Unavailable("the shim's socket is gone")
        self.attached += 1
        return object()  # type: ignore[return-value]

    async def state(self) -> ShimState:
        return ShimState(self.status, 0, self.shim_pid)

    async def kill(self, signal: int, all_processes: bool = False) -> None:
        if self.status is TaskStatus.STOPPED:
            raise FailedPrecondition("it is not running, there is nothing to signal")
        self.kills.append((signal, all_processes))
        if signal == 9:
            self._stopped(137)

    async def wait(self) -> ExitStatus:
        if self.exit is None:
            raise AssertionError("waited on an init nobody ends: it would wait forever")
        return self.exit

    async def exec(self, spec: ExecSpec) -> object:
        raise AssertionError("no exec")

    async def wait_exec(self, exec_id: str) -> ExitStatus:
        raise AssertionError("no exec")

    async def shutdown(self) -> None:
        if self.host.shim_dies:
            raise Unavailable("the shim's socket is gone")
        # As the real shim: refused while the init runs; a created one is killed first.
        if self.status is TaskStatus.RUNNING:
            raise FailedPrecondition("the init is running: kill it before shutting down its shim")
        if self.status is TaskStatus.CREATED:
            self._stopped(137)
        # The shim removes its own cgroup and socket when it shuts down.
        self.host.live_shims.discard(self.shim_pid)
        self.host.cgroups.discard(self.container_id)
        self.host.sockets.discard(self.container_id)

    async def aclose(self) -> None: ...


class FakeLauncher:
    def __init__(self, host: Host, fail: str) -> None:
        self.host = host
        self.fail = fail
        self.specs: list[ShimSpec] = []
        self.attach_fails_after = -1
        self.shims: list[FakeShim] = []
        # exit.json: an exec failure's (written after the start, clock 5), or a previous
        # run's left behind.
        self.on_disk = ExitStatus(127, 6, "exec failed") if fail == "start" else None

    async def spawn(self, spec: ShimSpec, seccomp: bytes = b"") -> ShimClient:
        self.specs.append(spec)
        # A shim that died building the container leaves its cgroup and socket behind.
        self.host.cgroups.add(spec.container_id)
        self.host.sockets.add(spec.container_id)
        if self.fail == "spawn shim":
            raise Unavailable("the shim died")
        self.host.live_shims.add(1000)
        fail_start = {"start": "exec", "start late": "deadline"}.get(self.fail, "")
        shim = FakeShim(self.host, spec, 1000, fail_start)
        self.shims.append(shim)
        shim.attach_fails_after = self.attach_fails_after
        return shim  # type: ignore[return-value]

    async def connect(self, container_id: str, bundle_dir: Path) -> ShimClient:
        raise Unavailable("no shim")

    def exit_status_on_disk(self, bundle_dir: Path) -> ExitStatus | None:
        return self.on_disk

    def exec_exit_on_disk(self, bundle_dir: Path, exec_id: str) -> ExitStatus | None:
        return None

    def discard_exec_exit(self, bundle_dir: Path, exec_id: str) -> None: ...

    async def aclose(self) -> None: ...


class FakeManager:
    def __init__(self, host: Host) -> None:
        self.host = host

    def take_pending(self, container_id: str) -> list[PendingAttach]:
        taken, self.host.pending = self.host.pending, []
        return taken

    async def release_shim(self, shim: ShimClient) -> bool:
        try:
            await shim.shutdown()
        except PalletError:
            return False
        return True

    async def clean_after_shim(self, c: Container) -> None:
        self.host.deletes += 1
        self.host.cgroups.discard(c.id)
        self.host.sockets.discard(c.id)


class FakeSnapshots:
    def __init__(self, fail: bool) -> None:
        self.fail = fail

    def prepare(self, state_dir: Path, lower_dirs: list[str]) -> Root:
        if self.fail:
            raise FailedPrecondition("the writable layer cannot be made")
        return Root(f"{state_dir}/rootfs", tuple(lower_dirs), f"{state_dir}/upper",
                    f"{state_dir}/work", readonly=False)


def container() -> Container:
    return Container(
        id="c" * 64,
        name="web",
        image_id="sha256:" + "ab" * 32,
        config=Config(image="busybox", cmd=("nosuch",), hostname="web1"),
        host_config=HostConfig(log_config=LogConfig(max_size=100, max_files=3)),
        state=ContainerState(),
        created_ns=1,
        state_dir="/var/lib/pallet/containers/" + "c" * 64,
    )


def make_start(
    fail: str = "", c: Container | None = None, init_path: str = ""
) -> tuple[ContainerStart, Host, FakeLauncher]:
    host = Host()
    launcher = FakeLauncher(host, fail)
    deps = StartDeps(
        host=FakeManager(host),
        snapshots=FakeSnapshots(fail == "rootfs"),
        launcher=launcher,  # type: ignore[arg-type]
        crashes=CrashPoints(),
        cgroup_parent="pallet",
        clock=lambda: 5,
        networking=LoopbackOnly(),
        volumes=NoVolumes(),
        init_path=init_path,
    )
    return ContainerStart(c or container(), ["/layers/l1"], deps), host, launcher


def test_the_steps_and_their_order() -> None:
    start, _, _ = make_start()
    assert [s.name for s in start.steps()] == [
        "rootfs", "volumes", "network", "etc files", "process", "init", "linux", "logging",
        "spawn shim", "attach", "start",
    ]
    # The network (namespace, veths, leases, rules) and the shim are what a start undoes.
    assert [s.name for s in start.steps() if s.release is not None] == ["volumes", "network", "spawn shim"]


async def test_a_start_builds_the_spec_from_its_parts() -> None:
    start, host, launcher = make_start()
    await start.run_steps()
    assert start.pid == 4242 and host.live_shims == {1000}
    [spec] = launcher.specs
    c = container()
    assert spec.root.upper_dir == f"{c.state_dir}/upper"
    assert spec.mounts == bundle.container_mounts(c)
    assert spec.process.capabilities == bundle.DEFAULT_CAPABILITIES
    assert spec.linux.masked_paths == bundle.MASKED_PATHS
    assert spec.linux.devices == bundle.DEFAULT_DEVICES
    assert spec.linux.namespaces == bundle.default_namespaces()
    assert spec.linux.cgroups_path == f"pallet/{c.id}"
    assert (spec.hostname, spec.log.max_size, spec.log.max_files) == ("web1", 100, 3)


@pytest.mark.parametrize("fail", ["rootfs", "spawn shim", "start", "start late"])
async def test_a_failed_start_leaves_no_shim_no_cgroup_no_socket(fail: str) -> None:
    start, host, _ = make_start(fail)
    with pytest.raises(PalletError):
        await start.run_steps()
    assert host.running_inits == set()
    assert host.live_shims == set()
    assert host.cgroups == set()
    assert host.sockets == set()
    if fail == "start":  # how the init ended is kept for the record
        assert start.exit == ExitStatus(127, 6, "exec failed")


async def test_a_previous_runs_exit_on_disk_is_not_a_failed_starts() -> None:
    start, _, launcher = make_start("start")
    launcher.on_disk = ExitStatus(0, 4)  # ended before this start (clock 5) began
    with pytest.raises(PalletError):
        await start.run_steps()
    assert start.exit is None and start.started_at_ns == 5


async def test_clients_waiting_to_attach_are_attached_before_the_start() -> None:
    start, host, _ = make_start()
    future: asyncio.Future[tuple[Stdio, object]] = asyncio.get_running_loop().create_future()
    future.cancel()  # a client that gave up is skipped
    host.pending.append(PendingAttach(False, True, True, future))  # type: ignore[arg-type]
    await start.run_steps()
    assert host.pending == [] and start.run is not None


async def test_a_failed_attach_fails_every_client_still_waiting() -> None:
    """The second of three attaches fails: the start fails, and the second and third
    clients hear why (they used to wait forever: their requests were taken, not answered)."""
    start, host, launcher = make_start()
    launcher.attach_fails_after = 1
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[tuple[Stdio, object]]] = [loop.create_future() for _ in range(3)]
    for future in futures:
        host.pending.append(PendingAttach(False, True, True, future))  # type: ignore[arg-type]
    with pytest.raises(Unavailable):
        await start.run_steps()
    assert all(f.done() for f in futures)
    assert futures[0].exception() is None
    for future in futures[1:]:
        with pytest.raises(Unavailable, match="socket is gone"):
            future.result()
    assert host.live_shims == set()


async def test_an_init_that_ran_although_start_failed_is_killed_before_the_shutdown() -> None:
    """`start` timed out after the shim let the init exec: the init runs, and a shim
    refuses to shut down while it does. The rollback kills it (SIGKILL, every process in
    the container), waits for its exit, then shuts the shim down. (It used to send only
    Shutdown, refused and swallowed: the init kept running under a container recorded as
    created, or removed with --rm.)"""
    start, host, launcher = make_start("start late")
    with pytest.raises(DeadlineExceeded):
        await start.run_steps()
    [shim] = launcher.shims
    assert shim.kills == [(9, True)]
    assert host.running_inits == set() and host.live_shims == set()


async def test_an_init_whose_exec_failed_is_not_signalled() -> None:
    start, host, launcher = make_start("start")
    with pytest.raises(FailedPrecondition):
        await start.run_steps()
    [shim] = launcher.shims
    assert shim.kills == [] and host.live_shims == set()


@pytest.mark.parametrize("fail", ["start", "start late"])
async def test_a_shim_that_acknowledged_its_shutdown_is_not_deleted_after_it(fail: str) -> None:
    """A shim answers Shutdown once its socket and cgroup are gone: `pallet-shim delete` (a
    new interpreter) has nothing to do after it. (It used to run after every rollback.)"""
    start, host, _ = make_start(fail)
    with pytest.raises(PalletError):
        await start.run_steps()
    assert host.deletes == 0
    assert host.live_shims == set() and host.cgroups == set() and host.sockets == set()


async def test_a_shim_that_died_before_its_shutdown_is_deleted_after() -> None:
    start, host, _ = make_start("start")
    host.shim_dies = True
    with pytest.raises(PalletError):
        await start.run_steps()
    assert host.deletes == 1
    assert host.cgroups == set() and host.sockets == set()


def _init_container() -> Container:
    c = container()
    return replace(c, host_config=replace(c.host_config, init=True))


async def test_init_runs_the_command_under_the_hosts_init_mounted_read_only(
    tmp_path: Path,
) -> None:
    tini = tmp_path / "tini-static"
    tini.write_bytes(b"\x7fELF")
    tini.chmod(0o755)
    start, _, launcher = make_start(c=_init_container(), init_path=str(tini))
    await start.run_steps()
    [spec] = launcher.specs
    assert spec.process.args == ("/sbin/docker-init", "--", "nosuch")
    # Last: over whatever the image or a volume has at /sbin.
    assert spec.mounts[-1] == Mount("/sbin/docker-init", "bind", str(tini), ("bind", "ro", "rprivate"))
    assert spec.mounts[:-1] == bundle.container_mounts(container())
    # Without --init: the command itself is PID 1, nothing is mounted.
    plain, _, launcher = make_start(init_path=str(tini))
    await plain.run_steps()
    assert launcher.specs[0].process.args == ("nosuch",)
    assert not any(m.destination == "/sbin/docker-init" for m in launcher.specs[0].mounts)


async def test_init_gone_from_the_host_fails_the_start_before_any_shim(tmp_path: Path) -> None:
    start, host, launcher = make_start(c=_init_container(), init_path=str(tmp_path / "gone"))
    with pytest.raises(FailedPrecondition, match="is not an executable file on the daemon's host"):
        await start.run_steps()
    assert launcher.specs == [] and host.live_shims == set()
