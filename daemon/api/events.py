"""EventsService: subscribe to the event bus over gRPC.

Owns: converting Subscribe requests, and sending each event to every subscriber as bytes
serialised once (`WireCache`). Must not: journal or filter events itself.

Register with `add_to_server`, not the generated `add_EventsServiceServicer_to_server`:
`Subscribe` yields the serialised `SubscribeResponse`, so its method handler must pass the
bytes through instead of serialising a message. The wire format is unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from pallet.daemon.api import convert
from pallet.daemon.api.errors import Ctx, stream
from pallet.daemon.events.bus import EventBus
from pallet.daemon.events.filters import parse_filters
from pallet.daemon.events.model import Event, memory_size
from pallet.v1 import events_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["EventsService"].full_name

# Recent events kept serialised: at most this many, holding at most this many bytes (the
# bytes plus the event they came from, `memory_size`). Live subscribers are usually a few
# events apart; one further behind (or replaying older events) serialises its own copy.
# By bytes too, because labels make one event anything from 300 bytes to 100 KiB.
WIRE_CACHE_EVENTS = 1024
WIRE_CACHE_BYTES = 8 * 1024 * 1024


class WireCache:
    """Serialised `SubscribeResponse`s by seq, so an event is converted and serialised
    once however many subscribers it goes to (profiled: per-subscriber conversion was
    the largest share of palletd's own Python time in a fan-out to 100 streams).

    Keyed by seq, checked against the event itself: a different event under a seq already
    cached (another bus in a test) is serialised anew, never answered from the cache.
    Only events among the newest `size` (by `head`, the bus's last seq) are kept: a
    subscriber replaying an old stretch of the journal must not push out what the live
    subscribers share. The oldest entries go first once `size` events or `max_bytes`
    bytes are held; an event costing more than `max_bytes` alone is never kept.
    """

    __slots__ = ("_entries", "_size", "_max_bytes", "_bytes", "_head")

    def __init__(
        self,
        size: int = WIRE_CACHE_EVENTS,
        head: Callable[[], int] | None = None,
        max_bytes: int = WIRE_CACHE_BYTES,
    ) -> None:
        self._entries: dict[int, tuple[Event, bytes, int]] = {}
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._head = head

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def held_bytes(self) -> int:
        """What the entries hold: their bytes and their events (`memory_size`)."""
        return self._bytes

    def get(self, event: Event) -> bytes:
        hit = self._entries.get(event.seq)
        # `is` first: live fan-out hands every subscriber the same Event object.
        if hit is not None and (hit[0] is event or hit[0] == event):
            return hit[1]
        data = convert.subscribe_response_bytes(event)
        if self._head is not None and event.seq <= self._head() - self._size:
            return data  # replayed history: serialised for this subscriber alone
        cost = len(data) + memory_size(event)
        if cost > self._max_bytes:
            return data  # alone larger than the whole cache
        entries = self._entries
        if hit is not None:
            del entries[event.seq]
            self._bytes -= hit[2]
        while entries and (len(entries) >= self._size or self._bytes + cost > self._max_bytes):
            # Dicts keep insertion order: the first entry is the oldest.
            self._bytes -= entries.pop(next(iter(entries)))[2]
        entries[event.seq] = (event, data, cost)
        self._bytes += cost
        return data


class EventsServicer:
    #: The proto service served (the server names it to health checking and reflection).
    SERVICE = SERVICE

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._wire = WireCache(head=lambda: bus.last_seq)

    def add_to_server(self, server: Any) -> None:
        """Register `Subscribe` on a grpc(.aio) server, its responses passed through as
        the bytes it yields (the generated registration would serialise them again)."""
        handlers: dict[str, Any] = {
            "Subscribe": grpc.unary_stream_rpc_method_handler(
                self.Subscribe,
                request_deserializer=pb.SubscribeRequest.FromString,
                response_serializer=None,
            )
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        # As the generated registration does: found by method name without a generic lookup.
        server.add_registered_method_handlers(SERVICE, handlers)

    @stream
    async def Subscribe(self, request: pb.SubscribeRequest, context: Ctx) -> AsyncIterator[bytes]:
        flt = parse_filters(list(request.filters))
        batches = self._bus.subscribe_batches(
            flt,
            since_seq=request.since_seq if request.HasField("since_seq") else None,
            since_ns=convert.optional_nanos(request.since, request.HasField("since")),
            until_ns=convert.optional_nanos(request.until, request.HasField("until")),
        )
        wire = self._wire.get
        # Leave the bus as soon as the call ends (cancelled, or cut off).
        async with contextlib.aclosing(batches):
            async for batch in batches:
                for event in batch:
                    yield wire(event)
