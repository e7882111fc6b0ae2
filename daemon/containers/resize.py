"""Terminals of running containers and execs: `Resize` (docker's resize and exec resize).

Owns: `Resizes`, the part of the container manager that passes a window size on to the
shim that holds the terminal's master (the container's init's, or an exec's), after
checking that there is one to resize. Must not: touch a terminal itself (the shim does,
`pallet.shim.tty`) or hold state of its own (`ContainerManager` is a `Resizes`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pallet.daemon.containers.model import Container, Status
from pallet.daemon.containers.sessions import Run
from pallet.v1.errors import FailedPrecondition, InvalidArgument

MAX_SIZE = 65535  # rows and columns are unsigned shorts in the kernel's winsize


def check_console_size(size: tuple[int, int]) -> tuple[int, int]:
    """A terminal's size at its start, (0, 0) for unset; InvalidArgument past 65535."""
    height, width = size
    if not (0 <= height <= MAX_SIZE and 0 <= width <= MAX_SIZE):
        raise InvalidArgument(
            f"invalid console size {height}x{width}: rows and columns go up to {MAX_SIZE}"
        )
    return (height, width) if height and width else (0, 0)


class Resizes:
    """Resizes terminals (mixed into `ContainerManager`)."""

    _runs: dict[str, Run]

    if TYPE_CHECKING:

        def resolve(self, ref: str) -> Container: ...

    async def resize(self, ref: str, exec_id: str, height: int, width: int) -> None:
        """Set the size of the container's terminal, or of exec `exec_id`'s."""
        for name, value in (("height", height), ("width", width)):
            if not 0 < value <= MAX_SIZE:
                raise InvalidArgument(f"invalid terminal {name} {value}: use 1 to {MAX_SIZE}")
        c = self.resolve(ref)
        run = self._runs.get(c.id)
        if c.state.status not in (Status.RUNNING, Status.PAUSED) or run is None:
            raise FailedPrecondition(f"container {c.name} is not running: start it first")
        if not exec_id and not c.config.tty:
            raise FailedPrecondition(
                f"container {c.name} has no terminal: it was not created with -t"
            )
        await run.shim.resize(height, width, exec_id)
