"""Reading containers' log files for `pallet logs`.

Owns: turning a logs request (tail, since/until, streams, follow) for a container into
batches of records, following while the container runs, and warning (once per gap, in
palletd's log) about damaged bytes the readers skipped. Must not: write the log (the shim
does), know its framing, or loop over it itself: `pallet.shim.api.logs.follow_records`
is the one reader and follow loop.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import structlog

from pallet.daemon.containers.manager import ContainerManager
from pallet.daemon.containers.model import Status
from pallet.shim.api.logs import Gap, Record, follow_records

FOLLOW_POLL_S = 0.05
#: Gaps already warned about, so that each is told once, not on every `pallet logs`.
_WARNED_GAPS_KEPT = 4096

log = structlog.get_logger(__name__)


class ContainerLogs:
    def __init__(self, containers: ContainerManager) -> None:
        self._containers = containers
        self._warned: dict[tuple[str, int, int], None] = {}  # (container id, seq, offset)
        self._warned_lock = threading.Lock()  # readers run in worker threads

    async def read(
        self,
        ref: str,
        *,
        follow: bool,
        tail: int,
        since_ns: int,
        until_ns: int,
        streams: frozenset[int],
    ) -> AsyncIterator[list[Record]]:
        """The container's log as docker serves it: the history (the last `tail` lines
        when >= 0) from `since_ns` to `until_ns` (0: no bound); with `follow`, then what
        it writes until it stops running or `until_ns` has passed."""
        c = self._containers.resolve(ref)
        batches = follow_records(
            c.log_path,
            since_ns=since_ns,
            until_ns=until_ns,
            streams=streams,
            tail_lines=tail,
            follow=follow,
            done=lambda: not self._is_running(c.id),
            poll_interval=FOLLOW_POLL_S,
            on_gap=lambda gap: self._warn_gap(c.id, gap),
        )
        try:
            async for batch in batches:
                yield batch
        finally:
            await batches.aclose()

    def _warn_gap(self, container_id: str, gap: Gap) -> None:
        """Damaged bytes in a log file were skipped (called from a reader's thread)."""
        key = (container_id, gap.seq, gap.offset)
        with self._warned_lock:
            if key in self._warned:
                return
            if len(self._warned) >= _WARNED_GAPS_KEPT:
                del self._warned[next(iter(self._warned))]
            self._warned[key] = None
        log.warning(
            "damaged container log: bytes skipped, reading resumed at the next valid record",
            container_id=container_id,
            file=gap.file,
            offset=gap.offset,
            length=gap.length,
        )

    def _is_running(self, container_id: str) -> bool:
        try:
            c = self._containers.resolve(container_id)
        except Exception:
            return False
        return c.state.status in (Status.RUNNING, Status.PAUSED)
