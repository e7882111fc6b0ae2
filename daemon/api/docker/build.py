"""Docker API build endpoints: `POST /build` (the classic builder's: `DOCKER_BUILDKIT=0
docker build`, docker-py's `images.build`) and `POST /build/prune`.

Owns: Docker's build query (t, dockerfile, buildargs, labels, target, nocache, pull,
networkmode, platform, q, ...) and `X-Registry-Config` as pallet's BuildOptions; the
request body (the context's tar, plain or compressed as Docker allows) streamed into the
Builds servicer as it comes; the build's progress as the classic builder's JSON stream
("Step 1/3 : FROM busybox", " ---> 1a2b3c4d5e6f", the RUN output, the aux ID, "Successfully
built", "Successfully tagged"). Must not: read the context or judge the options (the
servicer and the builder do).
"""

from __future__ import annotations

import bz2
import codecs
import json
import lzma
import re
import zlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

from aiohttp import web

from pallet.daemon.api.docker import gateway
from pallet.daemon.api.docker.calls import bad_request, query_bool, stream
from pallet.daemon.api.docker.images import (
    auth_config,
    body_chunks,
    json_stream,
    registry_host,
    _b64_json,
)
from pallet.daemon.api.docker.services import Servicers
from pallet.v1 import builds_pb2, images_pb2
from pallet.v1.docker import images as shapes

# A failed RUN's message names its exit code, which dockerd sends as the error's code
# (the docker CLI exits with it).
_EXIT_CODE = re.compile(r"returned a non-zero code: (\d+)")
# Query arguments of build that only BuildKit or Windows have; their defaults are fine.
_SUPPORTED_PLATFORM = "linux/amd64"


class _Decompressor(Protocol):
    def decompress(self, data: bytes) -> bytes: ...


def _decompressor(head: bytes) -> _Decompressor | None:
    """How to read a context that starts with `head`: gzip, bzip2 and xz as dockerd
    reads them (None: a plain tar)."""
    if head[:2] == b"\x1f\x8b":
        return zlib.decompressobj(wbits=31)
    if head[:3] == b"BZh":
        return bz2.BZ2Decompressor()
    if head[:6] == b"\xfd7zXZ\x00":
        return lzma.LZMADecompressor()
    return None


async def context_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The request body as the uncompressed tar the builder takes."""
    decompressor: _Decompressor | None = None
    started = False
    async for chunk in body_chunks(request):
        if not started:
            started = True
            decompressor = _decompressor(chunk)
        if decompressor is None:
            yield chunk
            continue
        try:
            data = decompressor.decompress(chunk)
        except (zlib.error, OSError, lzma.LZMAError, EOFError) as exc:
            raise bad_request(f"the build context is not a valid compressed tar: {exc}") from None
        if data:
            yield data


def _json_arg(request: web.Request, name: str) -> Any:
    raw = request.query.get(name, "")
    if not raw or raw == "null":
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise bad_request(f"invalid {name} {raw!r}: expected JSON") from None


def _string_map(request: web.Request, name: str, nullable: bool) -> dict[str, str | None]:
    value = _json_arg(request, name) or {}
    if not isinstance(value, dict) or not all(
        isinstance(v, str) or (nullable and v is None) for v in value.values()
    ):
        kind = "strings or null" if nullable else "strings"
        raise bad_request(f"invalid {name}: expected a JSON object of names to {kind}")
    return value


def build_options(request: web.Request) -> builds_pb2.BuildOptions:
    """Docker's build query string and X-Registry-Config as pallet's BuildOptions."""
    if request.query.get("remote"):
        raise bad_request(
            "remote build contexts (a URL or git repository) are not fetched by palletd: "
            "send the context as the request body")
    cache_from = _json_arg(request, "cachefrom")
    if cache_from:
        raise bad_request(
            "cachefrom is not supported: pallet's builder takes its cache from the images "
            "built here (leave it out)")
    extra_hosts = request.query.getall("extrahosts", [])
    if any(extra_hosts):
        raise bad_request(
            "extrahosts is not supported by pallet's builder: RUN steps resolve names "
            "through the build network (leave it out)")
    platform = request.query.get("platform", "")
    if platform and platform not in (_SUPPORTED_PLATFORM, "linux"):
        raise bad_request(f"invalid platform {platform!r}: this daemon builds {_SUPPORTED_PLATFORM} only")
    network = request.query.get("networkmode", "")
    for flag in ("rm", "forcerm", "squash"):
        query_bool(request, flag)  # judged; pallet removes every build container anyway
    if query_bool(request, "squash"):
        raise bad_request("squash is not supported by pallet's builder")
    args = _string_map(request, "buildargs", nullable=True)
    labels = _string_map(request, "labels", nullable=False)
    options = builds_pb2.BuildOptions(
        dockerfile=request.query.get("dockerfile", ""),
        tags=[t for t in request.query.getall("t", []) if t],
        build_args=[builds_pb2.BuildArg(name=k) if v is None else builds_pb2.BuildArg(name=k, value=v)
                    for k, v in args.items()],
        labels={k: v for k, v in labels.items() if v is not None},
        target=request.query.get("target", ""),
        no_cache=query_bool(request, "nocache"),
        pull=query_bool(request, "pull"),
        network="" if network in ("", "default", "bridge") else network,
        platform="" if platform == "linux" else platform,
    )
    for host, auth in registry_config(request.headers.get("X-Registry-Config", "")).items():
        options.registry_auth[host].CopyFrom(auth)
    return options


def registry_config(header: str) -> dict[str, images_pb2.RegistryAuth]:
    """Docker's X-Registry-Config: base64url JSON of registry address to AuthConfig."""
    decoded = _b64_json(header, "X-Registry-Config")
    if decoded is None:
        return {}
    if not isinstance(decoded, dict) or not all(isinstance(v, dict) for v in decoded.values()):
        raise bad_request("invalid X-Registry-Config header: expected base64 of a JSON object "
                          "of registry addresses to credentials")
    out: dict[str, images_pb2.RegistryAuth] = {}
    for address, config in decoded.items():
        auth = auth_config(config, "X-Registry-Config")
        if auth.username or auth.password or auth.identity_token:
            out[registry_host(address)] = auth
    return out


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _familiar(reference: str) -> str:
    for prefix in ("docker.io/library/", "docker.io/"):
        if reference.startswith(prefix):
            return reference[len(prefix):]
    return reference


def _error_code(message: str) -> int:
    found = _EXIT_CODE.search(message)
    return int(found.group(1)) if found else 1


class BuildEndpoints:
    def __init__(self, services: Servicers) -> None:
        self._builds = services.builds
        self._images = services.images

    def register(self, routes: gateway.Routes) -> None:
        routes.post("/build", self.build)

    async def build(self, request: web.Request) -> web.StreamResponse:
        options = build_options(request)
        quiet = query_bool(request, "q")
        return await json_stream(request, self._messages(request, options, quiet), _error_code)

    async def _requests(self, request: web.Request,
                        options: builds_pb2.BuildOptions) -> AsyncIterator[builds_pb2.BuildRequest]:
        yield builds_pb2.BuildRequest(options=options)
        size = 0
        async for chunk in context_chunks(request):
            size += len(chunk)
            yield builds_pb2.BuildRequest(chunk=chunk)
        yield builds_pb2.BuildRequest(end=images_pb2.UploadEnd(size=size))

    async def _messages(self, request: web.Request, options: builds_pb2.BuildOptions,
                        quiet: bool) -> AsyncIterator[dict[str, Any]]:
        items = stream(self._builds.Build, self._requests(request, options))
        # RUN output arrives in pieces that may split a character: decoded per stream.
        decoders = {1: codecs.getincrementaldecoder("utf-8")("replace"),
                    2: codecs.getincrementaldecoder("utf-8")("replace")}
        try:
            async for item in items:
                if item.WhichOneof("payload") == "result":
                    result = item.result
                    yield {"aux": {"ID": result.image_id}}
                    if quiet:
                        yield shapes.stream_message(result.image_id + "\n")
                        continue
                    yield shapes.stream_message(f"Successfully built {_short(result.image_id)}\n")
                    for tag in result.tags:
                        yield shapes.stream_message(f"Successfully tagged {_familiar(tag)}\n")
                    continue
                if quiet:
                    continue
                text = _progress_text(item.progress, decoders)
                if text:
                    yield shapes.stream_message(text)
        finally:
            await items.aclose()  # type: ignore[attr-defined]


def _progress_text(p: builds_pb2.BuildProgress, decoders: dict[int, Any]) -> str:
    state = p.state
    if state == builds_pb2.BUILD_STEP_STATE_STARTED:
        return p.text + "\n"
    if state == builds_pb2.BUILD_STEP_STATE_CACHED:
        return " ---> Using cache\n"
    if state == builds_pb2.BUILD_STEP_STATE_OUTPUT:
        decoder = decoders.get(p.stream or 1, decoders[1])
        return str(decoder.decode(p.data))
    if state == builds_pb2.BUILD_STEP_STATE_DONE:
        return f" ---> {_short(p.image_id)}\n" if p.image_id else ""
    if state == builds_pb2.BUILD_STEP_STATE_INFO:
        return p.text.rstrip("\n") + "\n"
    return ""
