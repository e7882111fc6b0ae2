"""NetworksService: the gRPC face of `NetworkManager` (and of the container manager for
connect and disconnect, which change container records).

Owns: request validation and pb2 conversion for network calls. Must not: touch the
kernel, SQL or the records itself.
"""

from __future__ import annotations

import time
from typing import Any

from pallet.daemon.api import convert
from pallet.daemon.api.errors import Ctx, unary
from pallet.daemon.containers.manager import ContainerManager
from pallet.daemon.networks import filters
from pallet.daemon.networks.manager import NetworkManager
from pallet.daemon.networks.model import Network
from pallet.v1 import networks_pb2 as pb
from pallet.v1 import networks_pb2_grpc as pb_grpc


class NetworksServicer(pb_grpc.NetworksServiceServicer):
    #: The proto service served (the server names it to health checking and reflection).
    SERVICE = pb.DESCRIPTOR.services_by_name["NetworksService"].full_name

    def add_to_server(self, server: Any) -> None:
        pb_grpc.add_NetworksServiceServicer_to_server(self, server)

    def __init__(self, networks: NetworkManager, containers: ContainerManager) -> None:
        self._networks = networks
        self._containers = containers

    def _network(self, n: Network) -> pb.Network:
        endpoints = []
        for cid, name, lease, ep in self._networks.endpoints(n.id):
            endpoints.append(pb.Endpoint(
                container_id=cid,
                container_name=name,
                ipv4_address=f"{lease.address}/{n.network.prefixlen}" if lease else "",
                mac_address=lease.mac if lease else "",
                aliases=ep.aliases,
                interface=lease.ifname if lease else "",
                host_interface=lease.host_ifname if lease else "",
            ))
        return pb.Network(
            id=n.id, name=n.name, driver=n.driver, subnet=n.subnet, gateway=n.gateway,
            ip_range=n.ip_range, internal=n.internal, labels=dict(n.labels),
            options=dict(n.options), created=convert.timestamp(n.created_ns),
            endpoints=endpoints, bridge=n.bridge, builtin=n.builtin,
        )

    @unary
    async def Create(self, request: pb.CreateNetworkRequest, context: Ctx) -> pb.CreateNetworkResponse:
        n = await self._networks.create(
            request.name, request.driver, request.subnet, request.gateway, request.ip_range,
            request.internal, dict(request.labels), dict(request.options),
        )
        return pb.CreateNetworkResponse(id=n.id)

    @unary
    async def List(self, request: pb.ListNetworksRequest, context: Ctx) -> pb.ListNetworksResponse:
        terms = filters.parse(list(request.filters))
        found = [
            n for n in self._networks.networks()
            if filters.matches(n, terms, bool(self._networks.endpoints(n.id)))
        ]
        return pb.ListNetworksResponse(networks=[self._network(n) for n in found])

    @unary
    async def Inspect(self, request: pb.InspectNetworkRequest, context: Ctx) -> pb.InspectNetworkResponse:
        return pb.InspectNetworkResponse(network=self._network(self._networks.resolve(request.network)))

    @unary
    async def Remove(self, request: pb.RemoveNetworkRequest, context: Ctx) -> pb.RemoveNetworkResponse:
        await self._networks.remove(request.network)
        return pb.RemoveNetworkResponse()

    @unary
    async def Connect(self, request: pb.ConnectNetworkRequest, context: Ctx) -> pb.ConnectNetworkResponse:
        await self._containers.connect(
            request.network, request.container, tuple(request.aliases), request.ipv4_address
        )
        return pb.ConnectNetworkResponse()

    @unary
    async def Disconnect(
        self, request: pb.DisconnectNetworkRequest, context: Ctx
    ) -> pb.DisconnectNetworkResponse:
        await self._containers.disconnect(request.network, request.container, request.force)
        return pb.DisconnectNetworkResponse()

    @unary
    async def Prune(self, request: pb.PruneNetworksRequest, context: Ctx) -> pb.PruneNetworksResponse:
        terms = filters.parse(list(request.filters), filters.PRUNE_KEYS)
        now = time.time_ns()
        removed = await self._networks.prune(lambda n: filters.matches(n, terms, False, now))
        return pb.PruneNetworksResponse(removed=removed)
