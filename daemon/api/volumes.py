"""VolumesService: the gRPC face of `VolumeManager`.

Owns: request validation and pb2 conversion for volume calls. Must not: touch volume
directories, mounts or SQL itself.
"""

from __future__ import annotations

from typing import Any

from pallet.daemon.api import convert
from pallet.daemon.api.errors import Ctx, unary
from pallet.daemon.volumes import filters
from pallet.daemon.volumes.manager import VolumeInfo, VolumeManager
from pallet.daemon.volumes.model import SCOPE_LOCAL
from pallet.v1 import volumes_pb2 as pb
from pallet.v1 import volumes_pb2_grpc as pb_grpc


def _volume(info: VolumeInfo) -> pb.Volume:
    v = info.volume
    return pb.Volume(
        name=v.name, driver=v.driver, mountpoint=info.mountpoint, labels=dict(v.labels),
        options=dict(v.options), created=convert.timestamp(v.created_ns),
        anonymous=v.anonymous, size=info.size, scope=SCOPE_LOCAL,
        users=[pb.VolumeUser(container_id=cid, container_name=name) for cid, name in info.users],
    )


class VolumesServicer(pb_grpc.VolumesServiceServicer):
    #: The proto service served (the server names it to health checking and reflection).
    SERVICE = pb.DESCRIPTOR.services_by_name["VolumesService"].full_name

    def add_to_server(self, server: Any) -> None:
        pb_grpc.add_VolumesServiceServicer_to_server(self, server)

    def __init__(self, volumes: VolumeManager) -> None:
        self._volumes = volumes

    @unary
    async def Create(self, request: pb.CreateVolumeRequest, context: Ctx) -> pb.CreateVolumeResponse:
        v = await self._volumes.create(
            request.name, request.driver, dict(request.labels), dict(request.options)
        )
        return pb.CreateVolumeResponse(volume=_volume(await self._volumes.info(v.name, False)))

    @unary
    async def List(self, request: pb.ListVolumesRequest, context: Ctx) -> pb.ListVolumesResponse:
        terms = filters.parse(list(request.filters))
        found = []
        for v in self._volumes.volumes():
            if filters.matches(v, terms, bool(self._volumes.users(v.name))):
                found.append(_volume(await self._volumes.info(v.name, request.size)))
        return pb.ListVolumesResponse(volumes=found)

    @unary
    async def Inspect(self, request: pb.InspectVolumeRequest, context: Ctx) -> pb.InspectVolumeResponse:
        # No size: docker's inspect has none, and walking a big volume takes long.
        return pb.InspectVolumeResponse(
            volume=_volume(await self._volumes.info(request.name, with_size=False))
        )

    @unary
    async def Remove(self, request: pb.RemoveVolumeRequest, context: Ctx) -> pb.RemoveVolumeResponse:
        await self._volumes.remove(request.name, request.force)
        return pb.RemoveVolumeResponse()

    @unary
    async def Prune(self, request: pb.PruneVolumesRequest, context: Ctx) -> pb.PruneVolumesResponse:
        terms = filters.parse(list(request.filters), filters.PRUNE_KEYS)
        removed, reclaimed = await self._volumes.prune(
            request.all, lambda v: filters.matches(v, terms, False)
        )
        return pb.PruneVolumesResponse(removed=removed, space_reclaimed=reclaimed)
