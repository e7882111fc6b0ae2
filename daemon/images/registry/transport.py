"""The HTTP side of the OCI distribution spec, over httpx.

Owns: one `RegistryClient` per operation and repository: authentication on 401 (basic or
bearer challenge, retried once), manifests by tag or digest, blob existence, ranged blob
downloads, uploads (cross-repository mount, monolithic or chunked), manifest upload, and
turning every HTTP or network failure into a pallet error that names the registry.
Must not: store anything or verify digests (the fetcher and puller do).

`RegistryTransport` is the protocol the puller and pusher use, so tests can fake it.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urljoin

import httpx

from pallet.v1.errors import FailedPrecondition, InvalidArgument, NotFound, PalletError, Unavailable
from pallet.daemon.images import oci
from pallet.daemon.images.model import Credentials
from pallet.daemon.images.registry.auth import TokenCache, fetch_token, parse_challenges
from pallet.daemon.images.registry.endpoint import Endpoint

MAX_MANIFEST = 4 << 20
ACCEPT = ", ".join(
    [oci.OCI_INDEX, oci.DOCKER_MANIFEST_LIST, oci.OCI_MANIFEST, oci.DOCKER_MANIFEST]
)
#: Blobs at least this big are uploaded in chunks of this size (PATCH), smaller ones in one PUT.
CHUNK_UPLOAD = 32 << 20


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 15.0
    read: float = 60.0


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    data: bytes
    media_type: str
    digest: str  # what the registry said (Docker-Content-Digest), may be ""


class BlobBody(Protocol):
    """A stream of blob bytes, starting at `offset` of `total`."""

    offset: int
    total: int

    def chunks(self) -> AsyncIterator[bytes]: ...


class RegistryTransport(Protocol):
    endpoint: Endpoint

    async def ping(self) -> None: ...

    async def get_manifest(self, reference: str) -> FetchedManifest: ...

    async def blob_exists(self, digest: str) -> bool: ...

    def blob(self, digest: str, offset: int = 0) -> contextlib.AbstractAsyncContextManager[BlobBody]: ...

    async def mount_blob(self, digest: str, source_repository: str) -> bool: ...

    async def upload_blob(
        self, digest: str, size: int, open_chunks: Callable[[], AsyncIterator[bytes]]
    ) -> None: ...

    async def put_manifest(self, reference: str, data: bytes, media_type: str) -> str: ...


class _Body:
    def __init__(self, response: httpx.Response, offset: int, total: int) -> None:
        self._response = response
        self.offset = offset
        self.total = total

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_bytes(1 << 20):
                yield chunk
        except httpx.HTTPError as exc:
            raise Unavailable(f"blob download broke off: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "the registry stopped answering (timed out)"
    return str(exc) or type(exc).__name__


def _registry_errors(response: httpx.Response) -> str:
    try:
        doc = json.loads(response.content[:65536])
        errors = doc.get("errors") if isinstance(doc, dict) else None
        if isinstance(errors, list) and errors:
            parts = []
            for err in errors:
                if isinstance(err, dict):
                    code = str(err.get("code", "")).lower().replace("_", " ")
                    parts.append(f"{code}: {err.get('message', '')}".strip(": "))
            if parts:
                return "; ".join(parts)
    except (ValueError, httpx.HTTPError):
        pass
    if b"HTTP request to an HTTPS server" in response.content[:1024]:
        return (
            "it speaks HTTPS, not plain HTTP: put its CA in the registry certs directory "
            "(<dir>/<host:port>/ca.crt)"
        )
    return f"HTTP {response.status_code}"


class RegistryClient:
    """One repository on one registry, with the caller's credentials."""

    def __init__(
        self,
        endpoint: Endpoint,
        credentials: Credentials = Credentials(),
        timeouts: Timeouts = Timeouts(),
        actions: str = "pull",
        ca_file: str | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._credentials = credentials
        self._actions = actions
        self._tokens = TokenCache()
        self._authorization = ""
        self._extra_scopes: list[str] = []
        verify: ssl.SSLContext | bool = True
        if ca_file:
            # The registry's own CA, on top of the system's (as docker's certs.d).
            verify = ssl.create_default_context(cafile=ca_file)
            verify.load_default_certs()
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeouts.read, connect=timeouts.connect),
            verify=verify,
            follow_redirects=True,  # blobs are often served from a storage redirect
            trust_env=False,
            transport=http_transport,  # tests pass a fake registry here
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def _name(self) -> str:
        return self.endpoint.domain

    def _what(self) -> str:
        return f"{self.endpoint.domain}/{self.endpoint.repository}" if self.endpoint.repository else self._name

    # -- requests with authentication -------------------------------------------------

    def _scopes(self) -> list[str]:
        own = [f"repository:{self.endpoint.repository}:{self._actions}"] if self.endpoint.repository else []
        return own + self._extra_scopes

    async def _authenticate(self, response: httpx.Response) -> bool:
        """Answer a 401's challenge; False when there is nothing more to try."""
        challenges = parse_challenges(response.headers.get("www-authenticate", ""))
        for challenge in challenges:
            if challenge.scheme == "bearer":
                scopes = self._scopes()
                if not scopes and challenge.params.get("scope"):
                    scopes = [challenge.params["scope"]]
                key = (challenge.params.get("realm", ""), challenge.params.get("service", ""), " ".join(scopes))
                token = self._tokens.get(key)
                if not token:
                    token, expires = await fetch_token(
                        self._http, challenge, scopes, self._credentials, self._name
                    )
                    self._tokens.put(key, token, expires)
                auth = f"Bearer {token}"
                if auth == self._authorization:
                    return False
                self._authorization = auth
                return True
            if challenge.scheme == "basic":
                if not self._credentials:
                    return False
                auth = self._credentials.basic()
                if auth == self._authorization:
                    return False
                self._authorization = auth
                return True
        return False

    async def _send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        content: Callable[[], object] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Send, authenticating once on 401; the caller closes a streamed response."""
        for attempt in range(2):
            all_headers = dict(headers or {})
            if self._authorization:
                all_headers["Authorization"] = self._authorization
            body = content() if content is not None else None
            request = self._http.build_request(method, url, headers=all_headers, content=body)  # type: ignore[arg-type]
            try:
                response = await self._http.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise Unavailable(f"cannot reach registry {self._name}: {_reason(exc)}") from None
            if response.status_code == 401 and attempt == 0:
                await response.aread()
                await response.aclose()
                if await self._authenticate(response):
                    continue
                raise self._unauthorized(response)
            if response.status_code == 401:
                await response.aread()
                await response.aclose()
                raise self._unauthorized(response)
            if not stream:
                try:
                    await response.aread()
                except httpx.HTTPError as exc:
                    raise Unavailable(f"registry {self._name} broke off its answer: {_reason(exc)}") from None
                finally:
                    await response.aclose()
            return response
        raise AssertionError("unreachable")

    def _unauthorized(self, response: httpx.Response) -> PalletError:
        detail = _registry_errors(response)
        hint = "" if self._credentials else f": log in with `pallet login {self._name}`"
        return FailedPrecondition(f"unauthorized: {self._what()}: {detail}{hint}")

    def _failed(self, response: httpx.Response, what: str) -> PalletError:
        detail = _registry_errors(response)
        if response.status_code == 404:
            return NotFound(f"{what} not found in {self._what()}: {detail}")
        if response.status_code == 403:
            return FailedPrecondition(f"denied: {what} in {self._what()}: {detail}")
        if response.status_code >= 500:
            return Unavailable(f"registry {self._name} failed on {what}: {detail}")
        if response.status_code == 400 and not self.endpoint.secure and detail == "HTTP 400":
            detail += (
                " (talking plain HTTP to it: if it speaks HTTPS, put its CA in the registry "
                "certs directory as <dir>/<host:port>/ca.crt)"
            )
        return FailedPrecondition(f"registry {self._name} refused {what}: {detail}")

    # -- the distribution API ---------------------------------------------------------

    async def ping(self) -> None:
        response = await self._send("GET", self.endpoint.base_url)
        if response.status_code != 200:
            raise self._failed(response, "the API version check")

    async def get_manifest(self, reference: str) -> FetchedManifest:
        response = await self._send(
            "GET", self.endpoint.url(f"manifests/{reference}"), headers={"Accept": ACCEPT}, stream=True
        )
        try:
            if response.status_code != 200:
                await response.aread()
                raise self._failed(response, f"manifest {reference}")
            data = b""
            try:
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_MANIFEST:
                        raise InvalidArgument(
                            f"manifest {reference} from {self._what()} is larger than {MAX_MANIFEST} bytes"
                        )
            except httpx.HTTPError as exc:
                raise Unavailable(f"registry {self._name} broke off manifest {reference}: {_reason(exc)}") from None
        finally:
            await response.aclose()
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        return FetchedManifest(data, media_type, response.headers.get("docker-content-digest", ""))

    async def blob_exists(self, digest: str) -> bool:
        response = await self._send("HEAD", self.endpoint.url(f"blobs/{digest}"))
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._failed(response, f"blob {digest}")

    @contextlib.asynccontextmanager
    async def blob(self, digest: str, offset: int = 0) -> AsyncIterator[BlobBody]:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        response = await self._send("GET", self.endpoint.url(f"blobs/{digest}"), headers=headers, stream=True)
        try:
            if response.status_code == 206 and offset:
                total = _content_range_total(response.headers.get("content-range", ""))
                yield _Body(response, offset, total)
            elif response.status_code == 200:
                length = response.headers.get("content-length", "")
                yield _Body(response, 0, int(length) if length.isdigit() else 0)
            else:
                await response.aread()
                raise self._failed(response, f"blob {digest}")
        finally:
            await response.aclose()

    async def mount_blob(self, digest: str, source_repository: str) -> bool:
        self._extra_scopes = [f"repository:{source_repository}:pull"]
        url = self.endpoint.url(f"blobs/uploads/?mount={digest}&from={source_repository}")
        response = await self._send("POST", url)
        if response.status_code == 201:
            return True
        if response.status_code == 202:
            # Not mountable: the registry opened an ordinary upload; cancel it.
            location = response.headers.get("location", "")
            if location:
                with contextlib.suppress(PalletError):
                    await self._send("DELETE", urljoin(self.endpoint.base_url, location))
            return False
        return False

    async def upload_blob(
        self, digest: str, size: int, open_chunks: Callable[[], AsyncIterator[bytes]]
    ) -> None:
        response = await self._send("POST", self.endpoint.url("blobs/uploads/"))
        if response.status_code != 202:
            raise self._failed(response, f"upload of {digest}")
        location = urljoin(self.endpoint.base_url, response.headers.get("location", ""))
        if size < CHUNK_UPLOAD:
            response = await self._send(
                "PUT",
                _with_query(location, f"digest={digest}"),
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                content=open_chunks,
            )
        else:
            location = await self._upload_chunks(location, open_chunks)
            response = await self._send(
                "PUT", _with_query(location, f"digest={digest}"), headers={"Content-Length": "0"}
            )
        if response.status_code != 201:
            raise self._failed(response, f"upload of {digest}")

    async def _upload_chunks(
        self, location: str, open_chunks: Callable[[], AsyncIterator[bytes]]
    ) -> str:
        """PATCH the blob in CHUNK_UPLOAD pieces (each one request, with its range)."""
        offset = 0
        buffer = bytearray()

        async def send(piece: bytes) -> str:
            nonlocal offset
            response = await self._send(
                "PATCH",
                location,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + len(piece) - 1}",
                    "Content-Length": str(len(piece)),
                },
                content=lambda: piece,
            )
            if response.status_code != 202:
                raise self._failed(response, "a chunk of an upload")
            offset += len(piece)
            return str(urljoin(self.endpoint.base_url, response.headers.get("location", location)))

        async for chunk in open_chunks():
            buffer += chunk
            while len(buffer) >= CHUNK_UPLOAD:
                location = await send(bytes(buffer[:CHUNK_UPLOAD]))
                del buffer[:CHUNK_UPLOAD]
        if buffer:
            location = await send(bytes(buffer))
        return location

    async def put_manifest(self, reference: str, data: bytes, media_type: str) -> str:
        response = await self._send(
            "PUT",
            self.endpoint.url(f"manifests/{reference}"),
            headers={"Content-Type": media_type},
            content=lambda: data,
        )
        if response.status_code not in (200, 201, 202):
            raise self._failed(response, f"manifest {reference}")
        return str(response.headers.get("docker-content-digest", ""))


def _with_query(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query


def _content_range_total(header: str) -> int:
    # "bytes 100-199/200"
    total = str(header).rpartition("/")[2]
    return int(total) if total.isdigit() else 0
