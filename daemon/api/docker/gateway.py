"""The Docker Engine API gateway: Docker's REST API over pallet's own servicers.

Owns: the aiohttp application (routes under `/v1.NN/` and unversioned, API version
negotiation, Docker's response headers, the error mapping of every handler), and its
listeners: unix sockets (mode 0660) and tcp:// ones, served only with mutual TLS. Must
not: implement any behaviour behind an endpoint (handlers call the servicers: `calls`).

aiohttp rather than a hand-written HTTP/1.1 server: it is asyncio's maintained HTTP stack,
streams request and response bodies, and hands a handler its connection's transport for
Docker's hijacked (`Upgrade: tcp`) attach and exec and for websockets. One application
serves every endpoint module; each module registers its routes through `Routes`.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog
from aiohttp import web

from pallet.daemon.api.docker.calls import HTTP_STATUS, ApiError, error_response
from pallet.daemon.api.errors import status_code
from pallet.daemon.store import space
from pallet.v1.errors import InvalidArgument, PalletError

log = structlog.get_logger(__name__)

#: The Docker Engine API version served (Docker Engine 27.x), and the oldest honoured.
API_VERSION = "1.47"
MIN_API_VERSION = "1.24"
#: Largest request body read whole (JSON bodies); streamed bodies (load, build, archive
#: uploads, imports) are read as they come and are not bound by it.
MAX_BODY = 4 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

def version_tuple(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def api_version(request: web.Request) -> tuple[int, int]:
    """The API version this request speaks: its `/v1.NN/` prefix, else the newest."""
    version: tuple[int, int] = request.get("api_version", version_tuple(API_VERSION))
    return version


class Endpoints(Protocol):
    """One module's endpoints: registers its handlers."""

    def register(self, routes: Routes) -> None: ...


class Routes:
    """Where endpoint modules add their handlers: each path is served unversioned and
    under a `/v1.NN/` prefix (the middleware checks the version and keeps it on the
    request: `api_version`)."""

    _PREFIX = "/v{api_major:[0-9]+}.{api_minor:[0-9]+}"

    def __init__(self, app: web.Application) -> None:
        self._router = app.router

    def add(self, method: str, path: str, handler: Handler) -> None:
        for full in (path, self._PREFIX + path):
            # dockerd answers HEAD of a GET route too (docker probes `_ping` with HEAD).
            if method == "GET":
                self._router.add_get(full, handler, allow_head=True)
            else:
                self._router.add_route(method, full, handler)

    def get(self, path: str, handler: Handler) -> None:
        self.add("GET", path, handler)

    def post(self, path: str, handler: Handler) -> None:
        self.add("POST", path, handler)

    def put(self, path: str, handler: Handler) -> None:
        self.add("PUT", path, handler)

    def delete(self, path: str, handler: Handler) -> None:
        self.add("DELETE", path, handler)

    def head(self, path: str, handler: Handler) -> None:
        self.add("HEAD", path, handler)


def docker_headers() -> dict[str, str]:
    """The headers dockerd puts on every response."""
    return {
        "Api-Version": API_VERSION,
        "Docker-Experimental": "false",
        "Ostype": "linux",
        "Server": f"Docker/{API_VERSION} (linux)",
    }


def _headers(response: web.StreamResponse) -> None:
    response.headers.update(docker_headers())


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    _headers(response)


def _version_error(asked: tuple[int, int]) -> web.Response | None:
    """None when version `asked` is served, else dockerd's 400 naming the range."""
    if asked > version_tuple(API_VERSION):
        return error_response(
            400,
            f"client version {asked[0]}.{asked[1]} is too new. Maximum supported API "
            f"version is {API_VERSION}",
        )
    if asked < version_tuple(MIN_API_VERSION):
        return error_response(
            400,
            f"client version {asked[0]}.{asked[1]} is too old. Minimum supported API "
            f"version is {MIN_API_VERSION}, please upgrade your client to a newer version",
        )
    return None


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every handler's error as dockerd's `{"message": …}` with its status, once, here."""
    major = request.match_info.get("api_major")
    if major is not None:
        asked = (int(major), int(request.match_info["api_minor"]))
        refused = _version_error(asked)
        if refused is not None:
            return refused
        request["api_version"] = asked
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message)
    except PalletError as exc:
        return error_response(HTTP_STATUS.get(status_code(exc), 500), exc.message)
    except web.HTTPNotFound:
        return error_response(404, "page not found")
    except web.HTTPMethodNotAllowed:
        return error_response(404, "page not found")
    except web.HTTPRequestEntityTooLarge:
        return error_response(
            413, f"request body too large: at most {MAX_BODY} bytes are read as JSON"
        )
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error_response(exc.status, exc.text or exc.reason)
        raise
    except OSError as exc:
        if exc.errno in space.FULL_ERRNOS:
            where = f" writing {exc.filename}" if exc.filename else ""
            return error_response(500, f"no space left on the device{where}: {space.FREE_SPACE}")
        log.exception("internal error", path=request.path, exc_info=exc)
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - every error is answered, once, here
        log.exception("internal error", path=request.path, exc_info=exc)
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")


def make_app(endpoints: Iterable[Endpoints]) -> web.Application:
    app = web.Application(middlewares=[_errors], client_max_size=MAX_BODY)
    app.on_response_prepare.append(_on_prepare)
    routes = Routes(app)
    for module in endpoints:
        module.register(routes)
    return app


@dataclass(frozen=True, slots=True)
class Listener:
    """Where the gateway listens: a unix socket path, or host and port (mutual TLS)."""

    path: Path | None = None
    host: str = ""
    port: int = 0


def parse_host(host: str) -> Listener:
    if host.startswith("unix://"):
        path = host[len("unix://"):]
        if not path.startswith("/"):
            raise InvalidArgument(f"invalid --docker-host {host!r}: give an absolute socket path")
        return Listener(path=Path(path))
    if host.startswith("tcp://"):
        address = host[len("tcp://"):]
        name, sep, port = address.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidArgument(f"invalid --docker-host {host!r}: use tcp://HOST:PORT")
        return Listener(host=name.strip("[]") or "0.0.0.0", port=int(port))
    raise InvalidArgument(f"invalid --docker-host {host!r}: use unix:///path or tcp://host:port")


class DockerGateway:
    """The Docker API served on `hosts`, with `endpoints`' routes."""

    def __init__(
        self,
        hosts: Sequence[str],
        endpoints: Iterable[Endpoints],
        *,
        ssl_context: Callable[[], ssl.SSLContext] | None = None,
        socket_group: Callable[[Path], None] | None = None,
        shutdown_grace_s: float = 5.0,
    ) -> None:
        self._listeners = [parse_host(h) for h in hosts]
        for host, listener in zip(hosts, self._listeners):
            if listener.path is None and ssl_context is None:
                raise InvalidArgument(
                    f"refusing to serve the Docker API on {host} without mutual TLS: give "
                    "--tlscert, --tlskey and --tlscacert"
                )
        self._app = make_app(endpoints)
        self._ssl_context = ssl_context
        self._socket_group = socket_group
        self._grace = shutdown_grace_s
        self._runner: web.AppRunner | None = None
        self._sockets: list[Path] = []

    @property
    def app(self) -> web.Application:
        return self._app

    async def start(self) -> None:
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False,
                               shutdown_timeout=self._grace)
        await runner.setup()
        self._runner = runner
        for listener in self._listeners:
            if listener.path is not None:
                path = listener.path
                path.parent.mkdir(parents=True, exist_ok=True)
                if path.is_socket():  # left by a daemon that was killed
                    path.unlink()
                site: web.BaseSite = web.UnixSite(runner, str(path))
                await site.start()
                os.chmod(path, 0o660)
                if self._socket_group is not None:
                    self._socket_group(path)
                self._sockets.append(path)
            else:
                assert self._ssl_context is not None
                site = web.TCPSite(runner, listener.host, listener.port,
                                   ssl_context=self._ssl_context())
                await site.start()

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for path in self._sockets:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        self._sockets.clear()


def gateway_headers(response: web.StreamResponse) -> Any:
    """Docker's headers on a response prepared before the app's hook could add them."""
    _headers(response)
    return response
