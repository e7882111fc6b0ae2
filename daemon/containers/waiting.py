"""Who waits for a container's next exit or for its removal (docker's wait conditions).

Owns: the futures of `wait` calls with condition next-exit (the end of a run that may not
have begun yet: `docker run` asks before it starts the container) and removed (`docker run
--rm`), and settling them: at the end of a run (`exited`) and at a removal (`removed`).
A waiter is registered synchronously, when `wait` is called, so a start that follows the
call cannot slip between. Must not: change any state, or know why a run ended.
"""

from __future__ import annotations

import asyncio

from pallet.shim.api.spec import ExitStatus

CONDITION_NOT_RUNNING = "not-running"
CONDITION_NEXT_EXIT = "next-exit"
CONDITION_REMOVED = "removed"
CONDITIONS = ("", CONDITION_NOT_RUNNING, CONDITION_NEXT_EXIT, CONDITION_REMOVED)


class ExitWaiters:
    def __init__(self) -> None:
        self._next_exit: dict[str, list[asyncio.Future[ExitStatus]]] = {}
        self._removed: dict[str, list[asyncio.Future[ExitStatus]]] = {}

    def next_exit(self, container_id: str) -> asyncio.Future[ExitStatus]:
        """A future of the end of the container's next run (or of its removal first)."""
        return self._add(self._next_exit, container_id)

    def removal(self, container_id: str) -> asyncio.Future[ExitStatus]:
        """A future of the container's removal, with its last run's exit."""
        return self._add(self._removed, container_id)

    def forget(self, container_id: str, future: asyncio.Future[ExitStatus]) -> None:
        """Drop a waiter that is done or whose caller went away."""
        for table in (self._next_exit, self._removed):
            waiting = table.get(container_id)
            if waiting and future in waiting:
                waiting.remove(future)
                if not waiting:
                    del table[container_id]

    def exited(self, container_id: str, status: ExitStatus) -> None:
        """A run of the container ended (recorded, and what follows it done)."""
        self._settle(self._next_exit, container_id, status)

    def removed(self, container_id: str, status: ExitStatus) -> None:
        """The container is gone; `status` is its last run's exit. A next-exit waiter
        hears of it too: no run of it will ever end now."""
        self._settle(self._next_exit, container_id, status)
        self._settle(self._removed, container_id, status)

    @staticmethod
    def _add(
        table: dict[str, list[asyncio.Future[ExitStatus]]], container_id: str
    ) -> asyncio.Future[ExitStatus]:
        future: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
        table.setdefault(container_id, []).append(future)
        return future

    @staticmethod
    def _settle(
        table: dict[str, list[asyncio.Future[ExitStatus]]], container_id: str, status: ExitStatus
    ) -> None:
        for future in table.pop(container_id, []):
            if not future.done():
                future.set_result(status)
