"""Crash-safety figures: `python bench/crash.py [--containers 100] [--subscribers 100]` (root).

Owns: two figures for issue 3. (1) Re-adoption: N running containers, palletd killed -9,
started again: seconds from the new palletd's exec to its API answering with every
container running again (and the daemon's own "containers reconciled" time). (2) Event
throughput: events/s delivered to M live gRPC subscribers while PUBLISHERS callers make
tags as fast as they can (each tag is one journalled event), with the CPU palletd, the
subscribers and the publishers each used meanwhile (on a small shared machine the
client's own CPU can bound the figure); and the bus alone in-process. Must not: leave
anything behind (`palletd.OwnPalletd` cleans up); figures, not tests.

`--only events --runs 5` repeats just the event figure (medians at the end); `--client
threads` reads the streams the first version's way (a blocking stream per thread),
`--client both` measures both. Run another checkout's daemon with the same benchmark by
putting its packages first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import rootfs
from eventsubs import subscribers_process
from palletd import OwnPalletd, stub

PUBLISHERS = 8


def restart(daemon: OwnPalletd) -> float:
    """Start palletd again on the same dirs; seconds until Ping answers."""
    began = time.monotonic()
    daemon.start()
    return time.monotonic() - began


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


def grpc_events(
    daemon: OwnPalletd, image: str, subscribers: int, events: int, run: int = 0,
    client: str = "aio",
) -> dict[str, Any]:
    """Tags made by PUBLISHERS callers at once, each delivered to every subscriber.

    The subscribers run in a process of their own (`client`: "aio", one event loop with a
    channel, i.e. a connection, per subscriber; or "threads", a blocking stream per thread
    as the first version of this benchmark did, which costs the client about twice the
    daemon's CPU). They subscribe from the journal's current end (`since_seq`), so no
    event can slip past before their streams are registered, and check that each sees
    the seqs one after another with no gap or repeat.
    """
    from pallet.v1 import images_pb2, system_pb2

    since = stub("SystemService", daemon.channel()).Info(system_pb2.InfoRequest(), timeout=30)
    ctx = multiprocessing.get_context("spawn")  # not fork: this process holds gRPC threads
    mine, theirs = ctx.Pipe()
    child = ctx.Process(target=subscribers_process,
                        args=(theirs, client, daemon.host, subscribers, events,
                              since.last_event_seq))
    child.start()
    try:
        if not mine.poll(120):
            raise RuntimeError("subscribers did not connect within 120 s")
        assert mine.recv() == "ready"
        images = stub("ImagesService", daemon.channel())

        def publisher(k: int) -> None:
            # Several callers at once: one client's round trips would bound the rate otherwise.
            for n in range(k, events, PUBLISHERS):
                images.Tag(images_pb2.TagImageRequest(source=image, target=f"bench/tag{run}:{n}"),
                           timeout=30)

        began = time.monotonic()
        daemon_cpu0, own_cpu0 = cpu_seconds(daemon.pid), time.process_time()
        pubs = [threading.Thread(target=publisher, args=(k,)) for k in range(PUBLISHERS)]
        for t in pubs:
            t.start()
        for t in pubs:
            t.join()
        published = time.monotonic() - began
        publisher_cpu = time.process_time() - own_cpu0
        if not mine.poll(300):
            raise RuntimeError("subscribers did not finish within 300 s")
        got: dict[str, Any] = mine.recv()
        daemon_cpu = cpu_seconds(daemon.pid) - daemon_cpu0
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
            child.join()
    delivered = got["delivered"]
    elapsed = (got["last_at"] - began) if subscribers else published
    return {"client": client, "subscribers": subscribers, "events": events,
            "publish_s": round(published, 3), "all_delivered_s": round(elapsed, 3),
            "delivered": delivered, "deliveries_per_s": round(delivered / elapsed),
            "events_per_s": round(events / elapsed),
            # Should be 0: a subscriber saw a seq out of order, repeated, or skipped one.
            "seq_errors": got["seq_errors"],
            # CPU seconds over the same span: which side is the limit on 2 shared cores.
            "palletd_cpu_s": round(daemon_cpu, 2),
            "palletd_cpu_us_per_delivery": round(daemon_cpu / max(delivered, 1) * 1e6, 1),
            "subscribers_cpu_s": round(got["cpu_s"], 2),
            "publishers_cpu_s": round(publisher_cpu, 2),
            "loadavg_1m": round(os.getloadavg()[0], 2)}


def grpc_floor(subscribers: int, events: int, rate: float) -> dict[str, Any]:
    """What bare grpc.aio costs for the same fan-out: no palletd, no bus, no journal.

    A server in this process streams pre-serialised SubscribeResponses (tag events with
    seqs 1..events) from a plain queue per stream to the same subscriber process as
    `grpc_events`, `rate` events a second (per-message cost depends on the rate: at higher
    rates more completions share a wake-up). palletd's CPU per delivery against this
    one's says how much of it is pallet's own.
    """
    import grpc

    from pallet.v1 import events_pb2

    wire = [events_pb2.SubscribeResponse(event=events_pb2.Event(
        seq=n, type="image", action="tag", actor_id="sha256:" + "ab" * 32,
        attributes={"name": f"bench/tag:{n}"}, time={"seconds": 1_700_000_000, "nanos": n},
    )).SerializeToString() for n in range(1, events + 1)]

    async def run(sock: str) -> dict[str, Any]:
        queues: list[asyncio.Queue[bytes]] = []

        async def subscribe(request: Any, context: Any) -> AsyncIterator[bytes]:
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            queues.append(queue)
            while True:
                yield await queue.get()

        server = grpc.aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "pallet.v1.EventsService", {"Subscribe": grpc.unary_stream_rpc_method_handler(
                subscribe, request_deserializer=None, response_serializer=None)}),))
        server.add_insecure_port(f"unix:{sock}")
        await server.start()
        ctx = multiprocessing.get_context("spawn")
        mine, theirs = ctx.Pipe()
        child = ctx.Process(target=subscribers_process,
                            args=(theirs, "aio", f"unix://{sock}", subscribers, events, 0))
        child.start()
        loop = asyncio.get_running_loop()
        try:
            assert await loop.run_in_executor(None, mine.recv) == "ready"
            while len(queues) < subscribers:
                await asyncio.sleep(0.01)
            began = time.monotonic()
            cpu0 = time.process_time()
            for n, data in enumerate(wire):
                for queue in queues:
                    queue.put_nowait(data)
                # Paced like a publisher: the next event at its time, not before.
                await asyncio.sleep(max(0.0, began + (n + 1) / rate - time.monotonic()))
            got: dict[str, Any] = await loop.run_in_executor(None, mine.recv)
            cpu = time.process_time() - cpu0
        finally:
            await loop.run_in_executor(None, child.join, 10)
            if child.is_alive():
                child.kill()
            await server.stop(None)
        elapsed = got["last_at"] - began
        return {"subscribers": subscribers, "events": events, "rate": rate,
                "delivered": got["delivered"], "deliveries_per_s": round(got["delivered"] / elapsed),
                "seq_errors": got["seq_errors"], "server_cpu_s": round(cpu, 2),
                "server_cpu_us_per_delivery": round(cpu / max(got["delivered"], 1) * 1e6, 1),
                "subscribers_cpu_s": round(got["cpu_s"], 2),
                "loadavg_1m": round(os.getloadavg()[0], 2)}

    with tempfile.TemporaryDirectory(prefix="plt-floor-", dir="/tmp") as tmp:
        return asyncio.run(run(f"{tmp}/floor.sock"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
            if hasattr(bus, "subscribe_batches"):
                # As the gRPC servicer reads the bus: whatever is waiting, at once.
                async for batch in bus.subscribe_batches(parse_filters([])):
                    n += len(batch)
                    if n >= events:
                        return n
                return n
            # An older checkout's bus (PYTHONPATH), one event at a time.
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
    p.add_argument("--runs", type=int, default=1,
                   help="repeat each event figure this many times (the machine is noisy)")
    p.add_argument("--only", choices=("all", "events", "bus", "readopt", "floor"), default="all")
    p.add_argument("--floor-rate", type=float, default=0.0,
                   help="events/s for the bare-gRPC floor (default: the rate palletd reached)")
    p.add_argument("--client", choices=("aio", "threads", "both"), default="aio",
                   help="how the event subscribers read their streams (see grpc_events)")
    args = p.parse_args(argv)
    figures: dict[str, Any] = {}
    if args.only in ("all", "bus"):
        figures["bus_in_process"] = [bus_alone(args.subscribers, args.events * 5)
                                     for _ in range(args.runs)]
        print(json.dumps(figures), file=sys.stderr)
    if args.only != "bus" and args.only != "floor":
        with OwnPalletd() as daemon, tempfile.TemporaryDirectory() as tmp:
            tar = rootfs.write_rootfs_tar(Path(tmp) / "busybox-rootfs.tar")
            subprocess.run(daemon.cli("import", str(tar), "bench:latest", "-c", 'CMD ["sh"]'),
                           check=True, capture_output=True)
            if args.only in ("all", "events"):
                clients = ("aio", "threads") if args.client == "both" else (args.client,)
                figures["grpc_events"] = [
                    grpc_events(daemon, "bench:latest", args.subscribers, args.events,
                                run * len(clients) + k, client)
                    for run in range(args.runs) for k, client in enumerate(clients)
                ]
                print(json.dumps(figures), file=sys.stderr)
            if args.only in ("all", "readopt"):
                figures["readopt"] = readopt(daemon, "bench:latest", args.containers)
    if args.only in ("all", "events", "floor"):
        rate = args.floor_rate or statistics.median(
            [r["events_per_s"] for r in figures.get("grpc_events", [])] or [130])
        figures["grpc_floor"] = [grpc_floor(args.subscribers, args.events, rate)
                                 for _ in range(args.runs)]
    keys = ("events_per_s", "deliveries_per_s", "palletd_cpu_us_per_delivery",
            "server_cpu_us_per_delivery")
    for name, runs in [("bus_in_process", figures.get("bus_in_process", [])),
                       ("grpc_floor", figures.get("grpc_floor", []))] + [
        (f"grpc_events_{c}", [r for r in figures.get("grpc_events", []) if r["client"] == c])
        for c in ("aio", "threads")
    ]:
        if len(runs) > 1:
            figures[name + "_median"] = {
                k: statistics.median(r[k] for r in runs) for k in keys if k in runs[0]}
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
