"""Docker API container endpoints: create, list, inspect, the lifecycle verbs, wait,
remove, rename, update, top, changes, prune and logs.

Owns: Docker's query arguments and bodies of these endpoints as Containers servicer
requests, and the servicer's replies as Docker's JSON, statuses (201, 204, 304) and
streams (logs in Docker's multiplexed frames, raw for a TTY). Must not: do any of it
itself (the servicer does); attach, exec, archive, export, stats and resize are
`streams`'.
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Any

from aiohttp import web

from pallet.daemon.api.docker import gateway
from pallet.daemon.api.docker.calls import (
    ApiError,
    bad_request,
    call,
    filter_strings,
    first,
    json_response,
    query_bool,
    query_filters,
    query_int,
    read_json,
    stream,
)
from pallet.daemon.api.docker.createbody import Body, config_from_body, resources_into
from pallet.daemon.api.docker.services import Servicers
from pallet.v1 import containers_pb2 as pb
from pallet.v1.docker.containers import container_summary, inspect_container
from pallet.v1.docker.times import nano_text

_NO_CONTENT = 204
_NOT_MODIFIED = 304
# Docker's changes Kind: 0 modified, 1 added, 2 deleted.
_CHANGE_KINDS = {pb.CHANGE_KIND_MODIFIED: 0, pb.CHANGE_KIND_ADDED: 1, pb.CHANGE_KIND_DELETED: 2}
# The stream byte of a multiplexed frame.
_FRAME_STREAM = {pb.STREAM_STDOUT: 1, pb.STREAM_STDERR: 2}
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW_STREAM = "application/vnd.docker.raw-stream"


def _empty(status: int = _NO_CONTENT) -> web.Response:
    return web.Response(status=status)


def _time_arg(request: web.Request, name: str) -> int | None:
    """Docker's `since`/`until` of logs: unix seconds with up to nine decimals, as
    nanoseconds; absent or 0: None."""
    text = request.query.get(name, "")
    if not text:
        return None
    seconds, _, fraction = text.partition(".")
    if not seconds.isdigit() or (fraction and not fraction.isdigit()) or len(fraction) > 9:
        raise bad_request(
            f"invalid value for {name}: {text!r}: expected a unix timestamp (seconds, "
            "optionally with nanoseconds: 1700000000.000000001)"
        )
    ns = int(seconds) * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))
    return ns or None


def frame(stream_byte: int, data: bytes) -> bytes:
    """One frame of Docker's multiplexed stream: stream, three zero bytes, the length
    (big-endian uint32), the data."""
    return struct.pack(">BxxxI", stream_byte, len(data)) + data


class _Timestamps:
    """`timestamps=1`: each line of each stream begins with the time it was written."""

    def __init__(self) -> None:
        self._line_start: dict[int, bool] = {}

    def feed(self, stream_id: int, time_ns: int, data: bytes) -> bytes:
        stamp = nano_text(time_ns // 1_000_000_000, time_ns % 1_000_000_000).encode() + b" "
        out = bytearray()
        at_start = self._line_start.get(stream_id, True)
        for line in data.splitlines(keepends=True):
            if at_start:
                out += stamp
            out += line
            at_start = line.endswith(b"\n")
        self._line_start[stream_id] = at_start
        return bytes(out)


class ContainerEndpoints:
    def __init__(self, services: Servicers) -> None:
        self._containers = services.containers

    def register(self, routes: gateway.Routes) -> None:
        routes.post("/containers/create", self.create)
        routes.get("/containers/json", self.list)
        routes.post("/containers/prune", self.prune)
        routes.get("/containers/{id}/json", self.inspect)
        routes.post("/containers/{id}/start", self.start)
        routes.post("/containers/{id}/stop", self.stop)
        routes.post("/containers/{id}/restart", self.restart)
        routes.post("/containers/{id}/kill", self.kill)
        routes.post("/containers/{id}/pause", self.pause)
        routes.post("/containers/{id}/unpause", self.unpause)
        routes.post("/containers/{id}/wait", self.wait)
        routes.delete("/containers/{id}", self.remove)
        routes.post("/containers/{id}/rename", self.rename)
        routes.post("/containers/{id}/update", self.update)
        routes.get("/containers/{id}/top", self.top)
        routes.get("/containers/{id}/changes", self.changes)
        routes.get("/containers/{id}/logs", self.logs)

    # ---- create, list, inspect ---------------------------------------------------------

    async def create(self, request: web.Request) -> web.Response:
        platform = request.query.get("platform", "")
        if platform and not platform.startswith("linux"):
            raise bad_request(f"invalid platform {platform!r}: pallet runs linux containers")
        config = config_from_body(await read_json(request), request.query.get("name", ""))
        try:
            reply = await call(self._containers.Create, pb.CreateContainerRequest(config=config))
        except ApiError as exc:
            if exc.status == 404 and exc.message.startswith("No such image"):
                # dockerd's words: the docker CLI and docker-py then pull the image.
                raise ApiError(404, f"No such image: {config.image}") from None
            raise
        return json_response({"Id": reply.id, "Warnings": list(reply.warnings)}, status=201)

    async def list(self, request: web.Request) -> web.Response:
        limit = query_int(request, "limit", 0) or 0
        if limit < -1:
            raise bad_request(f"invalid value for limit: {limit}: give -1 (all), 0 or more")
        reply = await call(self._containers.List, pb.ListContainersRequest(
            all=query_bool(request, "all"),
            filters=filter_strings(query_filters(request)),
            size=query_bool(request, "size"),
            limit=max(limit, 0),
        ))
        now = time.time()
        return json_response([container_summary(c, now) for c in reply.containers])

    async def inspect(self, request: web.Request) -> web.Response:
        reply = await call(self._containers.Inspect, pb.InspectContainerRequest(
            container=request.match_info["id"], size=query_bool(request, "size"),
        ))
        return json_response(inspect_container(reply.container))

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self, request: web.Request) -> web.Response:
        reply = await call(self._containers.Start,
                           pb.StartContainerRequest(container=request.match_info["id"]))
        return _empty(_NOT_MODIFIED if reply.already_running else _NO_CONTENT)

    def _stop_args(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = {"container": request.match_info["id"],
                                "signal": request.query.get("signal", "")}
        timeout = query_int(request, "t")
        if timeout is not None:
            if timeout < -1:
                raise bad_request(f"invalid value for t: {timeout}: give seconds, or -1 to wait for ever")
            # docker's -1: wait for the stop signal to end it, however long.
            args["timeout"] = 2**31 - 1 if timeout == -1 else timeout
        return args

    async def stop(self, request: web.Request) -> web.Response:
        reply = await call(self._containers.Stop, pb.StopContainerRequest(**self._stop_args(request)))
        return _empty(_NOT_MODIFIED if reply.already_stopped else _NO_CONTENT)

    async def restart(self, request: web.Request) -> web.Response:
        await call(self._containers.Restart, pb.RestartContainerRequest(**self._stop_args(request)))
        return _empty()

    async def kill(self, request: web.Request) -> web.Response:
        await call(self._containers.Kill, pb.KillContainerRequest(
            container=request.match_info["id"], signal=request.query.get("signal", ""),
        ))
        return _empty()

    async def pause(self, request: web.Request) -> web.Response:
        await call(self._containers.Pause, pb.PauseContainerRequest(container=request.match_info["id"]))
        return _empty()

    async def unpause(self, request: web.Request) -> web.Response:
        await call(self._containers.Unpause,
                   pb.UnpauseContainerRequest(container=request.match_info["id"]))
        return _empty()

    async def wait(self, request: web.Request) -> web.StreamResponse:
        """dockerd's wait: an unknown container or condition is answered at once with its
        error; else the headers go out as soon as the wait is in place (`docker run` starts
        the container once it has them) and the body when the wait is over."""
        condition = request.query.get("condition", "")
        waiting = asyncio.ensure_future(call(self._containers.Wait, pb.WaitContainerRequest(
            container=request.match_info["id"], condition=condition,
        )))
        try:
            # One turn of the loop: the call runs to its first suspension, which is after
            # the wait is registered (ContainerManager.wait), or ends with its error.
            await asyncio.sleep(0)
            if waiting.done():
                return json_response(_wait_body(waiting.result()))
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            try:
                body = _wait_body(await waiting)
            except ApiError as exc:
                body = {"StatusCode": -1, "Error": {"Message": exc.message}}
            await response.write(json_response(body).body)  # type: ignore[arg-type]
            await response.write_eof()
            return response
        finally:
            if not waiting.done():
                waiting.cancel()

    async def remove(self, request: web.Request) -> web.Response:
        if query_bool(request, "link"):
            raise bad_request(
                "link: pallet has no legacy links to remove: containers on a user network "
                "resolve each other by name"
            )
        await call(self._containers.Remove, pb.RemoveContainerRequest(
            container=request.match_info["id"],
            force=query_bool(request, "force"),
            volumes=query_bool(request, "v"),
        ))
        return _empty()

    async def rename(self, request: web.Request) -> web.Response:
        name = request.query.get("name", "")
        if not name:
            raise bad_request("name: give the container's new name (?name=NEW)")
        await call(self._containers.Rename, pb.RenameContainerRequest(
            container=request.match_info["id"], name=name,
        ))
        return _empty()

    async def update(self, request: web.Request) -> web.Response:
        body = Body(await read_json(request), "")
        update = pb.UpdateContainerRequest(container=request.match_info["id"])
        resources_into(body, update.resources)
        for key in ("Devices", "Ulimits"):
            body.unsupported(key, why="docker update cannot change it either")
        policy = body.object("RestartPolicy")
        if policy.data:
            update.restart_policy.name = policy.text("Name")
            update.restart_policy.maximum_retry_count = policy.integer("MaximumRetryCount") or 0
        reply = await call(self._containers.Update, update)
        return json_response({"Warnings": list(reply.warnings)})

    # ---- what runs in it, what it changed ------------------------------------------------

    async def top(self, request: web.Request) -> web.Response:
        reply = await call(self._containers.Top, pb.TopContainerRequest(
            container=request.match_info["id"],
            ps_args=request.query.get("ps_args", "").split(),
        ))
        return json_response({
            "Titles": list(reply.titles),
            "Processes": [list(p.fields) for p in reply.processes],
        })

    async def changes(self, request: web.Request) -> web.Response:
        reply = await call(self._containers.Diff,
                           pb.DiffContainerRequest(container=request.match_info["id"]))
        return json_response(
            [{"Path": c.path, "Kind": _CHANGE_KINDS[c.kind]} for c in reply.changes] or None
        )

    async def prune(self, request: web.Request) -> web.Response:
        reply = await call(self._containers.Prune, pb.PruneContainersRequest(
            filters=filter_strings(query_filters(request)),
        ))
        return json_response({
            "ContainersDeleted": list(reply.deleted) or None,
            "SpaceReclaimed": int(reply.space_reclaimed),
        })

    # ---- logs --------------------------------------------------------------------------

    async def logs(self, request: web.Request) -> web.StreamResponse:
        ref = request.match_info["id"]
        stdout, stderr = query_bool(request, "stdout"), query_bool(request, "stderr")
        if not (stdout or stderr):
            raise bad_request("Bad parameters: you must choose at least one stream")
        logs = pb.LogsRequest(container=ref, follow=query_bool(request, "follow"),
                              stdout=stdout, stderr=stderr, tail=_tail(request))
        since, until = _time_arg(request, "since"), _time_arg(request, "until")
        if since is not None:
            logs.since.FromNanoseconds(since)
        if until is not None:
            logs.until.FromNanoseconds(until)
        container = (await call(self._containers.Inspect,
                                pb.InspectContainerRequest(container=ref))).container
        tty = container.config.tty
        logs.container = container.id
        items = stream(self._containers.Logs, logs)
        try:
            batch = await first(items)  # a bad request is still answered with its status
            content_type = MULTIPLEXED if not tty and gateway.api_version(request) >= (1, 42) else RAW_STREAM
            response = web.StreamResponse(headers={"Content-Type": content_type})
            await response.prepare(request)
            stamps = _Timestamps() if query_bool(request, "timestamps") else None
            while batch is not None:
                out = bytearray()
                for chunk in batch.chunks:
                    data = bytes(chunk.data)
                    if stamps is not None:
                        data = stamps.feed(chunk.stream, chunk.time_unix_nano, data)
                    out += data if tty else frame(_FRAME_STREAM.get(chunk.stream, 1), data)
                if out:
                    await response.write(bytes(out))
                batch = await first(items)
            await response.write_eof()
            return response
        finally:
            await items.aclose()  # type: ignore[attr-defined]


def _tail(request: web.Request) -> int:
    text = request.query.get("tail", "all")
    if text in ("all", ""):
        return -1
    if not text.lstrip("-").isdigit():
        raise bad_request(f"invalid value for tail: {text!r}: give a number of lines or \"all\"")
    return max(int(text), -1)


def _wait_body(reply: pb.WaitContainerResponse) -> dict[str, Any]:
    return {
        "StatusCode": int(reply.exit_code),
        "Error": {"Message": reply.error} if reply.error else None,
    }
