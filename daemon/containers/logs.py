"""Reading containers' log files for `pallet logs`.

Owns: turning a logs request (tail, since/until, streams, follow) into batches of records
read off the event loop. Must not: write the log (the shim does) or know its framing (that
is `pallet.shim.logfile`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

from pallet.daemon.containers.manager import ContainerManager
from pallet.daemon.containers.model import Status
from pallet.shim import logfile
from pallet.shim.logfile import Record

BATCH_BYTES = 1 << 20
FOLLOW_POLL_S = 0.05


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
        reader = logfile.LogReader(path, streams=streams, since_ns=since_ns, until_ns=until_ns)
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

    def _is_running(self, container_id: str) -> bool:
        try:
            c = self._containers.resolve(container_id)
        except Exception:
            return False
        return c.state.status is Status.RUNNING
