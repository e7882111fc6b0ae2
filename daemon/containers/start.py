"""The daemon's side of starting a container: ordered steps, run with rollback.

Owns: `StartStep` (a named step that prepares one part of the shim's spec, or makes one
thing, and knows how to release it), `run_with_rollback` (runs steps in order; when step k
fails, releases k-1 ... 1 in reverse and re-raises), and `ContainerStart`, the steps of one
start and the parts they build. Must not: change the container's record or publish events
(the manager records a start, or a failed start, after the steps), or build namespaces
(the shim does, from the spec the steps assembled).

The steps, in order:

  rootfs       the container's writable overlay layer over its image's layers
  volumes      its volumes (new ones filled with what the image has there), binds (a
               missing -v host directory made) and tmpfs mounts; each volume counted
               as mounted by it until its run ends
  network      its network namespace wired to its networks (veths, addresses, routes,
               leases, published ports, DNS records), or the host's, or another
               container's; it writes the bundle's /etc/hosts and resolv.conf to match
  etc files    the bind mounts of the bundle's /etc/hostname, hosts and resolv.conf,
               in one order with the container's own mounts (parents first)
  process      what runs: argv, environment, working directory, user, capabilities
  init         with --init: the host's init (tini) bound in read-only at
               /sbin/docker-init, and the argv made `/sbin/docker-init -- <argv>`
  linux        how it is isolated: namespaces, cgroup path, masked and read-only paths,
               devices, sysctls, and its seccomp filter (compiled once per profile and
               set of capabilities, `pallet.daemon.seccomp`; a start ships the bytes)
  logging      where the shim writes the output, and its rotation
  spawn shim   the spec handed to a new shim, which builds the container and waits
  attach       clients that attached before the start get the new run's stdio
  start        the shim execs the container's init

A step that fails leaves nothing of its own behind (spawn cleans after a shim that died
half-way) and raises; the steps before it are released, so a failed start leaves what
`create` made and no more: no shim, no shim socket, no cgroup, no mount.

The coming options each land here as one step, in its place: cgroup limits and seccomp
(parts of `linux`, or steps right after it). Each releases what it made when a later step
fails, as `volumes` releases its volumes and `network` its namespace, veths, leases and
rules.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import structlog

from pallet.daemon.containers import bundle
from pallet.daemon.containers.exits import of_this_run
from pallet.daemon.containers.initproc import find_init, init_args, init_mount
from pallet.daemon.containers.model import Container
from pallet.daemon.containers.resources import spec_resources
from pallet.daemon.containers.mounting import ContainerMounts, Volumes, may_have_path
from pallet.daemon.containers.networking import Networking, Sandbox
from pallet.daemon.containers.security import Confinement, describe
from pallet.daemon.containers.sessions import PendingAttach, Run
from pallet.daemon.seccomp.compile import Programs
from pallet.daemon.faults import CrashHook
from pallet.daemon.shims.api import ShimClient, ShimLauncher
from pallet.daemon.snapshots.view import read_only_view
from pallet.shim.api.spec import (
    SECCOMP_FILE,
    ExitStatus,
    Linux,
    Log,
    Mount,
    Process,
    Root,
    ShimSpec,
)
from pallet.daemon.store.space import FULL_ERRNOS, disk_full
from pallet.v1.errors import Internal, PalletError

log = structlog.get_logger(__name__)

# How long a rollback waits for an init it SIGKILLed to be reported gone.
KILL_WAIT_S = 10.0


@dataclass(frozen=True, slots=True)
class StartStep:
    """One named step of a start, and how to undo it (None: it made nothing to undo)."""

    name: str
    run: Callable[[], Awaitable[None]]
    release: Callable[[], Awaitable[None]] | None = None


async def run_with_rollback(
    steps: Sequence[StartStep],
    container_id: str = "",
    on_failure: Callable[[PalletError], Awaitable[None]] | None = None,
    state_dir: Path | None = None,
) -> None:
    """Run `steps` in order. When one fails, release the ones done, last first, and raise.

    A PalletError is raised as it is (the user reads it as the start's error); a full disk
    becomes ResourceExhausted naming `state_dir`'s disk; anything else Internal naming the
    step. `on_failure` hears of the error before anything
    is released (the manager records the failed start then: see `ContainerStart.run_steps`).
    A release that fails, or an `on_failure` that fails, is logged and the others are
    still released.
    """
    done: list[StartStep] = []
    for step in steps:
        try:
            await step.run()
        except BaseException as exc:
            error: BaseException = exc
            if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
                where = Path(exc.filename) if exc.filename else state_dir or Path("/")
                error = disk_full(where, f"cannot start the container ({step.name})")
            elif isinstance(exc, Exception) and not isinstance(exc, PalletError):
                error = Internal(f"starting the container failed at {step.name}: {exc}")
            if on_failure is not None and isinstance(error, PalletError):
                try:
                    await on_failure(error)
                except Exception as e:
                    log.warning("start rollback: recording the failure failed",
                                container_id=container_id, reason=str(e))
            await _release(done, container_id, step.name)
            if error is not exc:
                raise error from exc
            raise
        done.append(step)


async def _release(done: list[StartStep], container_id: str, failed: str) -> None:
    bound = log.bind(container_id=container_id, failed_step=failed)
    for step in reversed(done):
        if step.release is None:
            continue
        try:
            await step.release()
        except Exception as e:
            bound.warning("start rollback: a release failed", step=step.name, reason=str(e))


def _fail_all(waiting: Sequence[PendingAttach], exc: BaseException) -> None:
    """Answer the clients still waiting with the error that ended the attaching."""
    error = exc if isinstance(exc, PalletError) else Internal(
        f"attaching to the container failed: {exc}"
    )
    for pending in waiting:
        if pending.ready.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            pending.ready.cancel()
        else:
            pending.ready.set_exception(error)


class Snapshots(Protocol):
    """The rootfs snapshots a start prepares (`snapshots.overlay.OverlaySnapshots`)."""

    def prepare(self, state_dir: Path, lower_dirs: list[str]) -> Root: ...


class StartHost(Protocol):
    """What the steps need from the container manager that owns runs and attachments."""

    def take_pending(self, container_id: str) -> list[PendingAttach]:
        """The attach requests waiting for this container's start (removed from the queue)."""
        ...

    async def release_shim(self, shim: ShimClient) -> bool:
        """Shut the shim down; True when it acknowledged (its socket and cgroup are gone)."""
        ...

    async def clean_after_shim(self, c: Container) -> None:
        """Remove what a shim that died left (its cgroup, its socket)."""
        ...


@dataclass(frozen=True, slots=True)
class StartDeps:
    """The components every start uses; built once by the manager."""

    host: StartHost
    snapshots: Snapshots
    launcher: ShimLauncher
    crashes: CrashHook
    cgroup_parent: str
    clock: Callable[[], int]  # the manager's; the start step reads it (`started_at_ns`)
    networking: Networking
    volumes: Volumes
    # Compiled seccomp filters, cached for the manager's life.
    seccomp: Programs = field(default_factory=Programs)
    # palletd --init-path ("": initproc's default names), for --init containers.
    init_path: str = ""


@dataclass(slots=True)
class ContainerStart:
    """One start of one container: its steps, and the parts they have built so far."""

    container: Container
    layer_dirs: list[str]
    deps: StartDeps
    # The container whose network namespace this one joins (--network container:X).
    joined: Container | None = None
    rootfs: Root | None = None
    sandbox: Sandbox | None = None
    own_mounts: ContainerMounts | None = None
    mounts: list[Mount] = field(default_factory=list)
    process: Process | None = None
    linux: Linux | None = None
    logging: Log | None = None
    shim: ShimClient | None = None
    run: Run | None = None
    pid: int = 0
    # The shim was asked to let the init exec: it may run even though `start` failed (the
    # answer came too late, or the connection broke after the exec).
    start_sent: bool = False
    # The daemon's clock just before it asked the shim to start the init: no exit of this
    # run can be earlier (recorded as the container's start time).
    started_at_ns: int = 0
    # How the init ended when `start` failed after it ran (exec failed: 127, 126).
    exit: ExitStatus | None = None
    # What its security options make of the spec, worked out once per start (a
    # privileged container's reads the host's /dev).
    confinement: Confinement | None = None
    seccomp_program: bytes = b""  # the compiled filter the spec's linux.seccomp names
    # Awaited just before the init is let exec (a restart policy's start prepares during
    # the last of its back-off, and lets the process run only once it is over).
    not_before: Callable[[], Awaitable[None]] | None = None

    def _confinement(self) -> Confinement:
        if self.confinement is None:
            self.confinement = describe(self.container.host_config.security)
        return self.confinement

    def steps(self) -> list[StartStep]:
        return [
            StartStep("rootfs", self.prepare_rootfs),
            StartStep("volumes", self.mount_volumes, self.release_volumes),
            StartStep("network", self.attach_network, self.release_network),
            StartStep("etc files", self.mount_etc_files),
            StartStep("process", self.describe_process),
            # After `process` (it wraps its argv) and `etc files` (its mount comes last,
            # over whatever the image or a volume has at /sbin).
            StartStep("init", self.add_init),
            StartStep("linux", self.describe_linux),
            StartStep("logging", self.describe_logging),
            # The first step that makes something outside the bundle: a shim process, its
            # socket and the container's cgroup. Released by shutting the shim down (after
            # killing the init, when `start` failed after letting it exec).
            StartStep("spawn shim", self.spawn_shim, self.release_shim),
            # Before `start`, so an attached client misses none of the output.
            StartStep("attach", self.attach_waiting),
            StartStep("start", self.start_process),
        ]

    async def run_steps(
        self, on_failure: Callable[[PalletError], Awaitable[None]] | None = None
    ) -> None:
        """Run the steps; `on_failure` is called with the error before the rollback.

        The manager records the failed start there, before the rollback rather than after
        it: a palletd killed between the two then leaves a record that says the start
        failed, which the restorer settles at boot (an --rm container is removed). Recorded
        after the rollback, a kill in between left the container created with no error,
        which the restorer cannot tell from one never started, so it stayed for good.
        Killed before the rollback, the shim it leaves is shut down at boot, as any shim of
        a start cut short.
        """
        await run_with_rollback(
            self.steps(), self.container.id, on_failure, Path(self.container.state_dir)
        )

    # ---- the steps -------------------------------------------------------------------

    async def prepare_rootfs(self) -> None:
        # The writable layer itself is create's; preparing it again is idempotent (it
        # makes what a damaged state directory lacks), so there is nothing to release.
        rootfs = await asyncio.to_thread(
            self.deps.snapshots.prepare, Path(self.container.state_dir), self.layer_dirs
        )
        read_only = self.container.host_config.security.read_only
        self.rootfs = replace(rootfs, readonly=True) if read_only else rootfs

    async def mount_volumes(self) -> None:
        c = self.container
        state_dir = Path(c.state_dir)
        layers = [str(state_dir / "upper"), *self.layer_dirs]
        self.own_mounts = ContainerMounts(
            c, self.deps.volumes,
            view=lambda: read_only_view(state_dir / "upper", self.layer_dirs, state_dir),
            may_have=lambda path: may_have_path(layers, path),
        )
        await self.own_mounts.mount()

    async def release_volumes(self) -> None:
        if self.own_mounts is not None:
            await self.own_mounts.release()

    async def attach_network(self) -> None:
        c = self.container
        self.sandbox = sandbox = await self.deps.networking.attach(c, self.joined)
        try:
            await asyncio.to_thread(bundle.write_network_files, Path(c.state_dir),
                                    sandbox.hosts, sandbox.resolv_conf)
        except BaseException:
            await self.release_network()
            raise

    async def release_network(self) -> None:
        await self.deps.networking.release(self.container.id)

    async def mount_etc_files(self) -> None:
        own = self.own_mounts.spec if self.own_mounts is not None else []
        self.mounts = list(bundle.container_mounts(self.container, own, self._confinement()))

    async def describe_process(self) -> None:
        self.process = bundle.container_process(self.container, self._confinement())

    async def add_init(self) -> None:
        """--init: the host's init bound into the container, running the command."""
        if not self.container.host_config.init:
            return
        assert self.process is not None
        binary = await asyncio.to_thread(find_init, self.deps.init_path)
        self.mounts.append(init_mount(binary))
        self.process = replace(self.process, args=init_args(self.process.args))

    async def describe_linux(self) -> None:
        sandbox = self.sandbox or Sandbox()
        confinement = self._confinement()
        seccomp = ""
        if confinement.seccomp_profile is not None:
            caps = frozenset(confinement.capabilities)
            programs = self.deps.seccomp
            program = programs.cached(confinement.seccomp_profile, caps)
            if program is None:
                # Compiled off the loop, once: every later start with it finds it cached.
                program = await asyncio.to_thread(
                    programs.program, confinement.seccomp_profile, caps
                )
            # The launcher writes it into the bundle with the spec.
            self.seccomp_program = program
            seccomp = SECCOMP_FILE
        self.linux = bundle.container_linux(
            self.container, self.deps.cgroup_parent, sandbox.netns_path, sandbox.share_host,
            seccomp=seccomp, confinement=confinement,
        )
        # The limits, with each throttled device's numbers as they are now (a stat each:
        # off the loop when there are any).
        asked = self.container.host_config.resources
        throttled = (asked.device_read_bps or asked.device_write_bps or asked.device_read_iops
                     or asked.device_write_iops)
        limits = await asyncio.to_thread(spec_resources, asked) if throttled else spec_resources(asked)
        self.linux = replace(self.linux, resources=limits)

    async def describe_logging(self) -> None:
        self.logging = bundle.container_log(self.container)

    async def spawn_shim(self) -> None:
        spec = self.spec()
        try:
            self.shim = await self.deps.launcher.spawn(spec, self.seccomp_program)
        except Exception:
            await self._shut_down_half_made_shim()
            raise
        self.deps.crashes.hit("start", "spawned")

    async def _shut_down_half_made_shim(self) -> None:
        """After a failed spawn: a shim that reported its error has exited and cleaned up;
        one that did not answer in time may still live (shut it down); one that died left
        its cgroup and socket (removed)."""
        c = self.container
        try:
            shim = await self.deps.launcher.connect(c.id, Path(c.state_dir))
        except PalletError:
            pass
        else:
            if await self.deps.host.release_shim(shim):
                return  # acknowledged: it removed its socket and cgroup itself
        await self.deps.host.clean_after_shim(c)

    async def release_shim(self) -> None:
        if self.shim is None:
            return
        if self.start_sent and self.exit is None:
            # A shim refuses to shut down while its init runs: end the init first.
            await self._kill_init(self.shim)
        if not await self.deps.host.release_shim(self.shim):
            # Not acknowledged: the shim may have died, leaving its cgroup and socket.
            await self.deps.host.clean_after_shim(self.container)

    async def _kill_init(self, shim: ShimClient) -> None:
        """SIGKILL every process of the container and wait (bounded) for the init's exit."""
        bound = log.bind(container_id=self.container.id, shim_pid=shim.shim_pid)
        try:
            await shim.kill(signal.SIGKILL, all_processes=True)
        except PalletError as e:  # it never ran, or it exited already: wait tells which
            bound.debug("start rollback: SIGKILL not delivered", reason=str(e))
        try:
            await asyncio.wait_for(shim.wait(), KILL_WAIT_S)
        except (PalletError, TimeoutError) as e:
            bound.warning(
                "start rollback: the container's init did not report its exit after SIGKILL",
                reason=str(e) or f"no exit in {KILL_WAIT_S:.0f}s",
            )

    async def attach_waiting(self) -> None:
        assert self.shim is not None
        self.run = Run(self.shim)
        # Taken off the queue: each of these clients is answered here, attached or failed.
        waiting = self.deps.host.take_pending(self.container.id)
        for i, pending in enumerate(waiting):
            if pending.ready.done():
                continue
            try:
                stdio = await self.shim.attach(pending.stdin, pending.stdout, pending.stderr)
            except BaseException as exc:
                _fail_all(waiting[i:], exc)
                raise
            pending.ready.set_result((stdio, self.run))

    async def start_process(self) -> None:
        assert self.shim is not None
        if self.not_before is not None:
            await self.not_before()
        self.start_sent = True
        self.started_at_ns = self.deps.clock()
        try:
            self.pid = await self.shim.start()
        except PalletError:
            # The shim wrote how the init ended (an exec failure's 127) before it answered.
            self.exit = of_this_run(await asyncio.to_thread(
                self.deps.launcher.exit_status_on_disk, Path(self.container.state_dir)
            ), self.started_at_ns)
            raise
        self.deps.crashes.hit("start", "started")

    # ---- the spec the parts make -----------------------------------------------------

    def spec(self) -> ShimSpec:
        """The shim's spec, from the parts the steps before `spawn shim` built."""
        assert self.rootfs is not None and self.process is not None
        assert self.linux is not None and self.logging is not None
        return ShimSpec(
            container_id=self.container.id,
            bundle_dir=self.container.state_dir,
            hostname=self.container.config.hostname,
            process=self.process,
            root=self.rootfs,
            mounts=tuple(self.mounts),
            linux=self.linux,
            log=self.logging,
        )
