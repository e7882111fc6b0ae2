"""The limits part of issue 12's "start with a seccomp profile and limits, minus without"
row: `sudo python bench/limits.py [--runs N]`.

Owns: three figures of what cgroup limits (-m 64m --memory-swap 128m --cpus 0.5
--cpu-shares 512 --pids-limit 100) cost a start: the shim's step alone (`set_resources` on
a fresh cgroup of this host, the writes the shim makes between creating the cgroup and
the init joining it, in this process), the daemon's part (the checks at create, the spec's
linux.resources at start), and the Start call of a container made with the limits minus
one made without, on a palletd of its own, in alternating pairs. Must not: touch any
engine the machine runs, or leave a cgroup or container behind.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import rootfs
from engines import Pallet
from palletd import OwnPalletd, stub

LIMITS = dict(memory=64 << 20, memory_swap=128 << 20, nano_cpus=500_000_000, cpu_shares=512,
              pids_limit=100)


def shim_step_ms(runs: int) -> list[float]:
    """`set_resources` of the limits on a new cgroup each time (made and removed untimed)."""
    from pallet.daemon.containers.model import Resources
    from pallet.daemon.containers.resources import check_here, spec_resources
    from pallet.shim.cgroups import open_cgroup

    limits = spec_resources(check_here(Resources(**LIMITS)))  # type: ignore[arg-type]
    times = []
    for _ in range(runs):
        cgroup = open_cgroup(f"pallet-bench-limits/{secrets.token_hex(6)}")
        cgroup.create()
        try:
            t0 = time.perf_counter()
            cgroup.set_resources(limits)
            cgroup.oom_kills()  # the baseline read that goes with it
            times.append((time.perf_counter() - t0) * 1000)
        finally:
            cgroup.remove()
    for path in ("/sys/fs/cgroup", *(f"/sys/fs/cgroup/{c}" for c in os.listdir("/sys/fs/cgroup"))):
        try:
            os.rmdir(os.path.join(path, "pallet-bench-limits"))
        except OSError:
            pass
    return times


def daemon_part_ms(runs: int) -> list[float]:
    from pallet.daemon.containers.model import Resources
    from pallet.daemon.containers.resources import check_here, spec_resources

    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        spec_resources(check_here(Resources(**LIMITS)))  # type: ignore[arg-type]
        times.append((time.perf_counter() - t0) * 1000)
    return times


def _start_ms(containers: Any, image: str, limited: bool) -> float:
    from pallet.v1 import containers_pb2 as cpb

    name = f"lim-{secrets.token_hex(4)}"
    config = cpb.ContainerConfig(image=image, name=name, cmd=["sleep", "100000"])
    if limited:
        config.resources.CopyFrom(cpb.Resources(**LIMITS))
    made = containers.Create(cpb.CreateContainerRequest(config=config), timeout=60)
    try:
        t0 = time.perf_counter()
        containers.Start(cpb.StartContainerRequest(container=made.id), timeout=60)
        return (time.perf_counter() - t0) * 1000
    finally:
        containers.Remove(cpb.RemoveContainerRequest(container=made.id, force=True), timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30, help="start pairs and step repeats (default 30)")
    args = parser.parse_args(argv)
    step = shim_step_ms(args.runs)
    daemon = daemon_part_ms(args.runs)
    with tempfile.TemporaryDirectory(prefix="plt-bench-lim-") as work, OwnPalletd() as own:
        tar = rootfs.write_rootfs_tar(Path(work) / "rootfs.tar")
        image = Pallet(own).import_image(tar, Path(work))
        containers = stub("ContainersService", own.channel())
        _start_ms(containers, image, True)  # warm-up, untimed
        _start_ms(containers, image, False)
        limited, plain = [], []
        for i in range(args.runs):
            for is_limited in ((True, False) if i % 2 == 0 else (False, True)):
                (limited if is_limited else plain).append(_start_ms(containers, image, is_limited))
    version = 2 if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else 1
    diff = statistics.median(limited) - statistics.median(plain)
    print(f"cgroup v{version}; limits: {LIMITS}")
    print("| figure | pallet | target |")
    print("|---|---|---|")
    print(f"| the shim's limits step (set_resources + OOM baseline) | median {statistics.median(step):.3f} ms "
          f"(max {max(step):.3f}, {args.runs} runs) | |")
    print(f"| the daemon's part (checks + spec) | median {statistics.median(daemon):.3f} ms | |")
    print(f"| start with limits, minus without | {diff:+.2f} ms (median {statistics.median(limited):.1f} "
          f"vs {statistics.median(plain):.1f} ms, {args.runs} pairs) | ≤ 3 ms (with seccomp) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
