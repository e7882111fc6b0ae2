"""The subscribers' side of bench/crash.py's event figures, run in a process of their own.

Owns: opening M event streams (grpc.aio in one loop, or a blocking stream per thread),
counting what each receives and checking its seqs come one after another, and reporting
counts, the time the last one finished and the CPU used. Must not: publish, or start or
stop a daemon.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from palletd import stub


def subscribers_process(
    conn: Any, client: str, host: str, subscribers: int, events: int, since_seq: int
) -> None:
    """The subscribers' side of `grpc_events`, in a process of its own; reports on `conn`."""
    request_filters = ["type=image", "event=tag"]
    if client == "aio":
        report = asyncio.run(_aio_subscribers(conn, host, subscribers, events, since_seq,
                                              request_filters))
    else:
        report = _thread_subscribers(conn, host, subscribers, events, since_seq, request_filters)
    conn.send(report)


class _Tally:
    """One subscriber's count and seq check."""

    __slots__ = ("expect", "count", "errors", "done_at")

    def __init__(self, since_seq: int) -> None:
        self.expect = since_seq + 1
        self.count = 0
        self.errors = 0
        self.done_at = 0.0

    def see(self, seq: int, events: int) -> bool:
        """Count one event; True once `events` have been seen."""
        if seq != self.expect:
            self.errors += 1
        self.expect = seq + 1
        self.count += 1
        if self.count == events:
            self.done_at = time.monotonic()
            return True
        return False


def _report(tallies: list[_Tally], cpu0: float) -> dict[str, Any]:
    return {"delivered": sum(t.count for t in tallies),
            "last_at": max((t.done_at for t in tallies), default=0.0),
            "seq_errors": sum(t.errors for t in tallies),
            "cpu_s": time.process_time() - cpu0}


async def _aio_subscribers(
    conn: Any, host: str, subscribers: int, events: int, since_seq: int, filters: list[str]
) -> dict[str, Any]:
    import grpc

    from pallet.v1 import events_pb2

    channels = [grpc.aio.insecure_channel(host) for _ in range(subscribers)]
    tallies = [_Tally(since_seq) for _ in range(subscribers)]
    calls = [stub("EventsService", ch).Subscribe(
        events_pb2.SubscribeRequest(since_seq=since_seq, filters=filters))
        for ch in channels]
    for ch in channels:
        await ch.channel_ready()

    async def consume(call: Any, tally: _Tally) -> None:
        async for response in call:
            if tally.see(response.event.seq, events):
                break
        call.cancel()

    cpu0 = time.process_time()
    conn.send("ready")
    await asyncio.gather(*(consume(c, t) for c, t in zip(calls, tallies)))
    report = _report(tallies, cpu0)
    for ch in channels:
        await ch.close()
    return report


def _thread_subscribers(
    conn: Any, host: str, subscribers: int, events: int, since_seq: int, filters: list[str]
) -> dict[str, Any]:
    import grpc

    from pallet.v1 import events_pb2

    channels = [grpc.insecure_channel(host) for _ in range(subscribers)]
    tallies = [_Tally(since_seq) for _ in range(subscribers)]
    for ch in channels:
        grpc.channel_ready_future(ch).result(timeout=60)

    def consume(ch: Any, tally: _Tally) -> None:
        stream = stub("EventsService", ch).Subscribe(
            events_pb2.SubscribeRequest(since_seq=since_seq, filters=filters))
        for response in stream:
            if tally.see(response.event.seq, events):
                break
        stream.cancel()

    threads = [threading.Thread(target=consume, args=(ch, t), daemon=True)
               for ch, t in zip(channels, tallies)]
    cpu0 = time.process_time()
    for t in threads:
        t.start()
    conn.send("ready")
    for t in threads:
        t.join(300)
    report = _report(tallies, cpu0)
    for ch in channels:
        ch.close()
    return report
