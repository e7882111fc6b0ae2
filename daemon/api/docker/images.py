"""Docker API image endpoints: list, inspect, history, tag, remove, prune, search, pull
and import (`/images/create`), push, save (`get`), load, and commit.

Owns: Docker's query strings, headers (`X-Registry-Auth`) and bodies of these endpoints
as the Images and Containers servicers' requests, and their replies as Docker's JSON
(`pallet.v1.docker.images`), streamed as dockerd streams them. Must not: do any of the
work (the servicers do), or parse references (the servicers judge them).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Callable
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
    read_json,
    stream,
)
from pallet.daemon.api.docker.services import Servicers
from pallet.v1 import containers_pb2, images_pb2
from pallet.v1.docker import images as shapes
from pallet.v1.errors import PalletError

# What `docker search` meets: pallet keeps no index of images to search.
NO_SEARCH = (
    "search is not available: pallet has no image index to search (there is no Docker "
    "Hub here); name the image and its registry, e.g. docker pull host:5000/name:tag"
)
# Size of the pieces a request body is passed on in.
CHUNK = 1 << 20


def registry_auth(header: str, name: str = "X-Registry-Auth") -> images_pb2.RegistryAuth:
    """Docker's `X-Registry-Auth`: base64url of a JSON AuthConfig (username, password or
    auth = base64 "user:password", identitytoken); absent: anonymous."""
    decoded = _b64_json(header, name)
    if decoded is None:
        return images_pb2.RegistryAuth()
    if not isinstance(decoded, dict):
        raise bad_request(f"invalid {name} header: expected base64 of a JSON object")
    return auth_config(decoded, name)


def auth_config(decoded: dict[str, Any], name: str) -> images_pb2.RegistryAuth:
    def text(key: str) -> str:
        value = decoded.get(key) or ""
        if not isinstance(value, str):
            raise bad_request(f"invalid {name}: {key} must be a string")
        return value

    username, password = text("username"), text("password")
    if not username and text("auth"):
        try:
            pair = base64.b64decode(text("auth"), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise bad_request(f"invalid {name}: auth must be base64 of user:password") from None
        username, _, password = pair.partition(":")
    return images_pb2.RegistryAuth(
        username=username, password=password, identity_token=text("identitytoken")
    )


def registry_host(address: str) -> str:
    """A registry address as Docker writes it in credentials (`https://host:port/v1/`)
    as the host[:port] pallet names a registry by; Docker Hub's as the empty name."""
    host = address
    for scheme in ("https://", "http://"):
        host = host.removeprefix(scheme)
    host = host.split("/", 1)[0]
    return "" if host in ("index.docker.io", "registry-1.docker.io", "docker.io") else host


def _b64_json(header: str, name: str) -> Any:
    header = header.strip()
    if not header:
        return None
    # dockerd decodes base64url; clients that send standard base64 are read too.
    padded = header.replace("+", "-").replace("/", "_") + "=" * (-len(header) % 4)
    try:
        return json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError):
        raise bad_request(f"invalid {name} header: expected base64 of a JSON object") from None


async def body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The request's body as it comes, in pieces of at most CHUNK bytes."""
    while True:
        chunk = await request.content.read(CHUNK)
        if not chunk:
            return
        yield chunk


async def upload(request: web.Request, message: Callable[..., Any],
                 head: Any = None) -> AsyncIterator[Any]:
    """An upload stream of the request's body: `head` first when given, each piece as
    `message(chunk=…)`, then `message(end=…)` with the byte count, sent only once the
    whole body arrived (a client that went away mid-body ends the stream without it:
    nothing is stored)."""
    if head is not None:
        yield head
    size = 0
    async for chunk in body_chunks(request):
        size += len(chunk)
        yield message(chunk=chunk)
    yield message(end=images_pb2.UploadEnd(size=size))


async def json_stream(request: web.Request, messages: AsyncIterator[dict[str, Any]],
                      error_code: Callable[[str], int] | None = None) -> web.StreamResponse:
    """Docker's JSON message stream. An error before the first message is answered with
    its own status; one after is a last `errorDetail` message (the docker CLI prints it
    and exits non-zero)."""
    try:
        opening = await first(messages)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            if opening is not None:
                await response.write(shapes.line(opening))
                async for message in messages:
                    await response.write(shapes.line(message))
        except (ApiError, PalletError) as exc:
            text = exc.message
            code = error_code(text) if error_code is not None else 0
            await response.write(shapes.line(shapes.error_message(text, code)))
        await response.write_eof()
        return response
    finally:
        await messages.aclose()  # type: ignore[attr-defined]


def _reference(repo: str, tag: str) -> str:
    """Docker's repo and tag arguments as one reference (a digest `tag` too)."""
    if not tag:
        return repo
    return f"{repo}@{tag}" if tag.startswith("sha256:") else f"{repo}:{tag}"


def _has_tag(name: str) -> bool:
    return "@" in name or ":" in name.rsplit("/", 1)[-1]


class ImagesEndpoints:
    def __init__(self, services: Servicers) -> None:
        self._images = services.images
        self._containers = services.containers

    def register(self, routes: gateway.Routes) -> None:
        # Fixed paths before the patterns: an image may be named by slashes and ports.
        routes.get("/images/json", self.list_images)
        routes.post("/images/create", self.create)
        routes.get("/images/search", self.search)
        routes.get("/images/get", self.save_many)
        routes.post("/images/load", self.load)
        routes.post("/images/prune", self.prune)
        routes.post("/commit", self.commit)
        routes.get("/images/{name:.+}/json", self.inspect)
        routes.get("/images/{name:.+}/history", self.history)
        routes.get("/images/{name:.+}/get", self.save_one)
        routes.post("/images/{name:.+}/tag", self.tag)
        routes.post("/images/{name:.+}/push", self.push)
        routes.delete("/images/{name:.+}", self.remove)

    # -- reading ---------------------------------------------------------------------

    async def list_images(self, request: web.Request) -> web.Response:
        filters = query_filters(request)
        legacy = request.query.get("filter")  # API < 1.41: a reference pattern
        if legacy:
            filters.setdefault("reference", []).append(legacy)
        reply = await call(self._images.List, images_pb2.ListImagesRequest(
            all=query_bool(request, "all"), filters=filter_strings(filters)))
        version = gateway.api_version(request)
        return json_response([shapes.image_summary(i, version) for i in reply.images])

    async def inspect(self, request: web.Request) -> web.Response:
        reply = await call(self._images.Inspect,
                           images_pb2.InspectImageRequest(image=request.match_info["name"]))
        return json_response(shapes.inspect_image(reply.image, gateway.api_version(request)))

    async def history(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        image = (await call(self._images.Inspect, images_pb2.InspectImageRequest(image=name))).image
        reply = await call(self._images.History, images_pb2.HistoryRequest(image=image.id))
        return json_response(shapes.history(reply.entries, image.repo_tags))

    async def search(self, request: web.Request) -> web.Response:
        raise ApiError(501, NO_SEARCH)

    # -- names -------------------------------------------------------------------------

    async def tag(self, request: web.Request) -> web.Response:
        repo = request.query.get("repo", "")
        if not repo:
            raise bad_request("tag needs repo (and optionally tag): the new name, e.g. repo=app&tag=v1")
        target = _reference(repo, request.query.get("tag", ""))
        await call(self._images.Tag, images_pb2.TagImageRequest(
            source=request.match_info["name"], target=target))
        return web.Response(status=201)

    async def remove(self, request: web.Request) -> web.Response:
        reply = await call(self._images.Remove, images_pb2.RemoveImageRequest(
            image=request.match_info["name"], force=query_bool(request, "force"),
            no_prune=query_bool(request, "noprune")))
        return json_response(_deletions(reply))

    async def prune(self, request: web.Request) -> web.Response:
        filters = query_filters(request)
        dangling = filters.pop("dangling", [])
        for value in dangling:
            if value.lower() not in ("true", "false", "1", "0"):
                raise bad_request(f"invalid filter 'dangling={value}': use true or false")
        every = any(v.lower() in ("false", "0") for v in dangling)
        reply = await call(self._images.Prune, images_pb2.PruneImagesRequest(
            all=every, filters=filter_strings(filters)))
        return json_response({
            "ImagesDeleted": _deletions(reply) or None,
            "SpaceReclaimed": int(reply.space_reclaimed),
        })

    # -- registries ----------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.StreamResponse:
        source = request.query.get("fromSrc", "")
        image = request.query.get("fromImage", "")
        if source and image:
            raise bad_request("give fromImage (to pull) or fromSrc (to import), not both")
        if source:
            return await self._import(request, source)
        if not image:
            raise bad_request("give fromImage (to pull an image) or fromSrc (to import one)")
        tag = request.query.get("tag", "")
        if not tag and not _has_tag(image):
            raise bad_request(
                f"pulling every tag of {image} is not supported: name the tag (e.g. {image}:latest)")
        pull = images_pb2.PullRequest(
            reference=_reference(image, tag), platform=request.query.get("platform", ""),
            auth=registry_auth(request.headers.get("X-Registry-Auth", "")))
        return await json_stream(request, self._pull_messages(pull))

    async def _pull_messages(self, pull: images_pb2.PullRequest) -> AsyncIterator[dict[str, Any]]:
        items = stream(self._images.Pull, pull)
        try:
            async for item in items:
                if item.WhichOneof("payload") == "progress":
                    yield shapes.progress_message(item.progress)
        finally:
            await items.aclose()  # type: ignore[attr-defined]

    async def _import(self, request: web.Request, source: str) -> web.Response:
        if source != "-":
            raise bad_request(
                f"cannot import from {source!r}: palletd does not fetch URLs; send the tar "
                "as the request body (fromSrc=-), e.g. curl -L URL | docker import - name")
        repo = request.query.get("repo", "")
        tag = request.query.get("tag", "")
        if tag and not repo:
            raise bad_request("tag needs repo: give the image's name too")
        header = images_pb2.ImportHeader(
            reference=_reference(repo, tag), message=request.query.get("message", ""),
            changes=request.query.getall("changes", []))
        reply = await call(self._images.Import, upload(
            request, images_pb2.ImportRequest, images_pb2.ImportRequest(header=header)))
        body = shapes.line({"status": reply.image.id})
        return web.Response(body=body, headers={"Content-Type": "application/json"})

    async def push(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        tag = request.query.get("tag", "")
        auth = registry_auth(request.headers.get("X-Registry-Auth", ""))
        if tag:
            references = [_reference(name, tag)]
        elif _has_tag(name):
            references = [name]
        else:
            references = await self._tags_of(name)
        return await json_stream(request, self._push_messages(references, auth))

    async def _tags_of(self, repository: str) -> list[str]:
        """Every local tag of `repository` (docker push REPO without a tag pushes them all)."""
        listed = await call(self._images.List, images_pb2.ListImagesRequest(
            filters=[f"reference={repository}"]))
        tags = sorted({t for i in listed.images for t in i.repo_tags
                       if t.rsplit(":", 1)[0] == repository})
        if not tags:
            raise ApiError(404, f"An image does not exist locally with the tag: {repository}")
        return tags

    async def _push_messages(self, references: list[str],
                             auth: images_pb2.RegistryAuth) -> AsyncIterator[dict[str, Any]]:
        for reference in references:
            items = stream(self._images.Push, images_pb2.PushRequest(reference=reference, auth=auth))
            try:
                async for item in items:
                    if item.WhichOneof("payload") == "progress":
                        yield shapes.progress_message(item.progress)
                        continue
                    tag = reference.rsplit(":", 1)[1] if _has_tag(reference) else "latest"
                    yield {"status": f"{tag}: digest: {item.digest} size: {item.size}"}
                    yield {"progressDetail": {},
                           "aux": {"Tag": tag, "Digest": item.digest, "Size": int(item.size)}}
            finally:
                await items.aclose()  # type: ignore[attr-defined]

    # -- archives ------------------------------------------------------------------------

    async def save_one(self, request: web.Request) -> web.StreamResponse:
        return await self._save(request, [request.match_info["name"]])

    async def save_many(self, request: web.Request) -> web.StreamResponse:
        names = request.query.getall("names", [])
        if not names:
            raise bad_request("give the images to save: names=NAME (repeatable)")
        return await self._save(request, names)

    async def _save(self, request: web.Request, names: list[str]) -> web.StreamResponse:
        items = stream(self._images.Save, images_pb2.SaveRequest(images=names))
        try:
            opening = await first(items)  # an unknown image is a 404, not a broken tar
            response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
            await response.prepare(request)
            if opening is not None:
                await response.write(opening.chunk)
                async for item in items:
                    await response.write(item.chunk)
            await response.write_eof()
            return response
        finally:
            await items.aclose()  # type: ignore[attr-defined]

    async def load(self, request: web.Request) -> web.Response:
        query_bool(request, "quiet")  # progress is not streamed either way; judged all the same
        reply = await call(self._images.Load, upload(request, images_pb2.LoadRequest))
        lines = [shapes.stream_message(f"Loaded image: {r}\n") for r in reply.references]
        named = {i.id for i in reply.images if i.repo_tags}
        lines += [shapes.stream_message(f"Loaded image ID: {i.id}\n")
                  for i in reply.images if i.id not in named and not reply.references]
        body = b"".join(shapes.line(m) for m in lines)
        return web.Response(body=body, headers={"Content-Type": "application/json"})

    async def commit(self, request: web.Request) -> web.Response:
        container = request.query.get("container", "")
        if not container:
            raise bad_request("commit needs container: the container to commit")
        repo = request.query.get("repo", "")
        tag = request.query.get("tag", "")
        if tag and not repo:
            raise bad_request("tag needs repo: give the image's name too")
        config = await read_json(request, optional=True)
        changes = config_changes(config) + request.query.getall("changes", [])
        commit = containers_pb2.CommitContainerRequest(
            container=container, reference=_reference(repo, tag), changes=changes,
            comment=request.query.get("comment", ""), author=request.query.get("author", ""),
            pause=query_bool(request, "pause", True))
        reply = await call(self._containers.Commit, commit)
        return json_response({"Id": reply.id}, status=201)


def _deletions(reply: Any) -> list[dict[str, str]]:
    return ([{"Untagged": u} for u in reply.untagged] + [{"Deleted": d} for d in reply.deleted])


def config_changes(config: dict[str, Any]) -> list[str]:
    """A commit's `Config` body (what it sets over the container's config) as the
    Dockerfile-form changes a commit takes; fields it does not set are left out."""
    changes: list[str] = []

    def strings(key: str) -> list[str] | None:
        value = config.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad_request(f"invalid Config.{key}: expected an array of strings")
        return value

    def mapping(key: str) -> dict[str, Any]:
        value = config.get(key) or {}
        if not isinstance(value, dict):
            raise bad_request(f"invalid Config.{key}: expected an object")
        return value

    def text(key: str) -> str:
        value = config.get(key) or ""
        if not isinstance(value, str):
            raise bad_request(f"invalid Config.{key}: expected a string")
        return value

    for key, instruction in (("Entrypoint", "ENTRYPOINT"), ("Cmd", "CMD")):
        args = strings(key)
        if args:
            changes.append(f"{instruction} {json.dumps(args)}")
    for item in strings("Env") or ():
        name, sep, env_value = item.partition("=")
        if not name or not sep:
            raise bad_request(f"invalid Config.Env entry {item!r}: expected NAME=value")
        changes.append(f"ENV {name}={json.dumps(env_value)}")
    for name, value in mapping("Labels").items():
        if not isinstance(value, str):
            raise bad_request(f"invalid Config.Labels[{name!r}]: expected a string")
        changes.append(f"LABEL {json.dumps(name)}={json.dumps(value)}")
    for port in mapping("ExposedPorts"):
        changes.append(f"EXPOSE {port}")
    volumes = list(mapping("Volumes"))
    if volumes:
        changes.append(f"VOLUME {json.dumps(volumes)}")
    for key, instruction in (("WorkingDir", "WORKDIR"), ("User", "USER"),
                             ("StopSignal", "STOPSIGNAL")):
        setting = text(key)
        if setting:
            changes.append(f"{instruction} {setting}")
    return changes
