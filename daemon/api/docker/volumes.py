"""Docker API volume endpoints: list, create, inspect, remove, prune.

Owns: reading Docker's volume requests into the Volumes servicer's (the `all` filter of
prune, and the older APIs' prune of every unused volume), and dockerd's wording and
statuses of the answers. Must not: make, find or remove volumes itself (the Volumes
servicer does).
"""

from __future__ import annotations

from aiohttp import web

from pallet.daemon.api.docker import gateway
from pallet.daemon.api.docker.calls import (
    ApiError,
    bad_request,
    call,
    field,
    filter_strings,
    json_response,
    query_bool,
    query_filters,
    read_json,
)
from pallet.daemon.api.docker.networks import string_map
from pallet.daemon.api.docker.services import Servicers
from pallet.v1 import volumes_pb2 as pb
from pallet.v1.docker.volumes import volume_json

#: Before this API version `volume prune` removed every unused volume, named ones too.
PRUNE_ALL_FILTER_SINCE = (1, 42)


def _not_found_as_dockerd(exc: ApiError, name: str) -> ApiError:
    if exc.status == 404:
        return ApiError(404, f"get {name}: no such volume")
    return exc


class VolumeEndpoints:
    def __init__(self, services: Servicers) -> None:
        self._volumes = services.volumes

    def register(self, routes: gateway.Routes) -> None:
        routes.get("/volumes", self.list)
        routes.post("/volumes/create", self.create)
        routes.post("/volumes/prune", self.prune)
        routes.get("/volumes/{name}", self.inspect)
        routes.delete("/volumes/{name}", self.remove)

    async def list(self, request: web.Request) -> web.Response:
        filters = filter_strings(query_filters(request))
        reply = await call(self._volumes.List, pb.ListVolumesRequest(filters=filters))
        return json_response({
            "Volumes": [volume_json(v) for v in reply.volumes],
            "Warnings": [],
        })

    async def create(self, request: web.Request) -> web.Response:
        body = await read_json(request, optional=True)
        if field(body, "ClusterVolumeSpec", dict, {}):
            raise bad_request("ClusterVolumeSpec is not supported: cluster volumes need swarm mode")
        create = pb.CreateVolumeRequest(
            name=field(body, "Name", str, ""),
            driver=field(body, "Driver", str, ""),
            labels=string_map(body, "Labels"),
            options=string_map(body, "DriverOpts"),
        )
        reply = await call(self._volumes.Create, create)
        return json_response(volume_json(reply.volume), status=201)

    async def inspect(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            reply = await call(self._volumes.Inspect, pb.InspectVolumeRequest(name=name))
        except ApiError as exc:
            raise _not_found_as_dockerd(exc, name) from None
        return json_response(volume_json(reply.volume))

    async def remove(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        force = query_bool(request, "force")
        try:
            await call(self._volumes.Remove, pb.RemoveVolumeRequest(name=name, force=force))
        except ApiError as exc:
            raise _not_found_as_dockerd(exc, name) from None
        return web.Response(status=204)

    async def prune(self, request: web.Request) -> web.Response:
        filters = query_filters(request)
        every = gateway.api_version(request) < PRUNE_ALL_FILTER_SINCE
        for value in filters.pop("all", []):
            if value in ("1", "true", "True"):
                every = True
            elif value not in ("0", "false", "False"):
                raise bad_request(f"invalid filter 'all={value}': use true or false")
        prune = pb.PruneVolumesRequest(filters=filter_strings(filters), all=every)
        reply = await call(self._volumes.Prune, prune)
        return json_response({
            "VolumesDeleted": list(reply.removed),
            "SpaceReclaimed": int(reply.space_reclaimed),
        })
