"""Docker API system endpoints: `_ping`, version, info, events, auth, and the swarm
endpoints of a daemon that is not part of a swarm.

Owns: Docker's JSON of pallet's version, info and events, and streaming events as JSON
lines. Must not: gather any of it itself (the System, Events and Images servicers do).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from pallet.daemon.api.docker import gateway
from pallet.daemon.api.docker.calls import (
    ApiError,
    bad_request,
    call,
    field,
    json_response,
    filter_strings,
    query_filters,
    read_json,
    stream,
)
from pallet.daemon.api.docker.services import Servicers
from pallet.v1 import events_pb2, images_pb2, system_pb2
from pallet.v1.docker.events import event_json_fields

# What a daemon outside a swarm answers on every swarm endpoint (dockerd's words).
NOT_A_SWARM = (
    "This node is not part of a swarm. Use \"docker swarm init\" or \"docker swarm join\" "
    "to connect this node to swarm and try again."
)
# How long `GET /events` waits for the stream's start before sending its headers.
FIRST_EVENT_WAIT_S = 0.05
_SWARM_PATHS = ("/swarm", "/services", "/nodes", "/tasks", "/secrets", "/configs")

_PING_HEADERS = {
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
    # The classic builder: `docker build` with DOCKER_BUILDKIT=0 talks to /build.
    "Builder-Version": "1",
    "Swarm": "inactive",
}


def _timestamp(text: str, name: str) -> int:
    """Docker's `since`/`until`: unix seconds, with up to nine decimals; as nanoseconds."""
    seconds, _, fraction = text.partition(".")
    if not seconds.lstrip("-").isdigit() or (fraction and not fraction.isdigit()) or len(fraction) > 9:
        raise bad_request(
            f"invalid value for {name}: {text!r}: expected a unix timestamp (seconds, "
            "optionally with nanoseconds: 1700000000.000000001)"
        )
    ns = int(seconds) * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))
    return max(ns, 0)


class SystemEndpoints:
    def __init__(self, services: Servicers) -> None:
        self._system = services.system
        self._events = services.events
        self._images = services.images

    def register(self, routes: gateway.Routes) -> None:
        routes.get("/_ping", self.ping)
        routes.get("/version", self.version)
        routes.get("/info", self.info)
        routes.get("/events", self.events)
        routes.post("/auth", self.auth)
        for path in _SWARM_PATHS:
            for method in ("GET", "POST"):
                routes.add(method, path, self.not_a_swarm)
                routes.add(method, path + "/{rest:.*}", self.not_a_swarm)
            routes.add("DELETE", path + "/{rest:.*}", self.not_a_swarm)

    async def ping(self, request: web.Request) -> web.Response:
        return web.Response(text="OK", headers=_PING_HEADERS)

    async def version(self, request: web.Request) -> web.Response:
        v = await call(self._system.Version, system_pb2.VersionRequest())
        details = {
            "ApiVersion": gateway.API_VERSION,
            "Arch": v.arch,
            "BuildTime": "",
            "Experimental": "false",
            "GitCommit": v.git_commit,
            "GoVersion": f"python{v.python_version}",
            "KernelVersion": v.kernel_version,
            "MinAPIVersion": gateway.MIN_API_VERSION,
            "Os": v.os,
        }
        return json_response({
            "Platform": {"Name": "pallet"},
            "Components": [{"Name": "Engine", "Version": v.version, "Details": details}],
            "Version": v.version,
            "ApiVersion": gateway.API_VERSION,
            "MinAPIVersion": gateway.MIN_API_VERSION,
            "GitCommit": v.git_commit,
            "GoVersion": f"python{v.python_version}",
            "Os": v.os,
            "Arch": v.arch,
            "KernelVersion": v.kernel_version,
            "BuildTime": "",
        })

    async def info(self, request: web.Request) -> web.Response:
        i = await call(self._system.Info, system_pb2.InfoRequest())
        return json_response(info_json(i))

    async def auth(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        auth = images_pb2.RegistryAuth(
            username=field(body, "username", str, ""),
            password=field(body, "password", str, ""),
            identity_token=field(body, "identitytoken", str, ""),
        )
        registry = field(body, "serveraddress", str, "")
        registry = _registry_host(registry)
        reply = await call(self._images.Login, images_pb2.LoginRequest(registry=registry, auth=auth))
        return json_response({"Status": reply.status or "Login Succeeded", "IdentityToken": ""})

    async def events(self, request: web.Request) -> web.StreamResponse:
        sub = events_pb2.SubscribeRequest(filters=filter_strings(query_filters(request)))
        since = request.query.get("since", "")
        until = request.query.get("until", "")
        if since:
            sub.since.FromNanoseconds(_timestamp(since, "since"))
        if until:
            # Until a moment already past: the history up to it, then the end.
            sub.until.FromNanoseconds(_timestamp(until, "until"))
        items = stream(self._events.Subscribe, sub)
        # A bad filter or range fails the stream's first step: waited for briefly, so it
        # is answered with its 400; the first event itself may be long in coming, and the
        # headers go out without it.
        pending = asyncio.ensure_future(items.__anext__())
        try:
            await asyncio.wait([pending], timeout=FIRST_EVENT_WAIT_S)
            if pending.done() and pending.exception() is not None:
                exc = pending.exception()
                if not isinstance(exc, StopAsyncIteration):
                    raise exc  # type: ignore[misc]
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            try:
                data = await pending
            except StopAsyncIteration:
                data = None
            if data is not None:
                await response.write(_event_line(data))
                async for data in items:
                    await response.write(_event_line(data))
            await response.write_eof()
            return response
        finally:
            if not pending.done():
                pending.cancel()
            await items.aclose()  # type: ignore[attr-defined]

    async def not_a_swarm(self, request: web.Request) -> web.Response:
        raise ApiError(503, NOT_A_SWARM)


def _event_line(data: bytes) -> bytes:
    event = events_pb2.SubscribeResponse.FromString(data).event
    return json.dumps(event_json_fields(event), separators=(",", ":")).encode() + b"\n"


def _registry_host(address: str) -> str:
    """`https://host:port/v1/` and friends as the host[:port] pallet names a registry by;
    Docker Hub's addresses as the empty name pallet gives it."""
    host = address
    for scheme in ("https://", "http://"):
        if host.startswith(scheme):
            host = host[len(scheme):]
    host = host.split("/", 1)[0]
    if host in ("index.docker.io", "registry-1.docker.io", "docker.io"):
        return ""
    return host


def info_json(i: Any) -> dict[str, Any]:
    """Docker's `GET /info` of pallet's InfoResponse."""
    return {
        "ID": i.name,
        "Containers": i.containers,
        "ContainersRunning": i.containers_running,
        "ContainersPaused": i.containers_paused,
        "ContainersStopped": i.containers_stopped,
        "Images": i.images,
        "Driver": i.storage_driver,
        "DriverStatus": [],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "null"],
            "Authorization": None,
            "Log": ["json-file"],
        },
        "MemoryLimit": True,
        "SwapLimit": True,
        "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "CPUShares": True,
        "CPUSet": True,
        "PidsLimit": True,
        "IPv4Forwarding": True,
        "Debug": False,
        "NFd": 0,
        "OomKillDisable": False,
        "NGoroutines": 0,
        "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": i.cgroup_version,
        "NEventsListener": 0,
        "KernelVersion": i.kernel_version,
        "OperatingSystem": i.operating_system,
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": i.arch,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "AllowNondistributableArtifactsCIDRs": None,
            "AllowNondistributableArtifactsHostnames": None,
            "InsecureRegistryCIDRs": ["127.0.0.0/8", "::1/128"],
            "IndexConfigs": {},
            "Mirrors": [],
        },
        "NCPU": i.ncpu,
        "MemTotal": i.mem_total,
        "GenericResources": None,
        "DockerRootDir": i.root_dir,
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": i.name,
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": i.server_version,
        "Runtimes": {"pallet-shim": {"path": "pallet-shim"}},
        "DefaultRuntime": "pallet-shim",
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": False,
            "Error": "",
            "RemoteManagers": None,
        },
        "LiveRestoreEnabled": True,
        "Isolation": "",
        "InitBinary": "docker-init",
        "ContainerdCommit": {"ID": ""},
        "RuncCommit": {"ID": ""},
        "InitCommit": {"ID": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": [],
    }
