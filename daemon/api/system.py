"""SystemService: version, info, ping and disk usage.

Owns: assembling the daemon's description from `SystemInfo`. Must not: count objects
itself beyond asking the managers.
"""

from __future__ import annotations

from typing import Any

from pallet.daemon.api import convert
from pallet.daemon.api.errors import Ctx, unary
from pallet.daemon.images.model import Usage
from pallet.daemon.system import DISK_USAGE_KINDS, SystemInfo
from pallet.v1 import system_pb2 as pb
from pallet.v1 import system_pb2_grpc as pb_grpc



class SystemServicer(pb_grpc.SystemServiceServicer):
    #: The proto service served (the server names it to health checking and reflection).
    SERVICE = pb.DESCRIPTOR.services_by_name["SystemService"].full_name

    def add_to_server(self, server: Any) -> None:
        pb_grpc.add_SystemServiceServicer_to_server(self, server)

    def __init__(self, system: SystemInfo) -> None:
        self._system = system

    @unary
    async def Version(self, request: pb.VersionRequest, context: Ctx) -> pb.VersionResponse:
        v = self._system.version()
        return pb.VersionResponse(
            version=v.version,
            api_version=v.api_version,
            python_version=v.python_version,
            os=v.os,
            arch=v.arch,
            kernel_version=v.kernel_version,
            git_commit=v.git_commit,
        )

    @unary
    async def Info(self, request: pb.InfoRequest, context: Ctx) -> pb.InfoResponse:
        i = await self._system.info()
        return pb.InfoResponse(
            containers=i.containers,
            containers_running=i.running,
            containers_paused=i.paused,
            containers_stopped=i.stopped,
            images=i.images,
            server_version=i.version.version,
            root_dir=i.root_dir,
            run_root=i.run_root,
            storage_driver=i.storage_driver,
            cgroup_version=i.cgroup_version,
            kernel_version=i.version.kernel_version,
            operating_system=i.operating_system,
            arch=i.version.arch,
            ncpu=i.ncpu,
            mem_total=i.mem_total,
            name=i.name,
            last_event_seq=i.last_event_seq,
            started_at=convert.timestamp(i.started_at_ns),
        )

    @unary
    async def Ping(self, request: pb.PingRequest, context: Ctx) -> pb.PingResponse:
        return pb.PingResponse(api_version=self._system.version().api_version)

    @unary
    async def DiskUsage(self, request: pb.DiskUsageRequest, context: Ctx) -> pb.DiskUsageResponse:
        kinds = tuple(request.types) or DISK_USAGE_KINDS
        usage = await self._system.disk_usage(kinds)
        reply = pb.DiskUsageResponse(
            images=_summary(usage.images),
            containers=_summary(usage.containers),
            volumes=_summary(usage.volumes),
        )
        if request.verbose:
            reply.image_usage.extend(
                pb.ImageUsage(image_id=i.image_id, size=i.size, shared_size=i.shared_size,
                              containers=i.containers)
                for i in usage.by_image
            )
            reply.container_usage.extend(
                pb.ContainerUsage(container_id=c.container_id, size_rw=c.size_rw,
                                  size_root_fs=c.size_root_fs)
                for c in usage.by_container
            )
            reply.volume_usage.extend(
                pb.VolumeUsage(name=v.name, size=v.size, ref_count=v.ref_count)
                for v in usage.by_volume
            )
        return reply


def _summary(u: Usage) -> pb.UsageSummary:
    return pb.UsageSummary(total=u.total, active=u.active, size=u.size, reclaimable=u.reclaimable)
