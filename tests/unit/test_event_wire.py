"""Events on the wire: each event is serialised once and shared by every subscriber
(`WireCache`), byte for byte what converting it per subscriber gives; over real gRPC, many
subscribers with different filters each get exactly their events, in seq order, with
replay then live. In-process server on a temporary unix socket, no root."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from pallet.daemon.api import convert
from pallet.daemon.api.events import WIRE_CACHE_BYTES, WireCache
from pallet.daemon.events.bus import EventBus
from pallet.daemon.events.filters import parse_filters
from pallet.daemon.events.model import Event
from pallet.v1 import events_pb2, events_pb2_grpc

from event_server import serve_events

EVENT = Event(
    seq=42,
    type="container",
    action="die",
    actor_id="ab" * 32,
    attributes={"name": "web", "image": "busybox:latest", "exitCode": "137", "com.x/label": "é"},
    time_ns=1_700_000_000_123_456_789,
)


def test_shared_bytes_decode_to_the_event_a_subscriber_expects() -> None:
    data = WireCache().get(EVENT)
    got = events_pb2.SubscribeResponse.FromString(data).event
    assert (got.seq, got.type, got.action, got.actor_id) == (42, "container", "die", "ab" * 32)
    assert dict(got.attributes) == {
        "name": "web", "image": "busybox:latest", "exitCode": "137", "com.x/label": "é",
    }
    assert (got.time.seconds, got.time.nanos) == (1_700_000_000, 123_456_789)
    # An event with no time carries none (not the epoch).
    bare = events_pb2.SubscribeResponse.FromString(WireCache().get(Event(7, "image", "tag", "x")))
    assert bare.event.seq == 7 and not bare.event.HasField("time")


def per_subscriber(event: Event) -> bytes:
    return events_pb2.SubscribeResponse(event=convert.event(event)).SerializeToString()


def test_cache_shares_one_serialisation_and_never_serves_a_different_event() -> None:
    cache = WireCache(size=4)
    first = cache.get(EVENT)
    assert cache.get(EVENT) is first, "the same event was serialised twice"
    # A replayed copy (a new object read back from the journal) shares it too.
    copy = Event(EVENT.seq, EVENT.type, EVENT.action, EVENT.actor_id, dict(EVENT.attributes),
                 EVENT.time_ns)
    assert cache.get(copy) is first
    # Another event under the same seq (another bus) gets its own bytes.
    other = Event(EVENT.seq, "image", "untag", "sha256:2", {"name": "x:1"}, 5)
    assert cache.get(other) == per_subscriber(other) != first
    assert cache.get(EVENT) == first
    for seq in range(100, 110):
        cache.get(Event(seq, "image", "tag", f"sha256:{seq}"))
    assert len(cache) == 4, "the cache is not bounded"


def test_replayed_history_does_not_push_out_the_live_events() -> None:
    head = 1_000
    cache = WireCache(size=4, head=lambda: head)
    live = Event(head, "image", "tag", "sha256:live")
    first = cache.get(live)
    for seq in range(1, 50):  # a subscriber replaying the journal from its start
        assert cache.get(Event(seq, "image", "tag", f"sha256:{seq}")) == per_subscriber(
            Event(seq, "image", "tag", f"sha256:{seq}")
        )
    assert cache.get(live) is first and len(cache) == 1


def big_event(seq: int) -> Event:
    # The largest labels an object may carry: 4 of 16 KiB, 64 KiB in all.
    labels = {f"big{i}": f"{seq:08d}" * 2048 for i in range(4)}
    return Event(seq, "container", "create", f"{seq:064d}", {"name": f"c{seq}", **labels}, seq)


def test_the_cache_is_bounded_by_bytes_and_keeps_the_newest() -> None:
    head = 2_000
    cache = WireCache(head=lambda: head)
    for seq in range(1, head + 1):  # as many as a live fan-out of big events makes
        event = big_event(seq)
        assert cache.get(event) == per_subscriber(event)
        assert cache.held_bytes <= WIRE_CACHE_BYTES
    assert 0 < len(cache) < 1024, "the cache kept events by count only"
    newest = big_event(head)
    assert cache.get(newest) is cache.get(newest), "the newest event is not shared"
    small = WireCache(max_bytes=200 * 1024)
    kept = [small.get(big_event(seq)) for seq in (1, 2, 3)]
    assert len(small) == 1 and small.get(big_event(3)) is kept[2]
    # One event larger than the whole cache is serialised but never kept.
    tiny = WireCache(max_bytes=1024)
    assert tiny.get(big_event(1)) == per_subscriber(big_event(1)) and len(tiny) == 0


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[EventBus, str]]:
    async with serve_events(tmp_path) as served:
        yield served


FILTERS: list[list[str]] = [
    [],
    ["type=container"],
    ["type=image", "event=tag"],
    ["container=web"],
    ["event=die", "event=start"],
    ["label=tier=db"],
]


async def test_filtered_subscribers_each_get_exactly_their_events(
    served: tuple[EventBus, str],
) -> None:
    bus, address = served
    # Some history first: every subscriber replays it, then continues live.
    published = [
        await bus.publish("image", "tag", "sha256:1", {"name": "busybox:old"}),
        await bus.publish("container", "create", "c0" * 32, {"name": "web", "tier": "db"}),
    ]
    async with grpc.aio.insecure_channel(address) as channel:
        stub: Any = events_pb2_grpc.EventsServiceStub(channel)  # type: ignore[no-untyped-call]
        calls = [stub.Subscribe(events_pb2.SubscribeRequest(since_seq=0, filters=f))
                 for f in FILTERS]
        for _ in range(500):
            if len(bus._subscribers) == len(FILTERS):  # noqa: SLF001 - test-only peek
                break
            await asyncio.sleep(0.01)
        assert len(bus._subscribers) == len(FILTERS)  # noqa: SLF001

        for i in range(60):
            name = ("web", "db", "cache")[i % 3]
            labels = {"tier": "db"} if name == "db" else {}
            published.append(await bus.publish(
                "container", ("start", "die", "exec_start: sh")[i % 3], f"{i:02d}" * 32,
                {"name": name, **labels}))
            if i % 10 == 0:
                published.append(await bus.publish("image", "tag", f"sha256:{i}",
                                                   {"name": f"busybox:{i}"}))
        wanted = [[e for e in published if parse_filters(f).matches(e)] for f in FILTERS]

        async def read(call: Any, want: list[Event]) -> list[Any]:
            got = []
            async for response in call:
                got.append(response.event)
                if len(got) == len(want):
                    break
            call.cancel()
            return got

        received = await asyncio.wait_for(
            asyncio.gather(*(read(c, w) for c, w in zip(calls, wanted))), 60)
        # A cancelled stream leaves the bus: nothing is queued for it any more.
        for _ in range(500):
            if not bus._subscribers:  # noqa: SLF001 - test-only peek
                break
            await asyncio.sleep(0.01)
        assert not bus._subscribers, "a cancelled subscriber stayed on the bus"  # noqa: SLF001

    assert [e.seq for e in published] == list(range(1, len(published) + 1))
    for flt, want, got in zip(FILTERS, wanted, received):
        assert [e.seq for e in got] == [e.seq for e in want], f"filters {flt}: wrong events"
        assert got == [convert.event(e) for e in want], f"filters {flt}: wrong content"
    # The filters really did select different things.
    assert len({tuple(e.seq for e in w) for w in wanted}) == len(FILTERS)
    assert all(wanted)
