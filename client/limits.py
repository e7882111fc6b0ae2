"""The resource-limit flags of run, create and update, and their values as a `Resources`.

Owns: the flags (`-m`, `--memory-swap`, `--cpus`, `--pids-limit`, ...; `add_flags`), docker's
value syntax (sizes with b/k/m/g/t/p units, `--cpus` as a decimal with at most nine
digits after the point, `--device-read-bps PATH:RATE`; `parse_size`, `parse_cpus`,
`parse_throttle`), and the `pallet.v1.Resources` message with the flags that were given
(`resources_message`). Must not: judge values (palletd checks and defaults them all: the
minimum memory, swap against memory, the host's CPUs, devices), or talk to the daemon.
"""

from __future__ import annotations

import argparse
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from pallet.v1.errors import InvalidArgument

INT64_MAX = 2**63 - 1
_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?(i?b)?$", re.I)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text: str, flag: str, *, allow_unlimited: bool = False) -> int:
    """docker's RAMInBytes: "32m", "1.5g", "512k", "1024" (bytes); -1 where unlimited is
    allowed (--memory-swap)."""
    value = text.strip()
    if allow_unlimited and value == "-1":
        return -1
    match = _SIZE.match(value)
    if not match:
        raise InvalidArgument(
            f"invalid size {text!r} for {flag}: use a number with an optional unit b, k, m, "
            f"g (e.g. 32m){' or -1 for unlimited' if allow_unlimited else ''}"
        )
    number = Decimal(match.group(1)) * _UNITS[(match.group(2) or "").lower()]
    if number > INT64_MAX:
        raise InvalidArgument(f"invalid size {text!r} for {flag}: too large")
    return int(number)


def parse_cpus(text: str) -> int:
    """--cpus 0.5 -> 500000000 (billionths of a CPU, docker's NanoCPUs)."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise InvalidArgument(f"invalid --cpus {text!r}: use a number of CPUs, e.g. 1.5")
    nano = value * 1_000_000_000
    if nano != nano.to_integral_value():
        raise InvalidArgument(f"invalid --cpus {text!r}: use at most 9 digits after the point")
    if abs(nano) > INT64_MAX:
        raise InvalidArgument(f"invalid --cpus {text!r}: too large")
    return int(nano)


def parse_throttle(text: str, flag: str, *, bytes_rate: bool) -> tuple[str, int]:
    """"/dev/sda:1mb" (bytes per second) or "/dev/sda:100" (operations) -> (path, rate)."""
    path, sep, rate = text.rpartition(":")
    if not sep or not path:
        raise InvalidArgument(f"invalid {flag} {text!r}: use DEVICE:RATE, e.g. /dev/sda:1mb")
    if bytes_rate:
        return path, parse_size(rate, flag)
    if not rate.strip().isdigit():
        raise InvalidArgument(f"invalid {flag} {text!r}: the rate is a number of operations per second")
    return path, int(rate)


def _int(flag: str) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {flag} value {text!r}: use a whole number") from None
        if abs(value) > INT64_MAX:
            raise argparse.ArgumentTypeError(f"invalid {flag} value {text!r}: too large")
        return value

    return parse


def add_flags(p: argparse.ArgumentParser, *, update: bool = False) -> None:
    """The limit flags; `update` leaves out what cannot change on an existing container."""
    p.add_argument("-m", "--memory", metavar="BYTES", help="memory limit (at least 6m)")
    p.add_argument("--memory-swap", metavar="BYTES",
                   help="memory plus swap limit (-1: unlimited swap; default twice -m)")
    p.add_argument("--memory-reservation", metavar="BYTES", help="soft memory limit")
    p.add_argument("--kernel-memory", metavar="BYTES", help="not supported (gone from current kernels)")
    if not update:
        p.add_argument("--oom-kill-disable", action="store_true",
                       help="do not let the OOM killer kill the container (cgroup v1 only)")
    p.add_argument("--cpus", metavar="N", help="number of CPUs (e.g. 1.5)")
    p.add_argument("-c", "--cpu-shares", type=_int("--cpu-shares"), metavar="N", help="relative CPU weight (1024 is the default)")
    p.add_argument("--cpu-period", type=_int("--cpu-period"), metavar="US", help="CFS period in microseconds")
    p.add_argument("--cpu-quota", type=_int("--cpu-quota"), metavar="US", help="CFS quota in microseconds per period")
    p.add_argument("--cpuset-cpus", metavar="LIST", help="CPUs it may run on (0-3, 0,1)")
    p.add_argument("--cpuset-mems", metavar="LIST", help="memory nodes it may use (0-3, 0,1)")
    p.add_argument("--pids-limit", type=_int("--pids-limit"), metavar="N", help="most processes at once (-1: no limit)")
    p.add_argument("--blkio-weight", type=_int("--blkio-weight"), metavar="N", help="relative block I/O weight, 10 to 1000")
    if not update:
        for name, what in (("read-bps", "bytes read per second"), ("write-bps", "bytes written per second"),
                           ("read-iops", "reads per second"), ("write-iops", "writes per second")):
            p.add_argument(f"--device-{name}", action="append", metavar="DEVICE:RATE",
                           help=f"limit a block device's {what}")


def given(args: argparse.Namespace) -> bool:
    """Whether any limit flag was given (update needs one)."""
    return bool(getattr(args, "oom_kill_disable", False)) or any(
        getattr(args, name, None) is not None
               for name in ("memory", "memory_swap", "memory_reservation", "kernel_memory",
                            "oom_kill_disable", "cpus", "cpu_shares", "cpu_period", "cpu_quota",
                            "cpuset_cpus", "cpuset_mems", "pids_limit", "blkio_weight"))


def resources_message(args: argparse.Namespace) -> Any:
    """The pallet.v1.Resources of the limit flags given (the others unset)."""
    from pallet.v1 import containers_pb2 as pb

    r = pb.Resources()
    for name, flag, unlimited in (("memory", "--memory", False), ("memory_swap", "--memory-swap", True),
                                  ("memory_reservation", "--memory-reservation", False),
                                  ("kernel_memory", "--kernel-memory", False)):
        value = getattr(args, name, None)
        if value is not None:
            setattr(r, name, parse_size(value, flag, allow_unlimited=unlimited))
    if getattr(args, "oom_kill_disable", False):
        r.oom_kill_disable = True
    if getattr(args, "cpus", None) is not None:
        r.nano_cpus = parse_cpus(args.cpus)
    for name in ("cpu_shares", "cpu_period", "cpu_quota", "pids_limit"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(r, name, value)
    if getattr(args, "blkio_weight", None) is not None:
        if not 0 <= args.blkio_weight <= 2**32 - 1:
            raise InvalidArgument(f"invalid --blkio-weight {args.blkio_weight}: use 10 to 1000")
        r.blkio_weight = args.blkio_weight
    for name in ("cpuset_cpus", "cpuset_mems"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(r, name, value)
    for attr, field, bytes_rate in (
        ("device_read_bps", "blkio_device_read_bps", True), ("device_write_bps", "blkio_device_write_bps", True),
        ("device_read_iops", "blkio_device_read_iops", False), ("device_write_iops", "blkio_device_write_iops", False),
    ):
        flag = "--" + attr.replace("_", "-")
        for item in getattr(args, attr, None) or []:
            path, rate = parse_throttle(item, flag, bytes_rate=bytes_rate)
            getattr(r, field).add(path=path, rate=rate)
    return r
