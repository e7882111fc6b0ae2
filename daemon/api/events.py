"""EventsService: subscribe to the event bus over gRPC.

Owns: converting Subscribe requests and events. Must not: journal or filter events itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator


from pallet.daemon.api import convert
from pallet.daemon.api.errors import Ctx, stream
from pallet.daemon.events.bus import EventBus
from pallet.daemon.events.filters import parse_filters
from pallet.v1 import events_pb2 as pb
from pallet.v1 import events_pb2_grpc as pb_grpc



class EventsServicer(pb_grpc.EventsServiceServicer):
    def __init__(self, bus: EventBus) -> None:
        self._bus = bus

    @stream
    async def Subscribe(self, request: pb.SubscribeRequest, context: Ctx) -> AsyncIterator[pb.SubscribeResponse]:
        flt = parse_filters(list(request.filters))
        events = self._bus.subscribe(
            flt,
            since_seq=request.since_seq if request.HasField("since_seq") else None,
            since_ns=convert.nanos(request.since, request.HasField("since")),
            until_ns=convert.nanos(request.until, request.HasField("until")),
        )
        async for event in events:
            yield pb.SubscribeResponse(event=convert.event(event))
