"""A slow subscriber over real gRPC: it never holds up a fast one, and when it falls too far
behind its stream ends with RESOURCE_EXHAUSTED naming the seq to resume from; resuming
there loses and repeats nothing. In-process server on a temporary unix socket, no root."""

from __future__ import annotations

import asyncio
import gc
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from pallet.daemon.events import bus as bus_mod
from pallet.daemon.events.bus import EventBus
from pallet.v1 import events_pb2, events_pb2_grpc

from event_server import serve_events

EVENTS = 3000


@pytest.fixture
async def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[EventBus, str]]:
    # A small queue so "too far behind" comes quickly; gRPC's own buffers add to it.
    monkeypatch.setattr(bus_mod, "QUEUE_LIMIT", 100)
    # This test allocates a lot; a cyclic collection it triggers would finalise garbage
    # other tests left (unclosed asyncio streams of closed loops), and pytest would blame
    # the resulting unraisable warnings on this test.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        async with serve_events(tmp_path) as served:
            yield served
    finally:
        if gc_was_enabled:
            gc.enable()


async def test_a_slow_subscriber_is_cut_off_with_a_resume_point(
    served: tuple[EventBus, str],
) -> None:
    bus, address = served
    async with grpc.aio.insecure_channel(address) as channel:
        stub: Any = events_pb2_grpc.EventsServiceStub(channel)  # type: ignore[no-untyped-call]
        fast = stub.Subscribe(events_pb2.SubscribeRequest())
        slow = stub.Subscribe(events_pb2.SubscribeRequest())
        # Both registered with the bus before anything is published (calls start at once).
        for _ in range(500):
            if len(bus._subscribers) == 2:  # noqa: SLF001 - test-only peek
                break
            await asyncio.sleep(0.01)
        assert len(bus._subscribers) == 2  # noqa: SLF001

        fast_seqs: list[int] = []

        async def read_fast() -> None:
            async for response in fast:
                fast_seqs.append(response.event.seq)
                if len(fast_seqs) == EVENTS:
                    return

        reader = asyncio.create_task(read_fast())
        payload = {"pad": "x" * 2000}  # big events fill the transport's buffers sooner
        for i in range(EVENTS):
            await bus.publish("thing", "touch", str(i), payload)
            if i % 50 == 49:
                # Keep the fast subscriber fast on a loaded machine: it must never lag here.
                while len(fast_seqs) < i + 1 - 50 and not reader.done():
                    await asyncio.sleep(0.001)
        await asyncio.wait_for(reader, 60)
        # The fast subscriber got everything while the slow one read nothing.
        assert fast_seqs == list(range(1, EVENTS + 1))

        slow_seqs: list[int] = []

        async def read_slow() -> None:
            async for response in slow:
                slow_seqs.append(response.event.seq)

        with pytest.raises(grpc.aio.AioRpcError) as info:
            # Bounded: a stream that is never cut off fails the test instead of hanging it.
            await asyncio.wait_for(read_slow(), 60)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        match = re.search(r"since_seq=(\d+)", info.value.details() or "")
        assert match, info.value.details()
        resume = int(match.group(1))
        assert slow_seqs == list(range(1, resume + 1))
        assert resume < EVENTS

        rest = stub.Subscribe(events_pb2.SubscribeRequest(since_seq=resume))
        more: list[int] = []

        async def read_rest() -> None:
            async for response in rest:
                more.append(response.event.seq)
                if response.event.seq == EVENTS:
                    return

        await asyncio.wait_for(read_rest(), 60)
        rest.cancel()
        assert slow_seqs + more == list(range(1, EVENTS + 1))
