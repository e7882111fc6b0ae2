"""Exec instances: docker's exec made in two steps, create (an id, nothing runs) and start.

Owns: the instances created and not yet started, the ones started (their process, and its
exit once it ends, for inspect), and forgetting them: one never started after
`CREATED_TTL_S`, one ended after `ENDED_TTL_S`, any whose container is gone. Must not: run
anything itself (the manager's `exec` does, under the instance's id, so its events, its
resize and its inspect all name the same exec), nor keep anything on disk: an instance is
a client's handle, and a palletd that restarts forgets the ones not started (the execs
that run are journalled by the manager's `ExecTracker` as every exec is).

Forgetting happens as instances are made or looked up, so there is no task to own: the
instances a burst of creates leaves are at most `MAX_INSTANCES`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from pallet.daemon.containers.execs import NEVER_RAN, TrackedExec
from pallet.daemon.containers.manager import ContainerManager
from pallet.daemon.containers.model import Container, Status
from pallet.shim.api.spec import ExitStatus
from pallet.v1.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted

#: A created exec not started within this is forgotten (a client that went away).
CREATED_TTL_S = 300.0
#: An ended exec is inspectable this long after its end.
ENDED_TTL_S = 600.0
#: Instances kept at most (created and ended ones; running ones are never dropped).
MAX_INSTANCES = 4096


@dataclass(frozen=True, slots=True)
class ExecConfig:
    """What the process will be (docker's ExecConfig), fixed at create."""

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False
    privileged: bool = False
    detach_keys: str = ""
    console_size: tuple[int, int] = (0, 0)


@dataclass(frozen=True, slots=True)
class ExecView:
    """One instance as inspect shows it."""

    id: str
    container_id: str
    config: ExecConfig
    created_ns: int
    running: bool
    pid: int
    exit: ExitStatus | None  # None until it ends (never started: None too)


@dataclass(slots=True)
class _Instance:
    id: str
    container_id: str
    config: ExecConfig
    created_ns: int
    created_at: float  # monotonic
    started: bool = False
    process: TrackedExec | None = None
    ended_at: float | None = None  # monotonic, once its end is known


def no_such_exec(exec_id: str) -> NotFound:
    return NotFound(f"No such exec instance: {exec_id}")


class ExecInstances:
    """Created, started and ended exec instances of every container."""

    def __init__(
        self,
        containers: ContainerManager,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._containers = containers
        self._monotonic = monotonic
        self._clock = clock
        self._instances: dict[str, _Instance] = {}

    def create(self, ref: str, config: ExecConfig) -> str:
        """A new instance for running container `ref`; nothing runs until `start`."""
        c = self._containers.resolve(ref)
        _check_runs(c)
        if not config.args:
            raise InvalidArgument("no command given to exec: Cmd is empty")
        for item in config.env:
            if "=" not in item:
                raise InvalidArgument(f"invalid environment variable {item!r}: use KEY=value")
        if config.privileged and not c.host_config.security.privileged:
            raise InvalidArgument(
                "a privileged exec is not supported in a container that is not privileged: "
                "create the container with --privileged"
            )
        self._forget_old()
        if len(self._instances) >= MAX_INSTANCES:
            raise ResourceExhausted(
                f"{MAX_INSTANCES} exec instances exist: start or let go of some first"
            )
        exec_id = secrets.token_hex(32)
        self._instances[exec_id] = _Instance(
            exec_id, c.id, config, self._clock(), self._monotonic()
        )
        return exec_id

    async def start(
        self, exec_id: str, console_size: tuple[int, int] = (0, 0)
    ) -> tuple[ExecConfig, TrackedExec]:
        """Run instance `exec_id` (once), with the terminal size given now or at create."""
        self._forget_old()
        instance = self._instances.get(exec_id)
        if instance is None:
            raise no_such_exec(exec_id)
        if instance.started:
            state = "is already running" if instance.ended_at is None else "has already run"
            raise FailedPrecondition(f"exec instance {exec_id} {state}: create another one")
        cfg = instance.config
        if console_size != (0, 0):
            cfg = replace(cfg, console_size=console_size)
        instance.started = True
        try:
            c = self._containers.resolve(instance.container_id)
            _check_runs(c)
            process = await self._containers.exec(
                c.id, cfg.args, cfg.env, cfg.working_dir, cfg.user, cfg.stdin, cfg.tty,
                cfg.console_size, exec_id=exec_id,
            )
        except BaseException:
            # Did not run (its container stopped meanwhile, or the tracker journalled its
            # refusal): inspectable as ended, exit 126 (docker's "cannot invoke").
            instance.ended_at = self._monotonic()
            raise
        instance.process = process
        return cfg, process

    def inspect(self, exec_id: str) -> ExecView:
        self._forget_old()
        instance = self._instances.get(exec_id)
        if instance is None:
            raise no_such_exec(exec_id)
        process = instance.process
        exit = process.status() if process is not None else None
        if instance.started and process is None and instance.ended_at is not None:
            exit = ExitStatus(NEVER_RAN, 0, "the exec did not start")
        running = process is not None and exit is None
        return ExecView(
            id=instance.id, container_id=instance.container_id, config=instance.config,
            created_ns=instance.created_ns, running=running,
            pid=process.pid if process is not None else 0, exit=exit,
        )

    def _forget_old(self) -> None:
        now = self._monotonic()
        for exec_id, instance in list(self._instances.items()):
            process = instance.process
            if process is not None and instance.ended_at is None and process.status() is not None:
                instance.ended_at = now
            if instance.ended_at is not None:
                gone = now - instance.ended_at > ENDED_TTL_S
            elif not instance.started:
                gone = now - instance.created_at > CREATED_TTL_S
            else:
                gone = False  # running
            if gone or not self._containers.exists(instance.container_id):
                del self._instances[exec_id]


def _check_runs(c: Container) -> None:
    """docker's 409s for an exec into a container that does not run."""
    if c.state.status is Status.PAUSED:
        raise FailedPrecondition(
            f"Container {c.id} is paused, unpause the container before exec"
        )
    if c.state.status is not Status.RUNNING:
        raise FailedPrecondition(f"Container {c.id} is not running")
