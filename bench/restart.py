"""Restart policies (issue 13): how soon an `always` container runs again after its exit.

Owns: that one figure: for each of N containers run with `--restart always`, whose first
run exits at once (0) and whose second stays up, the time from its `die` event to the
`start` event of its first restart (both stamped by the engine's daemon: timeNano), with
docker's beside it when asked. The 100 ms of the first back-off are in it (docker waits
them too). Must not: start or stop anything but its own daemons (bench/palletd.py,
bench/own_dockerd.py), each in a network namespace of its own (bench/net.py's Netns).

    sudo python bench/restart.py                          # pallet, 10 containers
    sudo python bench/restart.py --reference docker       # ... and docker, same run
    sudo python bench/restart.py --containers 20 --json out.json
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
# The first run leaves a mark in the container's own layer and exits 0; the restarted
# one finds it and stays up (so each container gives exactly one first attempt).
ONCE = ["sh", "-c", "[ -f /ran ] && exec sleep 100000; touch /ran; exit 0"]
TARGET_MS = 150.0

Cli = Callable[..., list[str]]


def out(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def first_attempt_ms(cli: Cli, name: str) -> float:
    """Run one `always` container; ms from its die to the start of its first restart."""
    since = time.time() - 1
    out(cli("run", "-d", "--name", name, "--restart", "always", IMAGE, *ONCE))
    deadline = time.monotonic() + TIMEOUT
    while True:
        # Running is true during the back-off too (docker's, and pallet's): not Restarting.
        count, running, restarting = out(cli(
            "inspect", "--format", "{{.RestartCount}} {{.State.Running}} {{.State.Restarting}}",
            name)).split()
        if int(count) >= 1 and running == "true" and restarting == "false":
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} was not restarted in {TIMEOUT}s")
        time.sleep(0.05)
    lines = out(cli("events", "--since", f"{since:.3f}", "--until", f"{time.time() + 1:.3f}",
                    "--filter", f"container={name}", "--format", "{{json .}}"))
    events = [json.loads(line) for line in lines.splitlines() if line.strip()]
    die = next(e["timeNano"] for e in events if e.get("Action") == "die")
    starts = [e["timeNano"] for e in events if e.get("Action") == "start"]
    if len(starts) < 2:
        raise RuntimeError(f"{name}: no start after the die in {events}")
    start = starts[1]
    out(cli("rm", "-f", name))
    return (start - die) / 1e6


def measure(engine: str, cli: Cli, containers: int) -> dict[str, Any]:
    first_attempt_ms(cli, f"warm-{engine}")  # untimed: caches, the first network set-up
    samples = [first_attempt_ms(cli, f"r{i}-{engine}") for i in range(containers)]
    return {
        "engine": engine,
        "first_attempt_ms_median": round(statistics.median(samples), 1),
        "min_ms": round(min(samples), 1),
        "max_ms": round(max(samples), 1),
        "samples_ms": [round(s, 1) for s in samples],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--containers", type=int, default=10, help="timed containers (default 10)")
    p.add_argument("--reference", choices=["docker"], help="measure docker too, same run")
    p.add_argument("--json", type=Path, help="write the figures as JSON too")
    args = p.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        tar = rootfs.write_rootfs_tar(Path(tmp) / "busybox-rootfs.tar")
        ns = stack.enter_context(Netns("restart"))
        pallet = stack.enter_context(OwnPalletd(prefix=ns.prefix))
        out(pallet.cli("import", str(tar), IMAGE, "-c", 'CMD ["sh"]'))
        results.append(measure("pallet", pallet.cli, args.containers))
        if args.reference == "docker":
            dns = stack.enter_context(Netns("restart-docker"))
            docker = stack.enter_context(OwnDockerd(dns.prefix))
            out(docker.cli("import", str(tar), IMAGE))
            results.append(measure("docker", docker.cli, args.containers))
    print(f"{'engine':<8} {'die -> start of the first restart (median)':<44} {'min':>8} {'max':>8}")
    for r in results:
        print(f"{r['engine']:<8} {r['first_attempt_ms_median']:>10.1f} ms (target ≤ {TARGET_MS:.0f} ms)"
              f"{'':<15} {r['min_ms']:>6.1f}   {r['max_ms']:>6.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
