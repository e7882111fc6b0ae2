"""The daemon's view of a pallet-shim: the values and protocols the rest of palletd uses.

Owns: the `ShimClient` / `ShimLauncher` protocols that `pallet.daemon.shims.client`
implements. The values a shim takes and gives (`ShimSpec`, `ExitStatus`, ...) are the
shim's own API, `pallet.shim.api.spec`. Must not: do I/O.

Lifecycle: `ShimLauncher.spawn(spec)` starts a shim which builds the container (namespaces,
mounts, cgroup, pivot_root) and leaves its init process waiting just before exec; the
daemon may then `attach`, and `start()` lets the init exec. `ShimLauncher.connect(id)`
re-adopts a running shim after a daemon restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from pallet.shim.api.delete import DeleteResult
from pallet.shim.api.spec import ExecSpec, ExitStatus, Output, Resources, ShimSpec, ShimState


class Stdio(Protocol):
    """A live connection to a process's stdio (container init via attach, or an exec)."""

    def output(self) -> AsyncIterator[Output]:
        """Yield output until the process's stdout and stderr are closed."""
        ...

    async def write_stdin(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    async def aclose(self) -> None:
        """Detach; the process keeps running."""
        ...


class ExecSession(Stdio, Protocol):
    """A running exec process."""

    pid: int

    async def wait(self) -> ExitStatus: ...


class Freeze(Protocol):
    """A freeze of a container's processes, held until `thaw` (or until palletd dies:
    the shim thaws when the connection that holds it closes)."""

    async def thaw(self) -> None: ...


class ShimClient(Protocol):
    """A connection to one container's shim. Every call has a deadline."""

    container_id: str
    shim_pid: int

    async def start(self) -> int:
        """Let the init process exec; return its host pid.

        Raises FailedPrecondition with the reason ("exec: "nosuch": executable file not
        found in $PATH") when the exec fails; the shim records exit code 127 (not found)
        or 126 (not executable) in that case.
        """
        ...

    async def state(self) -> ShimState: ...

    async def kill(self, signal: int, all_processes: bool = False) -> None: ...

    async def kill_exec(self, exec_id: str, signal: int) -> None:
        """Signal one exec's process; FailedPrecondition once it has ended."""
        ...

    async def wait(self) -> ExitStatus:
        """Block until the init process has exited and its status is on disk;
        Unavailable if the shim dies first (see `exit_status_on_disk`)."""
        ...

    async def attach(self, stdin: bool, stdout: bool, stderr: bool) -> Stdio: ...

    async def exec(self, spec: ExecSpec) -> ExecSession: ...

    async def wait_exec(self, exec_id: str) -> ExitStatus:
        """Block until exec `exec_id` has ended (at once if it has); return its status.

        Works on any connection, also after the one that started the exec is gone.
        Raises NotFound when the shim never started that exec, Unavailable when the shim
        is gone.
        """
        ...

    async def freeze(self) -> Freeze:
        """Freeze every process of the running container (its cgroup's freezer); return
        once they are all stopped. FailedPrecondition when it is not running or its
        cgroup cannot be frozen."""
        ...

    async def pause(self) -> None:
        """Freeze the running container until `resume` (`pallet pause`): the shim holds it,
        whatever happens to palletd, and `state().paused` says so. FailedPrecondition
        when it is not running or its cgroup cannot be frozen."""
        ...

    async def resume(self) -> None:
        """End a pause (`pallet unpause`); nothing happens when it is not paused."""
        ...

    async def resize(self, height: int, width: int, exec_id: str = "") -> None:
        """Set the window size of the init's terminal (or exec `exec_id`'s).
        FailedPrecondition when it has none or it ended, NotFound for an unknown exec."""
        ...

    async def update(self, resources: Resources) -> None:
        """Apply these limits (the whole set) to the running container's cgroup: all, or
        none when the kernel refuses one (FailedPrecondition naming it)."""
        ...

    async def shutdown(self) -> None:
        """Tell a shim whose container has exited to clean up and exit."""
        ...

    async def aclose(self) -> None:
        """Close the connection; the shim keeps running."""
        ...


class ShimLauncher(Protocol):
    """Starts shims and re-adopts running ones."""

    async def spawn(self, spec: ShimSpec, seccomp: bytes = b"") -> ShimClient:
        """Start a shim for `spec`; return once the container is created (not started).
        `seccomp`: the filter the spec's `linux.seccomp` names, written into the bundle
        with the spec.

        Raises FailedPrecondition with the shim's reason when the container cannot be
        built (e.g. unknown user, bad working directory); nothing is left running.
        """
        ...

    async def connect(self, container_id: str, bundle_dir: Path) -> ShimClient:
        """Reconnect to a running shim; raise Unavailable when it is gone."""
        ...

    def exit_status_on_disk(self, bundle_dir: Path) -> ExitStatus | None:
        """The exit status a shim recorded, if it recorded one: possibly a previous
        run's (`exits.of_this_run` tells)."""
        ...

    def exec_exit_on_disk(self, bundle_dir: Path, exec_id: str) -> ExitStatus | None:
        """The exit status a shim recorded for an exec, if it recorded one."""
        ...

    def discard_exec_exit(self, bundle_dir: Path, exec_id: str) -> None:
        """Forget an exec's recorded exit (its exec_die is journalled)."""
        ...

    async def has_leftovers(self, container_id: str, bundle_dir: Path) -> bool:
        """Whether a shim of the container left something `delete` would clean up (its
        socket, its cgroup); cheap: nothing is started, nothing changed."""
        ...

    async def delete(self, container_id: str, bundle_dir: Path, cgroup_path: str) -> DeleteResult:
        """Clean up after the container's dead shim (`pallet-shim delete`): kill what is
        left in its cgroup, remove the cgroup and the shim's socket.

        Raises FailedPrecondition when the shim still answers, DeadlineExceeded when the
        cleanup hangs.
        """
        ...

    async def kill_unresponsive(self, container_id: str, shim_pid: int, init_pid: int) -> list[int]:
        """SIGKILL the container's shim, which does not answer, and its init: only if
        `shim_pid` is still the process serving the container's shim socket (a pid may
        have been reused). Returns the pids killed (none when it is not that shim).
        Leaves the cleanup (cgroup, socket) to `delete`."""
        ...

    async def aclose(self) -> None: ...
