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
from pallet.daemon.events.model import Event
from pallet.v1 import events_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["EventsService"].full_name

# Recent events kept serialised. Live subscribers are usually a few events apart; one
# further behind than this (or replaying older events) serialises its own copy.
WIRE_CACHE_EVENTS = 1024


class WireCache:
    """Serialised `SubscribeResponse`s by seq, so an event is converted and serialised
    once however many subscribers it goes to (profiled: per-subscriber conversion was
    the largest share of palletd's own Python time in a fan-out to 100 streams).

    Keyed by seq, checked against the event itself: a different event under a seq already
    cached (another bus in a test) is serialised anew, never answered from the cache.
    Only events among the newest `size` (by `head`, the bus's last seq) are kept: a
    subscriber replaying an old stretch of the journal must not push out what the live
    subscribers share.
    """

    __slots__ = ("_entries", "_size", "_head")

    def __init__(
        self, size: int = WIRE_CACHE_EVENTS, head: Callable[[], int] | None = None
    ) -> None:
        self._entries: dict[int, tuple[Event, bytes]] = {}
        self._size = size
        self._head = head

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, event: Event) -> bytes:
        hit = self._entries.get(event.seq)
        # `is` first: live fan-out hands every subscriber the same Event object.
        if hit is not None and (hit[0] is event or hit[0] == event):
            return hit[1]
        data = convert.subscribe_response_bytes(event)
        if self._head is not None and event.seq <= self._head() - self._size:
            return data  # replayed history: serialised for this subscriber alone
        entries = self._entries
        entries.pop(event.seq, None)
        if len(entries) >= self._size:
            # Dicts keep insertion order: the first entry is the oldest.
            del entries[next(iter(entries))]
        entries[event.seq] = (event, data)
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
