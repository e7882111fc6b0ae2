"""Reading containers' log files for `pallet logs`.

Owns: turning a logs request (tail, since/until, streams, follow) into batches of records
read off the event loop, and warning (once per gap, in palletd's log) about damaged bytes
the readers skipped. Must not: write the log (the shim does) or know its framing (that
is `pallet.shim.logfile`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import structlog

from pallet.daemon.containers.manager import ContainerManager
from pallet.daemon.containers.model import Status
from pallet.shim import logfile
from pallet.shim.logfile import Gap, Record

BATCH_BYTES = 1 << 20
FOLLOW_POLL_S = 0.05
#: Gaps already warned about, so that each is told once, not on every `pallet logs`.
_WARNED_GAPS_KEPT = 4096

log = structlog.get_logger(__name__)


def _take(it: Iterator[Record], limit: int = BATCH_BYTES) -> list[Record]:
    batch: list[Record] = []
    size = 0
    for record in it:
        batch.append(record)
        size += len(record.data)
        if size >= limit:
            break
    return batch


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
        c = self._containers.resolve(ref)
        path = c.log_path
        reader = logfile.LogReader(
            path,
            streams=streams,
            since_ns=since_ns,
            until_ns=until_ns,
            on_gap=lambda gap: self._warn_gap(c.id, gap),
        )
        records = await asyncio.to_thread(reader.start, tail)
        while True:
            batch = await asyncio.to_thread(_take, records)
            if not batch:
                break
            yield batch
        if not follow:
            return
        while True:
            running = self._is_running(c.id)
            batch = await asyncio.to_thread(reader.read_new, BATCH_BYTES)
            if batch:
                yield batch
                continue
            if not running:
                return
            await asyncio.sleep(FOLLOW_POLL_S)

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
        return c.state.status is Status.RUNNING
