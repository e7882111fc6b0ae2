"""Docker API streaming container endpoints: attach (hijacked and websocket), exec
(create, start, resize, inspect), resize, archive (HEAD/GET/PUT for `docker cp`), export
and stats.

Owns: Docker's requests as pallet's Attach/Exec/archive/stats requests, the bytes of a
hijacked session both ways (stdin from the client; output raw for a terminal, in 8-byte
frames otherwise), the client's half-close as the end of stdin where dockerd closes it
(a StdinOnce container's, an exec's), detach keys, and Docker's JSON of each reply. Must
not: run, attach to or copy anything itself (the Containers servicer does all of it), nor
keep any state of its own: an exec instance is the servicer's.

A client that goes away mid-session ends the servicer's stream as a gRPC client's
cancel does: its cleanup (stdin closed where it must be, the attachment let go, the exec
followed to its end by its watcher) is the servicer's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any, Generic, TypeVar

from aiohttp import WSMsgType, web

from pallet.daemon.api.docker import gateway
from pallet.daemon.api.docker.calls import (
    ApiError,
    bad_request,
    call,
    field,
    first,
    json_response,
    query_bool,
    query_int,
    read_json,
    stream,
)
from pallet.daemon.api.docker.hijack import (
    MULTIPLEXED_STREAM,
    RAW_STREAM,
    DetachEscape,
    Hijacked,
    RawConnection,
    detach_keys,
    frame,
    hijack,
)
from pallet.daemon.api.docker.services import Servicers
from pallet.v1 import containers_pb2 as pb
from pallet.v1 import images_pb2
from pallet.v1.docker.archive import path_stat_header, rfc3339_nano
from pallet.v1.docker.execs import exec_json
from pallet.v1.docker.stats import stats_json

Msg = TypeVar("Msg")

# Stdin messages queued for the servicer before the client's reads wait.
_STDIN_QUEUED = 16


class _Requests(Generic[Msg]):
    """A client stream for an in-process streaming call: messages the handler puts."""

    _END: Any = object()

    def __init__(self, opening: Msg) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(_STDIN_QUEUED)
        self._queue.put_nowait(opening)

    async def put(self, message: Msg) -> None:
        await self._queue.put(message)

    async def end(self) -> None:
        await self._queue.put(self._END)

    def __aiter__(self) -> _Requests[Msg]:
        return self

    async def __anext__(self) -> Msg:
        item = await self._queue.get()
        if item is self._END:
            self._queue.put_nowait(item)  # ended for every later read too
            raise StopAsyncIteration
        message: Msg = item
        return message


def _console_size(body: dict[str, Any]) -> tuple[int, int]:
    size = field(body, "ConsoleSize", list, [])
    if not size:
        return 0, 0
    if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                 for v in size):
        raise bad_request(f"invalid ConsoleSize: {size!r}: expected [height, width]")
    return size[0], size[1]


def _strings(body: dict[str, Any], name: str) -> list[str]:
    values = field(body, name, list, [])
    if not all(isinstance(v, str) for v in values):
        raise bad_request(f"invalid {name}: {values!r}: expected an array of strings")
    return list(values)


def _required_int(request: web.Request, name: str) -> int:
    value = query_int(request, name)
    if value is None:
        raise bad_request(f"missing {name}: give the terminal's {'rows' if name == 'h' else 'columns'}")
    return value


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise bad_request("bad parameter: path cannot be empty")
    return path


class _Session:
    """One hijacked (or websocket) session: output to the client until the process ends,
    the client's input as stdin messages, until either side ends it."""

    def __init__(
        self,
        items: AsyncIterator[Any],
        requests: _Requests[Any],
        *,
        stdin_message: type,
        tty: bool,
        stdout: bool,
        stderr: bool,
        keys: bytes,
        stdin: bool,
        close_stdin_at_eof: bool,
    ) -> None:
        self.items = items
        self.stdin = stdin
        self.requests = requests
        self.stdin_message = stdin_message
        self.tty = tty
        self.stdout = stdout
        self.stderr = stderr
        self.escape = DetachEscape(keys) if tty else None
        self.close_stdin_at_eof = close_stdin_at_eof

    async def output(self, send: Any) -> None:
        async for reply in self.items:
            if reply.WhichOneof("payload") == "exit":
                return
            if reply.WhichOneof("payload") != "output":
                continue
            chunk = reply.output
            number = 2 if chunk.stream == pb.STREAM_STDERR else 1
            if (number == 1 and not self.stdout) or (number == 2 and not self.stderr):
                continue
            await send(chunk.data if self.tty else frame(number, chunk.data))

    async def input(self, receive: Any) -> bool:
        """Forward the client's bytes; True when it detached, False at its end of input."""
        while True:
            data = await receive()
            if not data:
                if self.close_stdin_at_eof:
                    await self.requests.put(self.stdin_message(close_stdin=True))
                return False
            if self.escape is not None:
                data, detached = self.escape.feed(data)
                if data:
                    await self.requests.put(self.stdin_message(stdin=data))
                if detached:
                    return True
            else:
                await self.requests.put(self.stdin_message(stdin=data))

    async def run(self, send: Any, receive: Any | None, gone: Any) -> None:
        """Until the output ends (the process exited), the client detaches or goes."""
        writer = asyncio.create_task(self.output(send))
        lost = asyncio.create_task(gone())
        reader = asyncio.create_task(self.input(receive)) if receive is not None else None
        waiting = {writer, lost} | ({reader} if reader is not None else set())
        try:
            while True:
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if writer in done or lost in done:
                    return
                if reader is not None and reader in done:
                    if reader.cancelled() or reader.exception() is not None or reader.result():
                        return  # detached (or the servicer stopped taking stdin)
                    waiting.discard(reader)  # end of input: the output goes on
        finally:
            tasks = [t for t in (writer, lost, reader) if t is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class StreamEndpoints:
    def __init__(self, services: Servicers) -> None:
        self._c = services.containers

    def register(self, routes: gateway.Routes) -> None:
        routes.post("/containers/{id}/attach", self.attach)
        routes.get("/containers/{id}/attach/ws", self.attach_ws)
        routes.post("/containers/{id}/exec", self.exec_create)
        routes.post("/exec/{id}/start", self.exec_start)
        routes.post("/exec/{id}/resize", self.exec_resize)
        routes.get("/exec/{id}/json", self.exec_inspect)
        routes.post("/containers/{id}/resize", self.resize)
        routes.get("/containers/{id}/archive", self.get_archive)  # and HEAD
        routes.put("/containers/{id}/archive", self.put_archive)
        routes.get("/containers/{id}/export", self.export)
        routes.get("/containers/{id}/stats", self.stats)

    # -- attach -------------------------------------------------------------------------

    async def _open_attach(
        self, request: web.Request
    ) -> tuple[pb.Container, _Session | None, bool, bool, bool]:
        """Docker's attach arguments as an Attach stream, opened (its errors answered
        before anything of the session is sent)."""
        ref = request.match_info["id"]
        logs = query_bool(request, "logs")
        live = query_bool(request, "stream")
        stdin = query_bool(request, "stdin")
        stdout = query_bool(request, "stdout")
        stderr = query_bool(request, "stderr")
        keys = detach_keys(request.query.get("detachKeys", ""))
        if not (logs or live):
            raise bad_request("Bad parameters: you must choose at least one stream")
        c = (await call(self._c.Inspect, pb.InspectContainerRequest(container=ref))).container
        stdin = stdin and c.config.open_stdin
        if not live:
            return c, None, logs, stdout, stderr
        requests: _Requests[pb.AttachRequest] = _Requests(pb.AttachRequest(
            open=pb.AttachOpen(container=c.id, stdin=stdin, stdout=stdout, stderr=stderr)
        ))
        items = stream(self._c.Attach, requests)
        try:
            await first(items)  # ready: attached (or waiting for its start)
        except BaseException:
            await items.aclose()  # type: ignore[attr-defined]
            raise
        session = _Session(
            items, requests, stdin_message=pb.AttachRequest, tty=c.config.tty,
            stdout=stdout, stderr=stderr, keys=keys, stdin=stdin,
            close_stdin_at_eof=stdin and c.config.stdin_once and not c.config.tty,
        )
        return c, session, logs, stdout, stderr

    async def _replay_logs(self, c: pb.Container, stdout: bool, stderr: bool,
                           send: Any) -> None:
        """attach's `logs`: what the container wrote before, first."""
        if not (stdout or stderr):
            return
        items = stream(self._c.Logs, pb.LogsRequest(container=c.id, tail=-1, stdout=stdout,
                                                    stderr=stderr))
        async for batch in items:
            for chunk in batch.chunks:
                number = 2 if chunk.stream == pb.STREAM_STDERR else 1
                await send(chunk.data if c.config.tty else frame(number, chunk.data))

    async def attach(self, request: web.Request) -> web.StreamResponse:
        c, session, logs, stdout, stderr = await self._open_attach(request)
        try:
            conn = hijack(request, RAW_STREAM if c.config.tty else MULTIPLEXED_STREAM,
                          gateway.docker_headers())
            try:
                with contextlib.suppress(ConnectionError):
                    if logs:
                        await self._replay_logs(c, stdout, stderr, conn.write)
                    if session is not None:
                        await session.run(conn.write, conn.read if session.stdin else None,
                                          conn.wait_closed)
            finally:
                conn.close()
        finally:
            if session is not None:
                await session.items.aclose()  # type: ignore[attr-defined]
        return Hijacked()

    async def attach_ws(self, request: web.Request) -> web.StreamResponse:
        c, session, logs, stdout, stderr = await self._open_attach(request)
        ws = web.WebSocketResponse()
        try:
            await ws.prepare(request)
            received: asyncio.Queue[bytes] = asyncio.Queue()

            async def send(data: bytes) -> None:
                if ws.closed:
                    raise ConnectionResetError("the client closed the websocket")
                await ws.send_bytes(data)

            async def pump() -> None:
                # The websocket's messages as the session's input; b"" at its close.
                try:
                    async for msg in ws:
                        if msg.type == WSMsgType.BINARY:
                            await received.put(msg.data)
                        elif msg.type == WSMsgType.TEXT:
                            await received.put(msg.data.encode())
                finally:
                    await received.put(b"")

            reading = asyncio.create_task(pump())
            closed = asyncio.Event()
            reading.add_done_callback(lambda _: closed.set())
            try:
                # Docker's websocket attach sends each stream's bytes unframed.
                if session is not None:
                    session.tty = True
                    session.escape = None if not c.config.tty else session.escape
                with contextlib.suppress(ConnectionError):
                    if logs:
                        await self._replay_logs(_unframed(c), stdout, stderr, send)
                    if session is not None:
                        await session.run(send, received.get if session.stdin else None,
                                          closed.wait)
            finally:
                reading.cancel()
                await asyncio.gather(reading, return_exceptions=True)
                await ws.close()
        finally:
            if session is not None:
                await session.items.aclose()  # type: ignore[attr-defined]
        return ws

    # -- exec ---------------------------------------------------------------------------

    async def exec_create(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        height, width = _console_size(body)
        keys = field(body, "DetachKeys", str, "")
        detach_keys(keys)  # refused now, as dockerd does, when it is malformed
        process = pb.ExecProcess(
            cmd=_strings(body, "Cmd"),
            env=_strings(body, "Env"),
            working_dir=field(body, "WorkingDir", str, ""),
            user=field(body, "User", str, ""),
            stdin=field(body, "AttachStdin", bool, False),
            stdout=field(body, "AttachStdout", bool, False),
            stderr=field(body, "AttachStderr", bool, False),
            tty=field(body, "Tty", bool, False),
            privileged=field(body, "Privileged", bool, False),
            detach_keys=keys,
            console_height=height,
            console_width=width,
        )
        reply = await call(self._c.CreateExec, pb.CreateExecRequest(
            container=request.match_info["id"], process=process))
        return json_response({"Id": reply.exec_id}, status=201)

    async def _exec(self, exec_id: str) -> pb.ExecInstance:
        return (await call(self._c.InspectExec, pb.InspectExecRequest(exec_id=exec_id))).exec

    async def exec_inspect(self, request: web.Request) -> web.Response:
        return json_response(exec_json(await self._exec(request.match_info["id"])))

    async def exec_start(self, request: web.Request) -> web.StreamResponse:
        exec_id = request.match_info["id"]
        body = await read_json(request, optional=True)
        detach = field(body, "Detach", bool, False)
        field(body, "Tty", bool, False)  # the created exec's Tty holds (as dockerd)
        height, width = _console_size(body)
        info = await self._exec(exec_id)
        if info.running or info.HasField("exit"):
            state = "is already running" if info.running else "has already run"
            raise ApiError(409, f"exec instance {exec_id} {state}: create another one")
        p = info.process
        requests: _Requests[pb.ExecRequest] = _Requests(pb.ExecRequest(open=pb.ExecOpen(
            exec_id=exec_id, console_height=height, console_width=width)))
        items = stream(self._c.Exec, requests)
        try:
            if detach:
                await first(items)  # started (or its error, answered with its status)
                # It runs on; nobody takes its output (docker's `exec -d`).
                return web.Response(status=200)
            # The head goes out before the process starts, as dockerd sends it: a client
            # that reads the head through a buffer of its own (docker-py) and then the
            # socket under it would lose output that came in the head's read.
            conn = hijack(request, RAW_STREAM if p.tty else MULTIPLEXED_STREAM,
                          gateway.docker_headers())
            session = _Session(
                items, requests, stdin_message=pb.ExecRequest, tty=p.tty, stdout=p.stdout,
                stderr=p.stderr, keys=detach_keys(p.detach_keys), stdin=p.stdin,
                # dockerd closes an exec's stdin at the end of the client's input.
                close_stdin_at_eof=True,
            )
            try:
                with contextlib.suppress(ConnectionError):
                    try:
                        await first(items)  # started
                    except ApiError as exc:
                        # After the head, dockerd's way: the error as the stream's text
                        # (the exec's inspect has its exit code).
                        text = exc.message.encode() + b"\r\n"
                        await conn.write(text if p.tty else frame(1, text))
                        return Hijacked()
                    await session.run(conn.write, conn.read if p.stdin else None,
                                      conn.wait_closed)
            finally:
                conn.close()
            return Hijacked()
        finally:
            await items.aclose()  # type: ignore[attr-defined]

    async def exec_resize(self, request: web.Request) -> web.Response:
        height = _required_int(request, "h")
        width = _required_int(request, "w")
        info = await self._exec(request.match_info["id"])
        await call(self._c.Resize, pb.ResizeRequest(
            container=info.container_id, exec_id=info.id, height=height, width=width))
        return web.Response(status=200)

    async def resize(self, request: web.Request) -> web.Response:
        height = _required_int(request, "h")
        width = _required_int(request, "w")
        await call(self._c.Resize, pb.ResizeRequest(
            container=request.match_info["id"], height=height, width=width))
        return web.Response(status=200)

    # -- files --------------------------------------------------------------------------

    async def get_archive(self, request: web.Request) -> web.StreamResponse:
        ref, path = request.match_info["id"], _path(request)
        header = "X-Docker-Container-Path-Stat"
        if request.method == "HEAD":
            reply = await call(self._c.StatPath, pb.StatPathRequest(container=ref, path=path))
            return web.Response(status=200, headers={header: path_stat_header(reply.stat),
                                                     "Content-Type": "application/json"})
        items = stream(self._c.GetArchive, pb.GetArchiveRequest(container=ref, path=path))
        try:
            opening = await first(items)
            headers = {"Content-Type": "application/x-tar"}
            if opening is not None and opening.WhichOneof("payload") == "stat":
                headers[header] = path_stat_header(opening.stat)
            response = web.StreamResponse(headers=headers)
            await response.prepare(request)
            if opening is not None and opening.WhichOneof("payload") == "chunk":
                await response.write(opening.chunk)
            async for piece in items:
                await response.write(piece.chunk)
            await response.write_eof()
            return response
        finally:
            await items.aclose()  # type: ignore[attr-defined]

    async def put_archive(self, request: web.Request) -> web.Response:
        header = pb.PutArchiveHeader(
            container=request.match_info["id"], path=_path(request),
            copy_uid_gid=query_bool(request, "copyUIDGID"),
            no_overwrite_dir_non_dir=query_bool(request, "noOverwriteDirNonDir"),
        )

        async def upload() -> AsyncIterator[pb.PutArchiveRequest]:
            yield pb.PutArchiveRequest(header=header)
            size = 0
            async for chunk in request.content.iter_any():
                size += len(chunk)
                yield pb.PutArchiveRequest(chunk=chunk)
            # The body's end as the client sent it (aiohttp checks its length): whole.
            yield pb.PutArchiveRequest(end=images_pb2.UploadEnd(size=size))

        await call(self._c.PutArchive, upload())
        return web.Response(status=200)

    async def export(self, request: web.Request) -> web.StreamResponse:
        items = stream(self._c.Export, pb.ExportContainerRequest(
            container=request.match_info["id"]))
        try:
            opening = await first(items)
            response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
            await response.prepare(request)
            if opening is not None:
                await response.write(opening.chunk)
                async for piece in items:
                    await response.write(piece.chunk)
            await response.write_eof()
            return response
        finally:
            await items.aclose()  # type: ignore[attr-defined]

    # -- stats --------------------------------------------------------------------------

    async def stats(self, request: web.Request) -> web.StreamResponse:
        live = query_bool(request, "stream", True)
        one_shot = query_bool(request, "one-shot")
        if one_shot and live:
            raise bad_request("cannot have stream=true and one-shot=true")
        ref = request.match_info["id"]
        # Without one-shot, a single sample has its predecessor's counters (precpu), as
        # dockerd's does: the second of a stream's samples, a second later.
        items = stream(self._c.Stats, pb.StatsRequest(containers=[ref], stream=not one_shot))
        try:
            sample = await first(items)
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            preread = ""
            while sample is not None:
                s = sample.stats[0]
                if live or one_shot or s.pre_system_cpu_ns or not s.running:
                    await response.write(json.dumps(stats_json(s, preread, one_shot)).encode() + b"\n")
                    if not live:
                        break
                preread = _time(s)
                sample = await first(items)
            await response.write_eof()
            return response
        finally:
            await items.aclose()  # type: ignore[attr-defined]


def _time(s: pb.ContainerStats) -> str:
    return rfc3339_nano(int(s.read.seconds), int(s.read.nanos))


def _unframed(c: pb.Container) -> pb.Container:
    """A copy of `c` that says tty: its log replay is unframed (the websocket's form)."""
    copy = pb.Container()
    copy.CopyFrom(c)
    copy.config.tty = True
    return copy
