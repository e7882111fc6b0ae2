"""Reference -> registry endpoint: which host, which scheme, which repository path.

Owns: docker's rules for the default registry (`docker.io` is served by
`registry-1.docker.io`), and the choice between HTTPS and plain HTTP: plain HTTP only for
loopback registries (as docker allows by default) and for hosts the daemon was told are
insecure (`palletd --insecure-registry`), unless the registry has its own CA in the certs
directory (`<certs-dir>/<host:port>/ca.crt`, as docker's certs.d). Must not: open connections.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pallet.daemon.images.reference import DEFAULT_DOMAIN, Reference

DOCKER_HUB_HOST = "registry-1.docker.io"
#: The key docker's config.json stores Docker Hub credentials under.
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one repository is served."""

    domain: str  # as the reference spells it, e.g. "127.0.0.1:5000" or "docker.io"
    host: str  # host[:port] to connect to
    repository: str  # e.g. "library/busybox"
    secure: bool  # HTTPS (else plain HTTP)

    @property
    def base_url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.host}/v2/"

    def url(self, tail: str) -> str:
        return f"{self.base_url}{self.repository}/{tail}"


def _host_only(domain: str) -> str:
    if domain.startswith("["):
        return domain[1 : domain.index("]")]
    return domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain


def is_loopback(domain: str) -> bool:
    host = _host_only(domain)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def registry_host(domain: str) -> str:
    return DOCKER_HUB_HOST if domain == DEFAULT_DOMAIN else domain


def is_insecure(domain: str, insecure: Iterable[str]) -> bool:
    listed = set(insecure)
    return is_loopback(domain) or domain in listed or _host_only(domain) in listed


def ca_file(domain: str, certs_dir: Path | None) -> str | None:
    """`<certs_dir>/<host[:port]>/ca.crt`, as docker's certs.d, when it exists."""
    if certs_dir is None:
        return None
    path = certs_dir / domain / "ca.crt"
    return str(path) if path.is_file() else None


def resolve(ref: Reference, insecure: Iterable[str] = (), certs_dir: Path | None = None) -> Endpoint:
    # A registry given its own CA speaks TLS, loopback or not.
    secure = ca_file(ref.domain, certs_dir) is not None or not is_insecure(ref.domain, insecure)
    return Endpoint(domain=ref.domain, host=registry_host(ref.domain), repository=ref.path, secure=secure)


def endpoint_for_domain(domain: str, insecure: Iterable[str] = (), certs_dir: Path | None = None) -> Endpoint:
    """The registry itself (for login): no repository."""
    # "https://index.docker.io/v1/" (docker's key for Docker Hub) names a host and a path.
    domain = domain.removeprefix("https://").removeprefix("http://").split("/")[0] or DEFAULT_DOMAIN
    if domain in ("index.docker.io", DOCKER_HUB_HOST):
        domain = DEFAULT_DOMAIN
    secure = ca_file(domain, certs_dir) is not None or not is_insecure(domain, insecure)
    return Endpoint(domain, registry_host(domain), "", secure)
