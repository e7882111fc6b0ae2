"""Docker API `GET /system/df`: what images, containers, volumes and the build cache take.

Owns: Docker's DiskUsage JSON of the System servicer's DiskUsage (verbose: each object's
usage) joined with the objects' own summaries from the Images, Containers and Volumes
servicers (the same shapes as their list endpoints). Must not: measure anything itself.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from pallet.daemon.api.docker import gateway
from pallet.daemon.api.docker.calls import bad_request, call, json_response
from pallet.daemon.api.docker.services import Servicers
from pallet.v1 import containers_pb2, images_pb2, system_pb2, volumes_pb2
from pallet.v1.docker.containers import container_summary
from pallet.v1.docker.images import image_summary
from pallet.v1.docker.volumes import volume_json

#: docker's `type` values, in the order dockerd names them.
TYPES = ("container", "image", "volume", "build-cache")
#: From this API version `type` picks the kinds reported (before it, every kind).
TYPE_SINCE = (1, 42)


class DiskUsageEndpoints:
    def __init__(self, services: Servicers) -> None:
        self._system = services.system
        self._images = services.images
        self._containers = services.containers
        self._volumes = services.volumes

    def register(self, routes: gateway.Routes) -> None:
        routes.get("/system/df", self.df)

    async def df(self, request: web.Request) -> web.Response:
        version = gateway.api_version(request)
        asked = request.query.getall("type", []) if version >= TYPE_SINCE else []
        for kind in asked:
            if kind not in TYPES:
                raise bad_request(f"invalid type {kind!r}: use {', '.join(TYPES)}")
        kinds = tuple(asked) or TYPES
        usage = await call(self._system.DiskUsage,
                           system_pb2.DiskUsageRequest(types=kinds, verbose=True))
        out: dict[str, Any] = {
            "LayersSize": 0, "Images": None, "Containers": None, "Volumes": None,
            "BuildCache": None,
        }
        if "image" in kinds:
            out["LayersSize"] = int(usage.images.size)
            out["Images"] = await self._image_usage(usage, version)
        if "container" in kinds:
            out["Containers"] = await self._container_usage(usage)
        if "volume" in kinds:
            out["Volumes"] = await self._volume_usage(usage)
        if "build-cache" in kinds:
            # pallet's build cache is its images (a build's steps are images): none apart.
            out["BuildCache"] = []
        return json_response(out)

    async def _image_usage(self, usage: Any, version: tuple[int, int]) -> list[dict[str, Any]]:
        by_id = {u.image_id: u for u in usage.image_usage}
        listed = await call(self._images.List, images_pb2.ListImagesRequest(all=True))
        out = []
        for image in listed.images:
            u = by_id.get(image.id)
            summary = image_summary(image, version, containers=int(u.containers) if u else -1)
            # df's sizes are what the image holds on disk: its unpacked layers and blobs,
            # and of those what another image holds too (-1: made after it was measured).
            summary["Size"] = int(u.size) if u else -1
            summary["SharedSize"] = int(u.shared_size) if u else -1
            out.append(summary)
        return out

    async def _container_usage(self, usage: Any) -> list[dict[str, Any]]:
        by_id = {u.container_id: u for u in usage.container_usage}
        listed = await call(self._containers.List, containers_pb2.ListContainersRequest(all=True))
        now = time.time()
        out = []
        for c in listed.containers:
            u = by_id.get(c.id)
            if u is not None:
                c.size_rw, c.size_root_fs = u.size_rw, u.size_root_fs
            out.append(container_summary(c, now))
        return out

    async def _volume_usage(self, usage: Any) -> list[dict[str, Any]]:
        by_name = {u.name: u for u in usage.volume_usage}
        listed = await call(self._volumes.List, volumes_pb2.ListVolumesRequest())
        out = []
        for v in listed.volumes:
            u = by_name.get(v.name)
            out.append(volume_json(v, usage=(u.size, u.ref_count) if u else (-1, len(v.users))))
        return out
