"""`palletd`: parse options, set up logging, run the daemon until SIGTERM or SIGINT.

Owns: the command line and signal handling. Must not: build components (that is
`pallet.daemon.app`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import structlog

from pallet.daemon.config import DEFAULT_HOST, DEFAULT_ROOT, DEFAULT_RUN_ROOT, Config
from pallet.daemon.networks.ipam import DEFAULT_POOLS, Pool, parse_pool
from pallet.v1.errors import PalletError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="palletd", description="The pallet container daemon.")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="state directory (default %(default)s)")
    p.add_argument("--run-root", type=Path, default=DEFAULT_RUN_ROOT, help="runtime directory (default %(default)s)")
    p.add_argument(
        "-H", "--host", action="append", dest="hosts",
        help=f"listen address, unix:///path or tcp://host:port (mutual TLS only); repeatable (default {DEFAULT_HOST})",
    )
    p.add_argument(
        "--docker-host", action="append", dest="docker_hosts", metavar="HOST",
        help="serve the Docker Engine API on unix:///path or tcp://host:port (mutual TLS "
             "only); repeatable; 'none' serves it nowhere (default unix://<run-root>/docker.sock)",
    )
    p.add_argument("--cgroup-parent", default="pallet", help="cgroup under which containers' cgroups are made (default %(default)s)")
    p.add_argument("--tlscert", type=Path, help="server certificate for tcp:// listeners")
    p.add_argument("--tlskey", type=Path, help="server key for tcp:// listeners")
    p.add_argument("--tlscacert", type=Path, help="CA that client certificates must chain to")
    p.add_argument(
        "-G", "--group", default="", type=_group, metavar="NAME",
        help="unix group that may use the unix sockets (root:NAME, mode 0660; default: root only)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--insecure-registry", action="append", default=[], metavar="HOST[:PORT]",
        help="talk plain HTTP to this registry (loopback registries always are); repeatable",
    )
    p.add_argument(
        "--registry-certs-dir", type=Path, default=Path("/etc/pallet/certs.d"), metavar="DIR",
        help="registries' own CAs as DIR/HOST[:PORT]/ca.crt (default %(default)s)",
    )
    p.add_argument(
        "--stop-containers-on-exit", action="store_true",
        help="on SIGTERM/SIGINT stop every running container (stop signal, then SIGKILL) instead of leaving them running",
    )
    p.add_argument(
        "--events-max-count", type=_positive, default=100_000, metavar="N",
        help="keep at most N events in the event journal (default %(default)s)",
    )
    p.add_argument(
        "--events-max-age", type=_duration, default=7 * 24 * 3600, metavar="AGE",
        help="drop journalled events older than AGE: seconds, or with a unit s/m/h/d (default 7d)",
    )
    p.add_argument(
        "--events-max-bytes", type=_size, default=128 * 1024 * 1024, metavar="SIZE",
        help="keep at most SIZE of events in the event journal: bytes, or with a unit k/m/g (default 128m)",
    )
    p.add_argument(
        "--default-address-pool", action="append", default=[], metavar="base=CIDR,size=N",
        type=_pool,
        help="where networks' subnets come from, docker's syntax, repeatable "
        "(default: 172.17.0.0/16-172.31.0.0/16 in /16s, then 192.168.0.0/16 in /20s)",
    )
    p.add_argument(
        "-b", "--bridge", default="pallet0", metavar="NAME|none",
        help="the default network's Linux bridge (default %(default)s); none: no default "
        "network (containers get loopback only unless given --network), and nothing is "
        "made in the host's network namespace until a network is created",
    )
    p.add_argument(
        "--host-resolv-conf", type=Path, default=Path("/etc/resolv.conf"), metavar="FILE",
        help="the resolv.conf whose nameservers and search domains containers' lookups are "
        "forwarded to (default %(default)s)",
    )
    p.add_argument(
        "--init-path", default="", metavar="PATH",
        help="the init that --init containers run as PID 1 (docker's docker-init): a "
        "statically linked tini (default: tini-static or docker-init, looked up on the host)",
    )
    return p.parse_args(argv)


def _pool(text: str) -> Pool:
    try:
        return parse_pool(text)
    except PalletError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _group(text: str) -> str:
    from pallet.daemon.api.listeners import group_id

    if not text:
        return text  # the default: root only
    try:
        group_id(text)
    except PalletError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give 1 or more")
    return value


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}


def _size(text: str) -> int:
    """Bytes from `1048576`, `512k`, `128m` or `1g` (binary units, as docker's sizes)."""
    return _with_unit(text, _SIZE_UNITS, text[-1:].lower(),
                      "a size: use bytes or a number with k, m or g", "a size of 1 byte")


def _duration(text: str) -> int:
    """Seconds from `3600`, `90m`, `24h` or `7d`."""
    return _with_unit(text, _UNITS, text[-1:],
                      "a duration: use seconds or a number with s, m, h or d", "a duration of 1s")


def _with_unit(text: str, units: dict[str, int], suffix: str, kind: str, least: str) -> int:
    unit = units.get(suffix, 0)
    number = text[:-1] if unit else text
    try:
        value = int(number) * (unit or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give {least} or more")
    return value


def configure_logging(level: str) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


async def serve(config: Config) -> None:
    from pallet.daemon.app import running_daemon

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_daemon(config):
        await stop.wait()
        if config.stop_containers_on_exit:
            structlog.get_logger("palletd").info("stopping: containers are stopped too")
        else:
            structlog.get_logger("palletd").info("stopping: containers keep running")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging(args.log_level)
    # By default the socket lives in the run root (DEFAULT_HOST for the default run root).
    hosts = tuple(args.hosts or [f"unix://{args.run_root.absolute()}/pallet.sock"])
    docker_hosts = tuple(args.docker_hosts or [f"unix://{args.run_root.absolute()}/docker.sock"])
    config = Config(
        root=args.root.absolute(),
        run_root=args.run_root.absolute(),
        hosts=hosts,
        docker_hosts=tuple(h for h in docker_hosts if h != "none"),
        cgroup_parent=args.cgroup_parent,
        tls_cert=args.tlscert,
        tls_key=args.tlskey,
        tls_ca=args.tlscacert,
        socket_group=args.group,
        insecure_registries=tuple(args.insecure_registry),
        registry_certs_dir=args.registry_certs_dir,
        stop_containers_on_exit=args.stop_containers_on_exit,
        events_max_count=args.events_max_count,
        events_max_age_s=args.events_max_age,
        events_max_bytes=args.events_max_bytes,
        crash_at=os.environ.get("PALLET_CRASH_AT", ""),
        address_pools=tuple(args.default_address_pool) or DEFAULT_POOLS,
        host_resolv_conf=args.host_resolv_conf,
        default_bridge="" if args.bridge == "none" else args.bridge,
        init_path=args.init_path,
    )
    try:
        asyncio.run(serve(config))
    except PalletError as e:
        print(f"palletd: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
