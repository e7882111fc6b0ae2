"""The container init's state machine, as the shim runs it.

Owns: the transition table between `TaskStatus` values (containerd's init states: created
-> running -> stopped, and created -> stopped for an init killed or deleted before its
start) and `InitState`, which holds the current status and refuses an illegal move or an
action the status does not allow with FailedPrecondition naming the status. Must not: do
I/O or know the protocol; depends on nothing else in the shim's package.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from pallet.v1.errors import FailedPrecondition
from pallet.shim.api.spec import TaskStatus

CREATED, RUNNING, STOPPED = TaskStatus.CREATED, TaskStatus.RUNNING, TaskStatus.STOPPED

#: Where each status may go. STOPPED is final: from there the shim only shuts down.
TRANSITIONS: Mapping[TaskStatus, frozenset[TaskStatus]] = {
    CREATED: frozenset({RUNNING, STOPPED}),  # its exec succeeded; or it died before that
    RUNNING: frozenset({STOPPED}),  # it exited
    STOPPED: frozenset(),
}


class InitState:
    """The status of one container's init process."""

    __slots__ = ("container_id", "status")

    def __init__(self, container_id: str, status: TaskStatus = CREATED) -> None:
        self.container_id = container_id
        self.status = status

    def move(self, to: TaskStatus) -> None:
        """Go to `to`, or raise FailedPrecondition if the table has no such move."""
        if to not in TRANSITIONS[self.status]:
            raise FailedPrecondition(
                f"container {self.container_id} is {self.status.value}: "
                f"it cannot become {to.value}"
            )
        self.status = to

    def require(self, allowed: Collection[TaskStatus], refusal: str) -> None:
        """Raise FailedPrecondition unless the status is one of `allowed`.

        `refusal` says what cannot be done and what to do instead, after the status:
        "container web is stopped: <refusal>".
        """
        if self.status not in allowed:
            raise FailedPrecondition(
                f"container {self.container_id} is {self.status.value}: {refusal}"
            )

    def __repr__(self) -> str:
        return f"InitState({self.container_id!r}, {self.status})"
