"""Security's figures (issue 12): `sudo python bench/security.py [--runs N] [--containers N]`.

Owns: two rows of issue 12's speed table, measured on a palletd of its own: what Docker's
default seccomp profile and limits add to a start (the Start call of a container made
with them, minus one made with `seccomp=unconfined` and none, in alternating pairs), and
the shim's PSS per container with N running so confined; the first start of a profile
compiles it (untimed warm-up), later ones find it cached. Must not: touch any engine the
machine runs, or leave anything behind (OwnPalletd cleans up).

"Limits" here are the ones a container's own process gets (`--ulimit nofile`, `nproc`);
pass `--cgroup-limits` to add cgroup memory and pids limits (ContainerConfig.resources).
`--reference docker` adds docker's shim (containerd-shim-runc-v2) beside pallet's, the
same N containers so confined (Docker's default seccomp profile, the same limits), run by
a dockerd of the benchmark's own in a network namespace (`own_dockerd`) after pallet's
are gone.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import subprocess
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import procs
import rootfs
from engines import Pallet
from net import Netns
from own_dockerd import OwnDockerd
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
    parser.add_argument("--reference", choices=["docker"], help="measure docker's shim too, same run")
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
            if _seccomp_mode(containers.Inspect(
                cpb.InspectContainerRequest(container=n), timeout=30).container.state.pid) == "2"
        )
    docker = _docker_shims(args.containers, args.cgroup_limits) if args.reference else ""
    diff = statistics.median(confined) - statistics.median(plain)
    print(f"| figure | pallet | {'docker | ' if docker else ''}target |")
    print(f"|---|---|{'---|' if docker else ''}---|")
    print(f"| start with seccomp and limits, minus without | {diff:+.2f} ms "
          f"(median {statistics.median(confined):.1f} vs {statistics.median(plain):.1f} ms, "
          f"{args.runs} pairs) | {'not measured | ' if docker else ''}≤ 3 ms |")
    print(f"| shim PSS per container, {args.containers} running with seccomp and limits | "
          f"{_memory(pss, rss)}; {seccomp}/{len(names)} filtered | "
          f"{docker + ' | ' if docker else ''}≤ 3 MB |")
    return 0


def _memory(pss: list[int], rss: list[int]) -> str:
    return (f"{statistics.mean(pss) / 1024:.2f} MiB = {statistics.mean(pss) * 1024 / 1e6:.2f} MB "
            f"(RSS {statistics.mean(rss) / 1024:.2f} MiB)")


def _docker_shims(count: int, cgroup_limits: bool) -> str:
    """docker's shim (containerd-shim-runc-v2) per container, `count` running so confined."""
    limits = ["--ulimit", "nofile=1024:2048", "--ulimit", "nproc=512"]
    if cgroup_limits:
        limits += ["--memory", "64m", "--pids-limit", "100"]
    with tempfile.TemporaryDirectory(prefix="plt-bench-sec-") as work, contextlib.ExitStack() as stack:
        tar = rootfs.write_rootfs_tar(Path(work) / "rootfs.tar")
        ns = stack.enter_context(Netns("security-docker"))
        docker = stack.enter_context(OwnDockerd(ns.prefix))
        image = "pallet-bench-busybox:latest"
        _run(docker.cli("import", str(tar), image))
        names = [f"sec-pss-{i}" for i in range(count)]
        for name in names:
            _run(docker.cli("run", "-d", "--name", name, *limits, image, *LONG_SLEEP))
        time.sleep(1.0)
        inits = [int(p) for p in _run(docker.cli("inspect", "--format", "{{.State.Pid}}", *names)).split()]
        shims = [procs.parent(pid) for pid in inits]
        if len(set(shims)) != count:
            raise RuntimeError(f"found {len(set(shims))} docker shims for {count} containers")
        pss = [procs.memory(p).pss_kib for p in shims]
        rss = [procs.memory(p).rss_kib for p in shims]
        seccomp = sum(1 for pid in inits if _seccomp_mode(pid) == "2")
        return f"{_memory(pss, rss)}; {seccomp}/{count} filtered ({procs.comm(shims[0])})"


def _seccomp_mode(pid: int) -> str:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("Seccomp:"):
            return line.split()[1]
    return ""


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ...: {done.stderr.strip()}")
    return done.stdout


if __name__ == "__main__":
    sys.exit(main())
