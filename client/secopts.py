"""The security flags of run/create, as docker's CLI reads them.

Owns: --cap-add/--cap-drop, --privileged, --security-opt (a seccomp profile's file read
here and sent as its JSON text, as docker's CLI does), --read-only, --device's
"/dev/X[:/dev/Y][:rwm]", --ulimit's "NAME=SOFT[:HARD]", --sysctl, --shm-size,
--group-add and --userns into ContainerConfig. Must not: judge what the daemon judges
(capability names, profiles, limits, sysctls: palletd checks them all at create).
"""

from __future__ import annotations

import argparse
import json
import re

from pallet.client.options import INT64_MAX, parse_key_values
from pallet.v1 import containers_pb2
from pallet.v1.errors import InvalidArgument

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$", re.I)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def add_flags(p: argparse.ArgumentParser) -> None:
    """run/create's security flags."""
    p.add_argument("--cap-add", action="append", metavar="CAP", help="add a Linux capability (or ALL)")
    p.add_argument("--cap-drop", action="append", metavar="CAP", help="drop a Linux capability (or ALL)")
    p.add_argument("--privileged", action="store_true",
                   help="every capability, no seccomp, the host's devices (trust the image fully)")
    p.add_argument("--security-opt", action="append", metavar="OPT",
                   help="seccomp=unconfined, seccomp=PROFILE.json, no-new-privileges")
    p.add_argument("--read-only", action="store_true", help="mount the root filesystem read-only")
    p.add_argument("--device", action="append", metavar="/dev/X[:/dev/Y][:rwm]", help="add a host device")
    p.add_argument("--ulimit", action="append", metavar="NAME=SOFT[:HARD]", help="a resource limit, e.g. nofile=1024:2048")
    p.add_argument("--sysctl", action="append", metavar="K=V", help="a namespaced kernel parameter")
    p.add_argument("--shm-size", metavar="SIZE", help="size of /dev/shm (default 64m)")
    p.add_argument("--group-add", action="append", metavar="GROUP", help="another group for the container's processes")
    p.add_argument("--userns", metavar="MODE", help="user namespace mode (only host: pallet has no user namespaces yet)")


def parse_device(spec: str) -> containers_pb2.DeviceMapping:
    """docker's --device: SRC, SRC:DST, SRC:MODE or SRC:DST:MODE."""
    parts = spec.split(":")
    src, dst, mode = parts[0], "", "rwm"
    if len(parts) == 2:
        if _is_mode(parts[1]):
            mode = parts[1]
        else:
            dst = parts[1]
    elif len(parts) == 3:
        dst, mode = parts[1], parts[2]
        if not _is_mode(mode):
            raise InvalidArgument(f"invalid --device {spec!r}: the mode {mode!r} is not some of r, w, m")
    elif len(parts) > 3:
        raise InvalidArgument(f"invalid --device {spec!r}: use /dev/X[:/dev/Y][:rwm]")
    if not src:
        raise InvalidArgument(f"invalid --device {spec!r}: give the host's device path")
    return containers_pb2.DeviceMapping(path_on_host=src, path_in_container=dst or src,
                                        cgroup_permissions=mode)


def _is_mode(text: str) -> bool:
    return bool(text) and all(ch in "rwm" for ch in text) and len(set(text)) == len(text)


def _limit(text: str, spec: str) -> int:
    if text in ("-1", "unlimited"):
        return -1
    if not text.isdigit() or int(text) > INT64_MAX:
        raise InvalidArgument(f"invalid --ulimit {spec!r}: limits are numbers (or -1: unlimited)")
    return int(text)


def parse_ulimit(spec: str) -> containers_pb2.Ulimit:
    """docker's --ulimit NAME=SOFT[:HARD] (HARD: SOFT when not given)."""
    name, sep, values = spec.partition("=")
    if not sep or not name or not values:
        raise InvalidArgument(f"invalid --ulimit {spec!r}: use NAME=SOFT[:HARD], e.g. nofile=1024:2048")
    soft_text, _, hard_text = values.partition(":")
    soft = _limit(soft_text, spec)
    hard = _limit(hard_text, spec) if hard_text else soft
    return containers_pb2.Ulimit(name=name, soft=soft, hard=hard)


def parse_size(text: str, flag: str) -> int:
    """docker's RAMInBytes: "64m", "1g", "1048576", "512kb"."""
    match = _SIZE.match(text.strip())
    if not match:
        raise InvalidArgument(f"invalid {flag} {text!r}: use bytes or a number with k, m, g or t")
    size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    if size > INT64_MAX:
        raise InvalidArgument(f"invalid {flag} {text!r}: too large")
    return size


def security_opts(opts: list[str]) -> list[str]:
    """--security-opt, with a seccomp profile's file replaced by its JSON (compacted, as
    docker's CLI sends it): the daemon never reads the client's files."""
    out = []
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")
        if key != "seccomp" or not sep or value == "unconfined":
            out.append(opt)
            continue
        if value == "builtin":
            continue  # the default profile
        try:
            with open(value, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise InvalidArgument(
                f"--security-opt seccomp={value}: cannot read the profile: {exc.strerror or exc}"
            ) from None
        try:
            compact = json.dumps(json.loads(text), separators=(",", ":"))
        except ValueError as exc:
            raise InvalidArgument(
                f"--security-opt seccomp={value}: the profile is not JSON ({exc}): fix it"
            ) from None
        out.append(f"seccomp={compact}")
    return out


def security_config(config: containers_pb2.ContainerConfig, args: argparse.Namespace) -> None:
    config.cap_add[:] = getattr(args, "cap_add", None) or []
    config.cap_drop[:] = getattr(args, "cap_drop", None) or []
    config.privileged = bool(getattr(args, "privileged", False))
    config.security_opt[:] = security_opts(getattr(args, "security_opt", None) or [])
    config.read_only = bool(getattr(args, "read_only", False))
    config.devices.extend(parse_device(d) for d in getattr(args, "device", None) or [])
    config.ulimits.extend(parse_ulimit(u) for u in getattr(args, "ulimit", None) or [])
    for key, value in parse_key_values(getattr(args, "sysctl", None) or [], "sysctl").items():
        config.sysctls[key] = value
    if getattr(args, "shm_size", None):
        config.shm_size = parse_size(args.shm_size, "--shm-size")
    config.group_add[:] = getattr(args, "group_add", None) or []
    config.userns_mode = getattr(args, "userns", None) or ""
