"""The gRPC server: servicers, health checking, reflection, listeners.

Owns: building the `grpc.aio` server, binding unix sockets (root and --group, mode 0660:
`listeners.chown_socket`) and mutual-TLS TCP listeners, the serving/not-serving health status, and decoding requests tolerantly (bytes
that do not parse reach the servicer's decorator, which refuses them as INVALID_ARGUMENT).
Must not: build components (the composition root hands them in).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from pallet.daemon.api import listeners
from pallet.daemon.api.inputs import tolerant
from pallet.daemon.config import Config
from pallet.v1.errors import InvalidArgument

MAX_MESSAGE = 32 * 1024 * 1024


class Service(Protocol):
    """A servicer of one proto service: its full name, and how it registers itself."""

    SERVICE: str  # the full name, e.g. "pallet.v1.ContainersService"

    def add_to_server(self, server: Any) -> None: ...


class _TolerantDecoding(grpc.aio.ServerInterceptor):
    """Every handler's request decoder swapped for `inputs.tolerant(...)`.

    Only the decoder: errors are mapped by the servicers' decorators, not here (an aio
    interceptor misses what a streaming handler raises).
    """

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        decode = getattr(handler, "request_deserializer", None)
        if decode is None:
            return handler
        descriptor = getattr(getattr(decode, "__self__", None), "DESCRIPTOR", None)
        type_name = descriptor.full_name if descriptor is not None else f"request of {details.method}"
        return handler._replace(request_deserializer=tolerant(decode, type_name, descriptor))


class ApiServer:
    """Serves `services` (one servicer per proto service; a new service is one more entry
    in the list the composition root passes), and health checking and reflection for
    each of them."""

    def __init__(self, config: Config, services: Sequence[Service]) -> None:
        self._config = config
        self._server = grpc.aio.server(
            interceptors=[_TolerantDecoding()],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE),
            ]
        )
        for service in services:
            service.add_to_server(self._server)
        #: Full names of the services served, in registration order.
        self.services = tuple(service.SERVICE for service in services)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            self.services + (health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        self._sockets: list[Path] = []

    def _bind(self, host: str) -> None:
        if host.startswith("unix://"):
            path = Path(host[len("unix://"):])
            path.parent.mkdir(parents=True, exist_ok=True)
            # A socket file left by a daemon that was killed would make bind fail.
            if path.is_socket():
                path.unlink()
            self._server.add_insecure_port(f"unix:{path}")
            self._sockets.append(path)
        elif host.startswith("tcp://"):
            cert, key, ca = listeners.tls_material(self._config, host)
            # Client certificates required and checked against --tlscacert (grpc core:
            # TLS 1.2 or later); one without, from another CA or expired fails the handshake.
            creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)
            self._server.add_secure_port(host[len("tcp://"):], creds)
        else:
            raise InvalidArgument(f"invalid --host {host!r}: use unix:///path or tcp://host:port")

    async def start(self) -> None:
        for host in self._config.hosts:
            self._bind(host)
        await self._server.start()
        for path in self._sockets:
            listeners.chown_socket(path, self._config.socket_group)
        for name in self.services + ("",):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def aclose(self) -> None:
        """Say NOT_SERVING, let in-flight calls finish within the grace period, stop."""
        await self._health.enter_graceful_shutdown()
        await self._server.stop(self._config.shutdown_grace_s)
        for path in self._sockets:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
