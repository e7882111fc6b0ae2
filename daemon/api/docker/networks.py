"""Docker API network endpoints: list, inspect, create, remove, connect, disconnect, prune.

Owns: reading Docker's network requests (`NetworkCreateRequest`, `NetworkConnect`,
`NetworkDisconnect`) into the Networks servicer's, refusing with a 400 what pallet's
networks cannot be (IPv6, several subnets, swarm scopes, ingress, config-only networks,
links), and dockerd's wording and statuses of the answers. Must not: create, attach or
look up networks itself (the Networks servicer does).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pallet.daemon.api.docker import gateway
from pallet.daemon.api.docker.calls import (
    ApiError,
    bad_request,
    call,
    field,
    filter_strings,
    json_response,
    query_filters,
    read_json,
)
from pallet.daemon.api.docker.services import Servicers
from pallet.v1 import networks_pb2 as pb
from pallet.v1.docker.networks import network_json

#: The IPAM drivers that name pallet's own address management.
_IPAM_DRIVERS = ("", "default")


def string_map(body: dict[str, Any], name: str) -> dict[str, str]:
    """`body[name]` as a map of strings to strings (null or absent: empty), else a 400."""
    value = field(body, name, dict, {})
    for key, item in value.items():
        if not isinstance(item, str):
            raise bad_request(f"invalid {name}: the value of {key!r} must be a string, not {item!r}")
    return dict(value)


def _refuse_true(body: dict[str, Any], name: str, why: str) -> None:
    if field(body, name, bool, False):
        raise bad_request(f"{name} is not supported: {why}")


def _ipam(body: dict[str, Any]) -> tuple[str, str, str]:
    """(subnet, gateway, ip range) of Docker's IPAM object: one IPv4 pool at most."""
    ipam = field(body, "IPAM", dict, {})
    driver = field(ipam, "Driver", str, "")
    if driver not in _IPAM_DRIVERS:
        raise bad_request(f"invalid IPAM.Driver {driver!r}: pallet has the default IPAM driver only")
    if field(ipam, "Options", dict, {}):
        raise bad_request("IPAM.Options are not supported: the default IPAM driver takes none")
    pools = field(ipam, "Config", list, [])
    if len(pools) > 1:
        raise bad_request(
            f"IPAM.Config has {len(pools)} pools: a pallet network has one IPv4 subnet"
        )
    if not pools:
        return "", "", ""
    pool = pools[0]
    if not isinstance(pool, dict):
        raise bad_request(f"invalid IPAM.Config[0]: {pool!r}: expected an object")
    if field(pool, "AuxiliaryAddresses", dict, {}) or field(pool, "AuxAddress", dict, {}):
        raise bad_request("IPAM.Config[0].AuxiliaryAddresses are not supported by pallet's IPAM")
    subnet = field(pool, "Subnet", str, "")
    if ":" in subnet:
        raise bad_request(f"invalid IPAM.Config[0].Subnet {subnet}: pallet networks are IPv4 only")
    return subnet, field(pool, "Gateway", str, ""), field(pool, "IPRange", str, "")


def create_request(body: dict[str, Any]) -> pb.CreateNetworkRequest:
    """Docker's NetworkCreateRequest as pallet's, or a 400 naming what pallet cannot make."""
    name = field(body, "Name", str, "")
    if not name:
        raise bad_request("invalid Name: a network needs a name")
    scope = field(body, "Scope", str, "")
    if scope not in ("", "local"):
        raise bad_request(f"invalid Scope {scope!r}: pallet networks are local to this host")
    _refuse_true(body, "EnableIPv6", "pallet networks are IPv4 only")
    if field(body, "EnableIPv4", bool, True) is False:
        raise bad_request("EnableIPv4 false is not supported: pallet networks are IPv4 networks")
    _refuse_true(body, "Ingress", "an ingress network needs swarm mode")
    _refuse_true(body, "ConfigOnly", "pallet has no config-only networks")
    config_from = field(body, "ConfigFrom", dict, {})
    if field(config_from, "Network", str, ""):
        raise bad_request("ConfigFrom is not supported: pallet has no config-only networks")
    subnet, gateway_ip, ip_range = _ipam(body)
    return pb.CreateNetworkRequest(
        name=name,
        driver=field(body, "Driver", str, ""),
        subnet=subnet,
        gateway=gateway_ip,
        ip_range=ip_range,
        internal=field(body, "Internal", bool, False),
        labels=string_map(body, "Labels"),
        options=string_map(body, "Options"),
    )


def connect_request(network: str, body: dict[str, Any]) -> pb.ConnectNetworkRequest:
    """Docker's NetworkConnect as pallet's: the aliases and a static IPv4 address."""
    container = field(body, "Container", str, "")
    if not container:
        raise bad_request("invalid Container: name the container to connect")
    endpoint = field(body, "EndpointConfig", dict, {})
    ipam = field(endpoint, "IPAMConfig", dict, {})
    if field(ipam, "IPv6Address", str, ""):
        raise bad_request("EndpointConfig.IPAMConfig.IPv6Address is not supported: pallet networks are IPv4 only")
    if field(ipam, "LinkLocalIPs", list, []):
        raise bad_request("EndpointConfig.IPAMConfig.LinkLocalIPs are not supported by pallet")
    if field(endpoint, "Links", list, []):
        raise bad_request(
            "EndpointConfig.Links are not supported: containers on a user network reach each "
            "other by name (use Aliases for more names)"
        )
    if field(endpoint, "MacAddress", str, ""):
        raise bad_request("EndpointConfig.MacAddress is not supported: pallet chooses the MAC address")
    if field(endpoint, "DriverOpts", dict, {}):
        raise bad_request("EndpointConfig.DriverOpts are not supported by pallet's bridge driver")
    aliases = field(endpoint, "Aliases", list, [])
    if not all(isinstance(a, str) for a in aliases):
        raise bad_request(f"invalid EndpointConfig.Aliases: {aliases!r}: expected strings")
    return pb.ConnectNetworkRequest(
        network=network,
        container=container,
        aliases=aliases,
        ipv4_address=field(ipam, "IPv4Address", str, ""),
    )


def _not_found_as_dockerd(exc: ApiError, ref: str) -> ApiError:
    """pallet's "network x not found: …" as dockerd's words; any other error unchanged."""
    if exc.status == 404 and exc.message.startswith(f"network {ref} not found"):
        return ApiError(404, f"network {ref} not found")
    return exc


class NetworkEndpoints:
    def __init__(self, services: Servicers) -> None:
        self._networks = services.networks

    def register(self, routes: gateway.Routes) -> None:
        routes.get("/networks", self.list)
        routes.post("/networks/create", self.create)
        routes.post("/networks/prune", self.prune)
        routes.get("/networks/{id}", self.inspect)
        routes.delete("/networks/{id}", self.remove)
        routes.post("/networks/{id}/connect", self.connect)
        routes.post("/networks/{id}/disconnect", self.disconnect)

    async def list(self, request: web.Request) -> web.Response:
        filters = filter_strings(query_filters(request))
        reply = await call(self._networks.List, pb.ListNetworksRequest(filters=filters))
        return json_response([network_json(n, containers=False) for n in reply.networks])

    async def inspect(self, request: web.Request) -> web.Response:
        ref = request.match_info["id"]
        scope = request.query.get("scope", "")
        if scope not in ("", "local", "global", "swarm"):
            raise bad_request(f"invalid scope {scope!r}: use local, global or swarm")
        if scope in ("global", "swarm"):
            # Every pallet network is local: none is found in another scope (dockerd's 404).
            raise ApiError(404, f"network {ref} not found")
        try:
            reply = await call(self._networks.Inspect, pb.InspectNetworkRequest(network=ref))
        except ApiError as exc:
            raise _not_found_as_dockerd(exc, ref) from None
        # `verbose` adds swarm services and peers, which a local network never has.
        return json_response(network_json(reply.network))

    async def create(self, request: web.Request) -> web.Response:
        create = create_request(await read_json(request))
        reply = await call(self._networks.Create, create)
        return json_response({"Id": reply.id, "Warning": ""}, status=201)

    async def remove(self, request: web.Request) -> web.Response:
        ref = request.match_info["id"]
        try:
            await call(self._networks.Remove, pb.RemoveNetworkRequest(network=ref))
        except ApiError as exc:
            if exc.status == 409:
                # dockerd refuses a network in use or built in as forbidden.
                raise ApiError(403, exc.message) from None
            raise _not_found_as_dockerd(exc, ref) from None
        return web.Response(status=204)

    async def connect(self, request: web.Request) -> web.Response:
        ref = request.match_info["id"]
        connect = connect_request(ref, await read_json(request))
        try:
            await call(self._networks.Connect, connect)
        except ApiError as exc:
            raise _not_found_as_dockerd(exc, ref) from None
        return web.Response(status=200)

    async def disconnect(self, request: web.Request) -> web.Response:
        ref = request.match_info["id"]
        body = await read_json(request)
        container = field(body, "Container", str, "")
        if not container:
            raise bad_request("invalid Container: name the container to disconnect")
        disconnect = pb.DisconnectNetworkRequest(
            network=ref, container=container, force=field(body, "Force", bool, False)
        )
        try:
            await call(self._networks.Disconnect, disconnect)
        except ApiError as exc:
            raise _not_found_as_dockerd(exc, ref) from None
        return web.Response(status=200)

    async def prune(self, request: web.Request) -> web.Response:
        filters = filter_strings(query_filters(request))
        reply = await call(self._networks.Prune, pb.PruneNetworksRequest(filters=filters))
        return json_response({"NetworksDeleted": list(reply.removed)})
