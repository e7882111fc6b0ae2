"""System verbs: version, info, events.

Owns: what these verbs ask the daemon and print. `version` prints the client section even
when the daemon cannot be reached (then fails like every other verb). Must not: parse argv
or map gRPC codes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from pallet.client.api import PalletClient
from pallet.v1.errors import InvalidArgument, PalletError

# `version` must start fast: format, template and options are imported inside the verbs
# that use them, not here.


_OCI_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
             "s390x": "s390x", "riscv64": "riscv64"}


def client_version() -> dict[str, str]:
    """The client's half of `version`."""
    return {
        "Version": _package_version(),
        "ApiVersion": "v1",
        "PythonVersion": ".".join(str(p) for p in sys.version_info[:3]),
        "Os": sys.platform if sys.platform != "linux" else "linux",
        "Arch": _OCI_ARCH.get(os.uname().machine, os.uname().machine),
    }


def _package_version() -> str:
    # importlib.metadata costs ~20 ms of imports, but only here.
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return "unknown"
    try:
        return version("pallet")
    except PackageNotFoundError:
        return "unknown"


def _server_version(v: Any) -> dict[str, str]:
    return {
        "Version": v.version,
        "ApiVersion": v.api_version,
        "PythonVersion": v.python_version,
        "Os": v.os,
        "Arch": v.arch,
        "KernelVersion": v.kernel_version,
        "GitCommit": v.git_commit,
    }


def version(args: argparse.Namespace) -> int:
    template = None
    if args.format:
        from pallet.client.format import expand_escapes
        from pallet.client.template import parse

        template = parse(expand_escapes(args.format))
    client_part = client_version()
    server_part: dict[str, str] | None = None
    error: PalletError | None = None
    try:
        with PalletClient(args.host, tls=args.tls) as client:
            server_part = _server_version(client.version())
    except PalletError as exc:
        error = exc
    if template is not None:
        print(template.render({"Client": client_part, "Server": server_part}))
    else:
        lines = [
            "Client:",
            f" Version:           {client_part['Version']}",
            f" API version:       {client_part['ApiVersion']}",
            f" Python version:    {client_part['PythonVersion']}",
            f" OS/Arch:           {client_part['Os']}/{client_part['Arch']}",
        ]
        if server_part is not None:
            lines += [
                "",
                "Server:",
                f" Version:           {server_part['Version']}",
                f" API version:       {server_part['ApiVersion']}",
                f" Python version:    {server_part['PythonVersion']}",
                f" OS/Arch:           {server_part['Os']}/{server_part['Arch']}",
                f" Kernel version:    {server_part['KernelVersion']}",
            ]
            if server_part["GitCommit"]:
                lines.append(f" Git commit:        {server_part['GitCommit']}")
        print("\n".join(lines))
    if error is not None:
        if template is None:
            print()
        raise error
    return 0


def _info_fields(info: Any) -> dict[str, Any]:
    from pallet.client import format as fmt

    return {
        "Containers": int(info.containers),
        "ContainersRunning": int(info.containers_running),
        "ContainersPaused": int(info.containers_paused),
        "ContainersStopped": int(info.containers_stopped),
        "Images": int(info.images),
        "ServerVersion": info.server_version,
        "Driver": info.storage_driver,
        "CgroupVersion": info.cgroup_version,
        "KernelVersion": info.kernel_version,
        "OperatingSystem": info.operating_system,
        "Architecture": info.arch,
        "NCPU": int(info.ncpu),
        "MemTotal": int(info.mem_total),
        "Name": info.name,
        "PalletRootDir": info.root_dir,
        "RunRoot": info.run_root,
        "LastEventSeq": int(info.last_event_seq),
        "StartedAt": fmt.timestamp_text(info.started_at),
    }


def info(args: argparse.Namespace) -> int:
    from pallet.client import format as fmt
    from pallet.client.template import parse

    template = parse(fmt.expand_escapes(args.format)) if args.format else None
    with PalletClient(args.host, tls=args.tls) as client:
        fields = _info_fields(client.info())
    if template is not None:
        print(template.render(fields))
        return 0
    lines = [
        "Client:",
        f" Version:    {client_version()['Version']}",
        "",
        "Server:",
        f" Containers: {fields['Containers']}",
        f"  Running: {fields['ContainersRunning']}",
        f"  Paused: {fields['ContainersPaused']}",
        f"  Stopped: {fields['ContainersStopped']}",
        f" Images: {fields['Images']}",
        f" Server Version: {fields['ServerVersion']}",
        f" Storage Driver: {fields['Driver']}",
        f" Cgroup Version: {fields['CgroupVersion']}",
        f" Kernel Version: {fields['KernelVersion']}",
        f" Operating System: {fields['OperatingSystem']}",
        f" Architecture: {fields['Architecture']}",
        f" CPUs: {fields['NCPU']}",
        f" Total Memory: {fmt.bytes_size(fields['MemTotal'])}",
        f" Name: {fields['Name']}",
        f" Pallet Root Dir: {fields['PalletRootDir']}",
        f" Run Root: {fields['RunRoot']}",
    ]
    print("\n".join(lines))
    return 0


def events(args: argparse.Namespace) -> int:
    from pallet.client import format as fmt
    from pallet.client import views
    from pallet.v1.docker import events as docker_events
    from pallet.client.options import parse_time, validate_filters
    from pallet.client.template import go_json, parse

    filters = validate_filters(args.filter or [])
    now = time.time()
    since = parse_time(args.since, now) if args.since else None
    until = parse_time(args.until, now) if args.until else None
    fmt_text = args.format.strip() if args.format else None
    template = parse(fmt.expand_escapes(args.format)) if fmt_text and fmt_text != "json" else None
    with_seq = args.since_seq is not None
    if with_seq and not 0 <= args.since_seq <= 2**63 - 1:
        raise InvalidArgument(f"--since-seq must be 0 to {2**63 - 1}")
    with PalletClient(args.host, tls=args.tls) as client:
        for event in client.events(filters, since_seq=args.since_seq, since=since, until=until):
            if fmt_text == "json":
                line = go_json(docker_events.event_json_fields(event))
            elif template is not None:
                line = template.render(docker_events.event_fields(event))
            else:
                line = views.event_line(event, with_seq)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    return 0
