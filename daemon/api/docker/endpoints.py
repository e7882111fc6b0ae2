"""Every Docker API endpoint module, and the gateway serving them (for the composition root)."""

from __future__ import annotations

from pallet.daemon.api.docker.containers import ContainerEndpoints
from pallet.daemon.api.docker.diskusage import DiskUsageEndpoints
from pallet.daemon.api.docker.gateway import DockerGateway, Endpoints
from pallet.daemon.api.docker.networks import NetworkEndpoints
from pallet.daemon.api.docker.services import Servicers
from pallet.daemon.api.docker.build import BuildEndpoints
from pallet.daemon.api.docker.images import ImagesEndpoints
from pallet.daemon.api.docker.streams import StreamEndpoints
from pallet.daemon.api.docker.system import SystemEndpoints
from pallet.daemon.api.docker.volumes import VolumeEndpoints
from pallet.daemon.config import Config


def endpoint_modules(services: Servicers) -> list[Endpoints]:
    """One entry per module of endpoints; a new module is one line here."""
    return [
        SystemEndpoints(services),
        NetworkEndpoints(services),
        VolumeEndpoints(services),
        ImagesEndpoints(services),
        ContainerEndpoints(services),
        StreamEndpoints(services),
        BuildEndpoints(services),
        DiskUsageEndpoints(services),
    ]


def docker_gateway(config: Config, services: Servicers) -> DockerGateway:
    ssl_context = None
    if config.tls_cert and config.tls_key and config.tls_ca:
        ssl_context = _server_ssl_context(config)
    return DockerGateway(
        config.docker_hosts,
        endpoint_modules(services),
        ssl_context=ssl_context,
        shutdown_grace_s=config.shutdown_grace_s,
    )


def _server_ssl_context(config: Config):  # type: ignore[no-untyped-def]
    """Mutual TLS for tcp:// listeners (to be shared with the gRPC listener's settings)."""
    import ssl

    def make() -> ssl.SSLContext:
        assert config.tls_cert and config.tls_key and config.tls_ca
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_cert_chain(config.tls_cert, config.tls_key)
        ctx.load_verify_locations(cafile=str(config.tls_ca))
        return ctx

    return make
