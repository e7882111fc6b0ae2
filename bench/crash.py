"""Crash-safety figures: `python bench/crash.py [--containers 100] [--subscribers 100]` (root).

Owns: two figures for issue 3. (1) Re-adoption: N running containers, palletd killed -9,
started again: seconds from the new palletd's exec to its API answering with every
container running again (and the daemon's own "containers reconciled" time). (2) Event
throughput: events/s delivered to M live gRPC subscribers while tags are made as fast as
one client can (each tag is one journalled event), and the bus alone in-process. Must not:
leave anything behind (`palletd.OwnPalletd` cleans up); figures, not tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import rootfs
from palletd import OwnPalletd, console_script, stub

PUBLISHERS = 8


def restart(daemon: OwnPalletd) -> float:
    """Start palletd again on the same dirs; seconds until Ping answers."""
    from pallet.v1 import system_pb2

    argv = [
        *console_script("palletd"), "--root", str(daemon.root), "--run-root",
        str(daemon.run_root), "--host", daemon.host, "--cgroup-parent", daemon.cgroup_parent,
    ]  # fmt: skip
    daemon._channel = None
    with open(daemon.log_path, "ab") as log:
        began = time.monotonic()
        daemon.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    system = stub("SystemService", daemon.channel())
    while True:
        try:
            system.Ping(system_pb2.PingRequest(), timeout=1)
            return time.monotonic() - began
        except Exception:  # noqa: BLE001 - not up yet
            if daemon.proc.poll() is not None or time.monotonic() - began > 300:
                raise RuntimeError(daemon.log_tail()) from None
            time.sleep(0.01)


def running(daemon: OwnPalletd) -> int:
    from pallet.v1 import containers_pb2

    listed = stub("ContainersService", daemon.channel()).List(
        containers_pb2.ListContainersRequest(all=True), timeout=60
    )
    return sum(1 for c in listed.containers if c.state.status == containers_pb2.CONTAINER_STATUS_RUNNING)


def readopt(daemon: OwnPalletd, image: str, count: int) -> dict[str, Any]:
    for i in range(count):
        subprocess.run(daemon.cli("run", "-d", "--name", f"c{i}", image, "sleep", "100000"),
                       check=True, capture_output=True)
    assert running(daemon) == count
    daemon.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    daemon.proc.wait()  # type: ignore[union-attr]
    answering = restart(daemon)
    up = running(daemon)
    reconciled = [json.loads(line) for line in daemon.log_path.read_text().splitlines()
                  if '"containers reconciled"' in line][-1]
    return {"containers": count, "running_after": up, "api_answering_s": round(answering, 3),
            "reconcile_s": reconciled["seconds"]}


def grpc_events(daemon: OwnPalletd, image: str, subscribers: int, events: int) -> dict[str, Any]:
    import grpc

    from pallet.v1 import events_pb2, images_pb2

    start_seq = 0
    counts = [0] * subscribers
    ready = threading.Barrier(subscribers + 1)
    finished = threading.Event()
    last = {"t": 0.0}
    lock = threading.Lock()

    def subscriber(i: int) -> None:
        channel = grpc.insecure_channel(daemon.host)
        stream = stub("EventsService", channel).Subscribe(
            events_pb2.SubscribeRequest(filters=["type=image", "event=tag"]))
        ready.wait()
        for _ in stream:
            counts[i] += 1
            if counts[i] == events:
                with lock:
                    last["t"] = time.monotonic()
                break
        stream.cancel()
        channel.close()

    threads = [threading.Thread(target=subscriber, args=(i,), daemon=True)
               for i in range(subscribers)]
    for t in threads:
        t.start()
    ready.wait()
    time.sleep(1.0)  # every stream registered with the bus
    images = stub("ImagesService", daemon.channel())

    def publisher(k: int) -> None:
        # Several callers at once: one client's round trips would bound the rate otherwise.
        for n in range(k, events, PUBLISHERS):
            images.Tag(images_pb2.TagImageRequest(source=image, target=f"bench/tag:{n}"),
                       timeout=30)

    began = time.monotonic()
    pubs = [threading.Thread(target=publisher, args=(k,)) for k in range(PUBLISHERS)]
    for t in pubs:
        t.start()
    for t in pubs:
        t.join()
    published = time.monotonic() - began
    for t in threads:
        t.join(300)
    finished.set()
    del start_seq
    delivered = sum(counts)
    elapsed = last["t"] - began
    return {"subscribers": subscribers, "events": events, "publish_s": round(published, 3),
            "all_delivered_s": round(elapsed, 3), "delivered": delivered,
            "deliveries_per_s": round(delivered / elapsed), "events_per_s": round(events / elapsed)}


def bus_alone(subscribers: int, events: int) -> dict[str, Any]:
    import logging

    import structlog

    from pallet.daemon.events.bus import EventBus
    from pallet.daemon.events.filters import parse_filters
    from pallet.daemon.store.db import Database

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    async def run(path: Path) -> dict[str, Any]:
        db = Database(path)
        await db.start()
        bus = EventBus(db)
        await bus.start()

        async def consume() -> int:
            n = 0
            async for _ in bus.subscribe(parse_filters([])):
                n += 1
                if n == events:
                    return n
            return n

        tasks = [asyncio.create_task(consume()) for _ in range(subscribers)]
        await asyncio.sleep(0.1)
        began = time.monotonic()
        for i in range(events):
            await bus.publish("image", "tag", f"id{i}", {"name": f"t:{i}"})
        published = time.monotonic() - began
        got = await asyncio.gather(*tasks)
        elapsed = time.monotonic() - began
        await bus.aclose()
        await db.aclose()
        return {"subscribers": subscribers, "events": events, "publish_s": round(published, 3),
                "all_delivered_s": round(elapsed, 3), "delivered": sum(got),
                "events_per_s": round(events / elapsed),
                "deliveries_per_s": round(sum(got) / elapsed)}

    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(run(Path(tmp) / "bench.db"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/crash.py", description=__doc__.split("\n")[0])
    p.add_argument("--containers", type=int, default=100)
    p.add_argument("--subscribers", type=int, default=100)
    p.add_argument("--events", type=int, default=2000)
    args = p.parse_args(argv)
    figures: dict[str, Any] = {"bus_in_process": bus_alone(args.subscribers, args.events * 5)}
    print(json.dumps(figures), file=sys.stderr)
    with OwnPalletd() as daemon, tempfile.TemporaryDirectory() as tmp:
        tar = rootfs.write_rootfs_tar(Path(tmp) / "busybox-rootfs.tar")
        subprocess.run(daemon.cli("import", str(tar), "bench:latest", "-c", 'CMD ["sh"]'),
                       check=True, capture_output=True)
        figures["grpc_events"] = grpc_events(daemon, "bench:latest", args.subscribers,
                                             args.events)
        print(json.dumps(figures), file=sys.stderr)
        figures["readopt"] = readopt(daemon, "bench:latest", args.containers)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
