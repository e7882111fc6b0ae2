"""Network attach inside palletd: `NetKernel.make_netns` + `attach`, and `remove_netns`.

Owns: timing those calls through the real `pallet.daemon.networks.kernel.NetKernel` (its
worker thread, its netlink sockets) on one bridge, in a throwaway network namespace and a
temporary run root, and printing median and p90. Must not: touch the host's own network
namespace: it re-runs itself under `unshare --net` (an anonymous netns that goes away with
the process, links and all), and removes its temporary run root.

    sudo python bench/net_attach.py [--runs 200] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

INSIDE = "PALLET_BENCH_NET_INSIDE"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(runs: int) -> dict[str, dict[str, float]]:
    from pallet.daemon.networks.attachment import Attachment
    from pallet.daemon.networks.kernel import NetKernel

    root = Path(tempfile.mkdtemp(prefix="plt-bench-net-"))
    kernel = NetKernel(root)
    await kernel.start()
    timings: dict[str, list[float]] = {"make_netns": [], "attach": [], "make_netns+attach": [],
                                      "remove_netns": []}
    try:
        await kernel.ensure_bridge("plbench0", "172.18.0.1/16")
        # One untimed round first: imports, the worker's first socket in a netns.
        await kernel.make_netns("warmup")
        await kernel.attach(Attachment("plbenchw", "plbench0", "warmup", "eth0",
                                       "172.18.255.250/16", "02:42:ac:12:ff:fa",
                                       gateway="172.18.0.1"))
        await kernel.remove_netns("warmup")
        for i in range(runs):
            host = 2 + i
            a = Attachment(
                host_ifname=f"plb{i:06d}", bridge="plbench0", netns=f"c{i}", ifname="eth0",
                address=f"172.18.{host // 256}.{host % 256}/16",
                mac=f"02:42:ac:12:{host // 256:02x}:{host % 256:02x}", gateway="172.18.0.1",
            )
            t0 = time.perf_counter()
            await kernel.make_netns(a.netns)
            t1 = time.perf_counter()
            await kernel.attach(a)
            t2 = time.perf_counter()
            timings["make_netns"].append(t1 - t0)
            timings["attach"].append(t2 - t1)
            timings["make_netns+attach"].append(t2 - t0)
        for i in range(runs):
            t0 = time.perf_counter()
            await kernel.remove_netns(f"c{i}")
            timings["remove_netns"].append(time.perf_counter() - t0)
        await kernel.delete_bridge("plbench0")
    finally:
        for name in await kernel.list_netns():
            await kernel.remove_netns(name)
        await kernel.close()
        shutil.rmtree(root, ignore_errors=True)
    return {
        name: {"median_ms": statistics.median(v) * 1e3, "p90_ms": _percentile(v, 0.9) * 1e3,
               "max_ms": max(v) * 1e3}
        for name, v in timings.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("net_attach: needs root (network namespaces)", file=sys.stderr)
        return 2
    if os.environ.get(INSIDE) != "1":
        os.environ[INSIDE] = "1"
        unshare = shutil.which("unshare") or "unshare"
        os.execv(unshare, [unshare, "--net", sys.executable, *sys.argv])
    figures = asyncio.run(measure(args.runs))
    print(f"network attach, {args.runs} runs, one bridge, in a throwaway netns")
    print(f"{'figure':<20} {'median ms':>10} {'p90 ms':>8} {'max ms':>8}")
    for name, f in figures.items():
        print(f"{name:<20} {f['median_ms']:>10.2f} {f['p90_ms']:>8.2f} {f['max_ms']:>8.2f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
