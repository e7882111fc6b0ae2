"""palletd's configuration: where state lives and where the API listens.

Owns: the `Config` dataclass and its defaults. Must not: create anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from pallet.daemon.networks.ipam import DEFAULT_POOLS, Pool
from pathlib import Path

DEFAULT_ROOT = Path("/var/lib/pallet")
DEFAULT_RUN_ROOT = Path("/run/pallet")
DEFAULT_HOST = "unix:///run/pallet/pallet.sock"


@dataclass(frozen=True, slots=True)
class Config:
    root: Path = DEFAULT_ROOT
    run_root: Path = DEFAULT_RUN_ROOT
    # unix:///path, or tcp://host:port (served only with mutual TLS).
    hosts: tuple[str, ...] = (DEFAULT_HOST,)
    # Where the Docker Engine API is served (`--docker-host`): unix:///path, or
    # tcp://host:port (mutual TLS only); none: not served.
    docker_hosts: tuple[str, ...] = ()
    cgroup_parent: str = "pallet"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    # The unix group given access to the unix sockets (`--group`, Docker's `docker` group);
    # "": root only.
    socket_group: str = ""
    # Seconds in-flight calls get to finish on SIGTERM.
    shutdown_grace_s: float = 5.0
    # Live restore is the default: SIGTERM leaves containers running under their shims.
    # Hosts that want docker's old behaviour stop them (stop signal, then SIGKILL).
    stop_containers_on_exit: bool = False
    # Event journal retention: at most this many events and bytes, none older than this
    # many seconds (the default keeps a week, 100,000 events or 128 MiB, whichever is least).
    events_max_count: int = 100_000
    events_max_age_s: int = 7 * 24 * 3600
    events_max_bytes: int = 128 * 1024 * 1024
    # Registries spoken to over plain HTTP (host[:port]); loopback ones always are.
    insecure_registries: tuple[str, ...] = ()
    # `<dir>/<host:port>/ca.crt`: a registry's own CA (docker's certs.d layout).
    registry_certs_dir: Path = Path("/etc/pallet/certs.d")
    # Fault injection for tests (`PALLET_CRASH_AT=<operation>:<step>`): empty in real use.
    crash_at: str = ""
    # Where networks' subnets come from (`--default-address-pool`).
    address_pools: tuple[Pool, ...] = DEFAULT_POOLS
    # Whose nameservers and search domains containers' lookups go to.
    host_resolv_conf: Path = Path("/etc/resolv.conf")
    # The default network's bridge; "" (--bridge none): no default network.
    default_bridge: str = "pallet0"
    # The init --init containers run (`--init-path`): a path or a name looked up on the
    # host; "": tini-static or docker-init, whichever is found (`containers.initproc`).
    init_path: str = ""
