"""Security's figures (issue 12): `sudo python bench/security.py [--runs N] [--containers N]`.

Owns: two rows of issue 12's speed table, measured on a palletd of its own: what Docker's
default seccomp profile and limits add to a start (the Start call of a container made
with them, minus one made with `seccomp=unconfined` and none, in alternating pairs), and
the shim's PSS per container with N running so confined; the first start of a profile
compiles it (untimed warm-up), later ones find it cached. Must not: touch any engine the
machine runs, or leave anything behind (OwnPalletd cleans up).

"Limits" here are the ones a container's own process gets (`--ulimit nofile`, `nproc`);
pass `--cgroup-limits` to add cgroup memory and pids limits (ContainerConfig.resources).
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import procs
import rootfs
from engines import Pallet
from palletd import OwnPalletd, stub

LONG_SLEEP = ["sleep", "100000"]


def _config(image: str, name: str, confined: bool, cgroup_limits: bool) -> Any:
    from pallet.v1 import containers_pb2 as cpb

    config = cpb.ContainerConfig(image=image, name=name, cmd=LONG_SLEEP)
    if confined:
        config.ulimits.extend([cpb.Ulimit(name="nofile", soft=1024, hard=2048),
                               cpb.Ulimit(name="nproc", soft=512, hard=512)])
        if cgroup_limits:
            config.resources.memory = 64 << 20
            config.resources.pids_limit = 100
    else:
        config.security_opt.append("seccomp=unconfined")
    return config


def _start_ms(containers: Any, image: str, confined: bool, cgroup_limits: bool) -> float:
    from pallet.v1 import containers_pb2 as cpb

    name = f"sec-{secrets.token_hex(4)}"
    made = containers.Create(cpb.CreateContainerRequest(
        config=_config(image, name, confined, cgroup_limits)), timeout=60)
    cid = made.id or name
    try:
        t0 = time.perf_counter()
        containers.Start(cpb.StartContainerRequest(container=cid), timeout=60)
        return (time.perf_counter() - t0) * 1000
    finally:
        containers.Remove(cpb.RemoveContainerRequest(container=cid, force=True), timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30, help="start pairs (default 30)")
    parser.add_argument("--containers", type=int, default=20, help="running for the PSS figure")
    parser.add_argument("--cgroup-limits", action="store_true", help="add memory and pids limits too")
    args = parser.parse_args(argv)
    from pallet.v1 import containers_pb2 as cpb

    with tempfile.TemporaryDirectory(prefix="plt-bench-sec-") as work, OwnPalletd() as daemon:
        tar = rootfs.write_rootfs_tar(Path(work) / "rootfs.tar")
        image = Pallet(daemon).import_image(tar, Path(work))
        containers = stub("ContainersService", daemon.channel())
        # Warm-up, untimed: the first confined start compiles the default profile.
        _start_ms(containers, image, True, args.cgroup_limits)
        _start_ms(containers, image, False, args.cgroup_limits)
        confined, plain = [], []
        for i in range(args.runs):
            first = i % 2 == 0  # which goes first alternates, so drift cancels out
            for is_confined in ((True, False) if first else (False, True)):
                ms = _start_ms(containers, image, is_confined, args.cgroup_limits)
                (confined if is_confined else plain).append(ms)
        names = [f"sec-pss-{i}" for i in range(args.containers)]
        for name in names:
            made = containers.Create(cpb.CreateContainerRequest(
                config=_config(image, name, True, args.cgroup_limits)), timeout=60)
            containers.Start(cpb.StartContainerRequest(container=made.id or name), timeout=60)
        time.sleep(1.0)
        pids = Pallet(daemon).shim_pids(names)
        pss = [procs.memory(p).pss_kib for p in pids]
        rss = [procs.memory(p).rss_kib for p in pids]
        seccomp = sum(
            1 for n in names
            for line in open(f"/proc/{containers.Inspect(cpb.InspectContainerRequest(container=n), timeout=30).container.state.pid}/status")
            if line.startswith("Seccomp:") and line.split()[1] == "2"
        )
    diff = statistics.median(confined) - statistics.median(plain)
    print("| figure | pallet | target |")
    print("|---|---|---|")
    print(f"| start with seccomp and limits, minus without | {diff:+.2f} ms "
          f"(median {statistics.median(confined):.1f} vs {statistics.median(plain):.1f} ms, "
          f"{args.runs} pairs) | ≤ 3 ms |")
    print(f"| shim PSS per container, {args.containers} running with seccomp and limits | "
          f"{statistics.mean(pss) / 1024:.2f} MiB (RSS {statistics.mean(rss) / 1024:.2f} MiB; "
          f"{seccomp}/{len(names)} filtered) | ≤ 3 MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
