"""`--init` and `rename` (issue 13, also): what --init costs a run and what it does, and a
rename's round trip, with docker's beside them when asked.

Owns: these figures, per engine: the median wall time of `run --rm IMAGE true` without and
with --init (the CLI's whole call: create, start, exit, remove); the zombies a container
that orphans five short-lived children shows 2 s later without and with --init (read from
the container's own /proc through its init's root: docker's docker-init and pallet's
tini-static should both leave none); how long `stop` of `sleep` takes with --init (the
init forwards SIGTERM; without it, sleep as PID 1 would wait out the timeout); and the
median `rename` of a running container. Must not: start or stop anything but its own
daemons (bench/palletd.py, bench/own_dockerd.py), each in a network namespace of its own.

    sudo python bench/init_rename.py                      # pallet
    sudo python bench/init_rename.py --reference docker   # ... and docker, same run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rootfs
from net import Netns
from own_dockerd import OwnDockerd
from palletd import OwnPalletd

IMAGE = "pallet-bench-busybox:latest"
TIMEOUT = 60.0
ORPHANS = 'for i in 1 2 3 4 5; do sh -c "sleep 0.5 &"; done; exec sleep 100000'

Cli = Callable[..., list[str]]


def out(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def timed_ms(argv: list[str]) -> float:
    started = time.perf_counter()
    out(argv)
    return (time.perf_counter() - started) * 1000


def zombies(cli: Cli, name: str) -> int:
    pid = int(out(cli("inspect", "--format", "{{.State.Pid}}", name)))
    count = 0
    for entry in Path(f"/proc/{pid}/root/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                count += (entry / "stat").read_text().rpartition(")")[2].split()[0] == "Z"
    return count


def measure(engine: str, cli: Cli, runs: int) -> dict[str, Any]:
    out(cli("run", "--rm", "--init", IMAGE, "true"))  # untimed: caches, first network
    plain = [timed_ms(cli("run", "--rm", IMAGE, "true")) for _ in range(runs)]
    inited = [timed_ms(cli("run", "--rm", "--init", IMAGE, "true")) for _ in range(runs)]
    out(cli("run", "-d", "--name", f"z-plain-{engine}", IMAGE, "sh", "-c", ORPHANS))
    out(cli("run", "-d", "--init", "--name", f"z-init-{engine}", IMAGE, "sh", "-c", ORPHANS))
    time.sleep(2)
    z_plain, z_init = zombies(cli, f"z-plain-{engine}"), zombies(cli, f"z-init-{engine}")
    stop_ms = timed_ms(cli("stop", "-t", "30", f"z-init-{engine}"))
    code = out(cli("inspect", "--format", "{{.State.ExitCode}}", f"z-init-{engine}")).strip()
    name = f"r-{engine}"
    out(cli("run", "-d", "--name", f"{name}0", IMAGE, "sleep", "100000"))
    renames = [timed_ms(cli("rename", f"{name}{i}", f"{name}{i + 1}")) for i in range(runs)]
    out(cli("rm", "-f", f"z-plain-{engine}", f"z-init-{engine}", f"{name}{runs}"))
    return {
        "engine": engine,
        "run_rm_ms_median": round(statistics.median(plain), 1),
        "run_rm_init_ms_median": round(statistics.median(inited), 1),
        "zombies_without_init": z_plain,
        "zombies_with_init": z_init,
        "stop_with_init_ms": round(stop_ms, 1),
        "stop_with_init_exit_code": int(code),
        "rename_ms_median": round(statistics.median(renames), 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10, help="timed calls per figure (default 10)")
    p.add_argument("--reference", choices=["docker"], help="measure docker too, same run")
    p.add_argument("--json", type=Path, help="write the figures as JSON too")
    args = p.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        tar = rootfs.write_rootfs_tar(Path(tmp) / "busybox-rootfs.tar")
        ns = stack.enter_context(Netns("init"))
        pallet = stack.enter_context(OwnPalletd(prefix=ns.prefix))
        out(pallet.cli("import", str(tar), IMAGE, "-c", 'CMD ["sh"]'))
        results.append(measure("pallet", pallet.cli, args.runs))
        if args.reference == "docker":
            dns = stack.enter_context(Netns("init-docker"))
            docker = stack.enter_context(OwnDockerd(dns.prefix))
            out(docker.cli("import", str(tar), IMAGE))
            results.append(measure("docker", docker.cli, args.runs))
    keys = [k for k in results[0] if k != "engine"]
    print(f"{'figure':<28}" + "".join(f"{r['engine']:>12}" for r in results))
    for key in keys:
        print(f"{key:<28}" + "".join(f"{r[key]:>12}" for r in results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
