"""Parsed command lines -> pallet.v1 request messages.

Owns: building ContainerConfig (run/create, networking and mount flags included), LogsRequest and
CreateNetworkRequest from the argparse namespace,
using `pallet.client.options` for the docker value rules. Must not: talk to the daemon or
print; unit tests call these functions directly.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pallet.client.options import (
    INT32_MAX,
    INT64_MAX,
    check_range,
    env_list,
    parse_extra_host,
    parse_key_values,
    parse_labels,
    parse_duration,
    parse_restart,
    parse_tail,
    parse_time,
)
from pallet.v1.errors import InvalidArgument
from pallet.v1 import containers_pb2

if TYPE_CHECKING:
    from pallet.v1 import networks_pb2

_SIZE = re.compile(r"^(\d+)([kmg]?)b?$", re.I)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_log_opts(opts: Sequence[str]) -> tuple[int, int]:
    """`--log-opt max-size=10m --log-opt max-file=3` -> (bytes, files), as docker reads them."""
    max_size, max_file = 0, 0
    for opt in opts:
        key, sep, value = opt.partition("=")
        if key == "max-size" and sep:
            match = _SIZE.match(value.strip())
            if not match:
                raise InvalidArgument(
                    f"invalid log option max-size={value!r}: use bytes or a number with k, m or g"
                )
            max_size = int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
            if max_size > INT64_MAX:
                raise InvalidArgument(
                    f"invalid log option max-size={value!r}: use at most {INT64_MAX} bytes"
                )
        elif key == "max-file" and sep:
            if not value.isdigit() or not 1 <= int(value) <= INT32_MAX:
                raise InvalidArgument(
                    f"invalid log option max-file={value!r}: use 1 to {INT32_MAX}"
                )
            max_file = int(value)
        else:
            raise InvalidArgument(
                f"unknown log option {opt!r}: pallet knows max-size=SIZE and max-file=N"
            )
    return max_size, max_file


def stop_seconds(value: int, flag: str) -> int:
    """A stop timeout (`stop -t`, `run --stop-timeout`): 0 or more seconds, as an int32."""
    return check_range(value, flag, 0, INT32_MAX, " seconds")


def container_config(args: argparse.Namespace, environ: Mapping[str, str]) -> containers_pb2.ContainerConfig:
    """The ContainerConfig for `run`/`create`."""
    config = containers_pb2.ContainerConfig(
        image=args.image,
        name=args.name or "",
        cmd=list(args.command),
        env=env_list(args.env_file or [], args.env or [], environ),
        working_dir=args.workdir or "",
        user=args.user or "",
        hostname=args.hostname or "",
        labels=parse_labels(args.label or []),
        open_stdin=bool(args.interactive),
        # docker's StdinOnce: `run -i` in the foreground gives stdin for one attach only.
        stdin_once=bool(args.interactive) and getattr(args, "detach", True) is False,
        tty=bool(getattr(args, "tty", False)),
        auto_remove=bool(args.rm),
        stop_signal=args.stop_signal or "",
        init=bool(getattr(args, "init", False)),
    )
    if config.tty:
        from pallet.client.terminal import terminal_size

        # docker's ConsoleSize: the process is born with our window's size.
        config.console_height, config.console_width = terminal_size() or (0, 0)
    if args.entrypoint is not None:
        # docker takes --entrypoint as one executable, never split; "" clears the image's.
        config.entrypoint[:] = [args.entrypoint] if args.entrypoint else []
        config.entrypoint_set = True
    if args.stop_timeout is not None:
        config.stop_timeout = stop_seconds(args.stop_timeout, "--stop-timeout")
    if getattr(args, "restart", None):
        name, count = parse_restart(args.restart)
        config.restart_policy.name, config.restart_policy.maximum_retry_count = name, count
    if getattr(args, "log_opt", None):
        config.log_max_size, config.log_max_file = parse_log_opts(args.log_opt)
    _health_config(config, args)
    _network_config(config, args)
    _mount_config(config, args)
    from pallet.client.secopts import security_config

    security_config(config, args)
    from pallet.client.limits import resources_message

    config.resources.CopyFrom(resources_message(args))
    return config


# (option, its namespace attribute, HealthConfig's field) of the healthcheck's durations.
_HEALTH_DURATIONS = (
    ("--health-interval", "health_interval", "interval_ns"),
    ("--health-timeout", "health_timeout", "timeout_ns"),
    ("--health-start-period", "health_start_period", "start_period_ns"),
    ("--health-start-interval", "health_start_interval", "start_interval_ns"),
)


def _health_config(config: containers_pb2.ContainerConfig, args: argparse.Namespace) -> None:
    """--health-* and --no-healthcheck, as docker's CLI reads them: no flag leaves the
    image's healthcheck; --no-healthcheck is a test of NONE; --health-cmd a CMD-SHELL test;
    durations are Go's (a value under 1ms is palletd's to refuse)."""
    values: dict[str, int] = {}
    for flag, attr, field in _HEALTH_DURATIONS:
        text = getattr(args, attr, None)
        if text is None:
            continue
        try:
            seconds = parse_duration(text.strip())
        except InvalidArgument:
            raise InvalidArgument(
                f"invalid argument {text!r} for {flag}: use a duration with a unit, e.g. "
                "30s, 500ms, 1m30s"
            ) from None
        if seconds < 0:
            raise InvalidArgument(f"{flag} cannot be negative")
        ns = round(seconds * 1e9)
        check_range(ns, flag, 0, INT64_MAX, " ns")
        values[field] = ns
    cmd = getattr(args, "health_cmd", None) or ""
    retries = getattr(args, "health_retries", None) or 0
    if retries < 0:
        raise InvalidArgument("--health-retries cannot be negative")
    check_range(retries, "--health-retries", 0, INT32_MAX)
    asked = bool(cmd or retries or any(values.values()))
    if getattr(args, "no_healthcheck", False):
        if asked:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        config.healthcheck.test[:] = ["NONE"]
        return
    if not asked:
        return
    config.healthcheck.SetInParent()
    if cmd:
        config.healthcheck.test[:] = ["CMD-SHELL", cmd]
    config.healthcheck.retries = retries
    for name, ns in values.items():
        setattr(config.healthcheck, name, ns)


def _mount_config(config: containers_pb2.ContainerConfig, args: argparse.Namespace) -> None:
    """-v, --mount, --tmpfs, --volumes-from. Only --mount's CSV is read here: palletd parses
    and judges every one of them."""
    from pallet.client.mounts import parse_mount

    config.binds[:] = getattr(args, "volume", None) or []
    config.mounts.extend(parse_mount(m) for m in getattr(args, "mount", None) or [])
    config.tmpfs[:] = getattr(args, "tmpfs", None) or []
    config.volumes_from[:] = getattr(args, "volumes_from", None) or []


def _network_config(config: containers_pb2.ContainerConfig, args: argparse.Namespace) -> None:
    """--network and friends. `-p` and `--expose` go as given: palletd parses and judges them."""
    config.network_mode = args.network or ""
    config.network_aliases[:] = args.network_alias or []
    config.ipv4_address = args.ip or ""
    config.mac_address = args.mac_address or ""
    config.publish[:] = args.publish or []
    config.publish_all = bool(args.publish_all)
    config.expose[:] = args.expose or []
    config.dns[:] = args.dns or []
    config.dns_search[:] = args.dns_search or []
    config.dns_options[:] = args.dns_option or []
    config.extra_hosts[:] = [parse_extra_host(item) for item in args.add_host or []]


def network_create_request(args: argparse.Namespace) -> networks_pb2.CreateNetworkRequest:
    """The CreateNetworkRequest for `network create`."""
    from pallet.v1 import networks_pb2  # only this verb needs it

    return networks_pb2.CreateNetworkRequest(
        name=args.name,
        driver=args.driver or "",
        subnet=args.subnet or "",
        gateway=args.gateway or "",
        ip_range=args.ip_range or "",
        internal=bool(args.internal),
        labels=parse_labels(args.label or []),
        options=parse_key_values(args.opt or [], "driver option"),
    )


def logs_request(args: argparse.Namespace, now: float) -> containers_pb2.LogsRequest:
    """The LogsRequest for `logs`."""
    request = containers_pb2.LogsRequest(
        container=args.container,
        follow=bool(args.follow),
        tail=parse_tail(args.tail),
        stdout=True,
        stderr=True,
    )
    if args.since:
        request.since.seconds, request.since.nanos = parse_time(args.since, now)
    if args.until:
        request.until.seconds, request.until.nanos = parse_time(args.until, now)
    return request
