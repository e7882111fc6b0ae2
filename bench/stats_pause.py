"""`stats` and `pause`, pallet beside docker in one run: `sudo python bench/stats_pause.py`
(issue 12).

Owns: two figures of issue 12's speed table, measured on pallet and on docker in one run:
the daemon's CPU while one `stats` stream shows N running containers (the CLI's stream,
stdout to /dev/null), and a `pause` + `unpause` round trip (over the API on an open
connection, and as two CLI commands); the table; the check that the host is as before.
Must not: use or stop an engine the machine runs itself, or kill anything it did not start
(both engines come up as bench/net.py brings them up: each in a network namespace of its
own; see `net.session`).
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from engines import check
from net import Row, Side, render_table, _daemon_cpu, _turns, attempt, session

ROWS: tuple[tuple[str, str, str], ...] = (
    ("stats_cpu", "`stats` of N running containers (one stream), daemon CPU, % of one core", "≤ 2 %"),
    ("stats_idle", "the same N containers with no stream, daemon CPU, % of one core", "(for reference)"),
    ("pause_rt", "`pause` + `unpause` round trip, API on an open connection", "≤ docker's"),
    ("pause_rt_cli", "`pause` + `unpause` round trip, CLI (two commands)", "≤ docker's"),
)
PARTS = ("stats", "pause")


def _ms(values: list[float]) -> str:
    return f"min {min(values):.2f} / max {max(values):.2f} ms, n={len(values)}"


def _start(side: Side, names: list[str]) -> None:
    procs = [subprocess.Popen(side.cli("run", "-d", "--name", n, side.image, "sleep", "100000"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for n in names]
    for p in procs:
        _, err = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"{side.name}: run -d failed: {err.decode(errors='replace')[-300:]}")


def _remove(side: Side, names: list[str]) -> None:
    if names:
        subprocess.run(side.cli("rm", "-f", *names), capture_output=True, timeout=600)


# --- stats of N ------------------------------------------------------------------------------------------


def _cpu_percent(side: Side, seconds: float, during: Callable[[], Any] | None = None) -> float:
    """The daemon's CPU over `seconds` (while `during()`'s process runs), % of one core."""
    proc = during() if during else None
    try:
        time.sleep(2.0)  # the stream's first samples (and the CLI's start-up) left out
        cpu0, t0 = _daemon_cpu(side), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = _daemon_cpu(side), time.monotonic()
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(30)
    return (cpu1 - cpu0) / (t1 - t0) * 100.0


def measure_stats(sides: list[Side], count: int, seconds: float) -> None:
    names = {s.name: [f"st{i}-{os.getpid()}" for i in range(count)] for s in sides}
    try:
        for s in sides:
            print(f"bench: {s.name}: {count} containers ...", file=sys.stderr)
            _start(s, names[s.name])
        for s in sides:
            idle = _cpu_percent(s, seconds)

            def stream(side: Side = s) -> subprocess.Popen[bytes]:
                return subprocess.Popen(side.cli("stats"), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

            busy = _cpu_percent(s, seconds, stream)
            shown = check(s.cli("stats", "--no-stream", "--format", "{{.Name}}")).split()
            ours = len([n for n in shown if n in names[s.name]])
            daemons = "palletd" if s.name == "pallet" else "dockerd + its containerd"
            s.rows["stats_cpu"] = Row(busy, "%", (
                f"{daemons}, utime+stime over {seconds:g} s while `{s.name} stats` (streaming, "
                f"stdout /dev/null, not a terminal) showed {ours} of {count} containers "
                "(`sleep`, default bridge network), its first 2 s left out"))
            s.rows["stats_idle"] = Row(idle, "%", f"the same {seconds:g} s window with no stream")
    finally:
        for s in sides:
            _remove(s, names[s.name])


# --- pause + unpause -------------------------------------------------------------------------------------


class _UnixHTTP(http.client.HTTPConnection):
    """docker's REST API on its socket, one kept-alive connection (no curl per call)."""

    def __init__(self, path: str) -> None:
        super().__init__("docker", timeout=60)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self._path)
        self.sock = sock


def _pallet_round_trip(channel: Any) -> Callable[[str], None]:
    from pallet.v1 import containers_pb2 as pb, containers_pb2_grpc

    stub = containers_pb2_grpc.ContainersServiceStub(channel)

    def round_trip(name: str) -> None:
        stub.Pause(pb.PauseContainerRequest(container=name), timeout=60)
        stub.Unpause(pb.UnpauseContainerRequest(container=name), timeout=60)

    return round_trip


def _docker_round_trip(socket_path: str) -> Callable[[str], None]:
    conn = _UnixHTTP(socket_path)

    def post(path: str) -> None:
        conn.request("POST", path, headers={"Content-Length": "0"})
        response = conn.getresponse()
        body = response.read()
        if response.status >= 300:
            raise RuntimeError(f"docker: POST {path}: {response.status} {body[:200]!r}")

    def round_trip(name: str) -> None:
        post(f"/containers/{name}/pause")
        post(f"/containers/{name}/unpause")

    return round_trip


def measure_pause(sides: list[Side], runs: int, api: dict[str, Callable[[str], None]]) -> None:
    name = f"paused-{os.getpid()}"
    times: dict[str, list[float]] = {s.name: [] for s in sides}
    cli: dict[str, list[float]] = {s.name: [] for s in sides}
    try:
        for s in sides:
            _start(s, [name])
        for r in range(runs + 1):  # round 0: warm-up, untimed
            for s in _turns(sides, r):
                t0 = time.perf_counter()
                api[s.name](name)
                t1 = time.perf_counter()
                check(s.cli("pause", name))
                check(s.cli("unpause", name))
                t2 = time.perf_counter()
                if r:
                    times[s.name].append((t1 - t0) * 1e3)
                    cli[s.name].append((t2 - t1) * 1e3)
    finally:
        for s in sides:
            _remove(s, [name])
    for s in sides:
        how = ("gRPC Pause + Unpause over one open channel" if s.name == "pallet"
               else "POST /containers/NAME/pause + /unpause, one kept-alive connection")
        a, c = times[s.name], cli[s.name]
        s.rows["pause_rt"] = Row(statistics.median(a), "ms", f"{how}: {_ms(a)}")
        s.rows["pause_rt_cli"] = Row(statistics.median(c), "ms", f"`pause` then `unpause`: {_ms(c)}")


# --- the table ---------------------------------------------------------------------------------------------


def _cell(row: Row | None) -> str:
    if row is None:
        return "-"
    if row.value is None:
        return "n/a"
    digits = 0 if abs(row.value) >= 100 else 1 if abs(row.value) >= 10 else 2
    return f"{row.value:.{digits}f} {row.unit}".strip()


def _verdict(key: str, sides: dict[str, Side]) -> str:
    p, d = sides.get("pallet"), sides.get("docker")
    pv = p.rows[key].value if p and key in p.rows else None
    dv = d.rows[key].value if d and key in d.rows else None
    if pv is None:
        return "not measured"
    if key == "stats_cpu":
        return "met" if pv <= 2.0 else "MISSED"
    if key == "stats_idle":
        return ""
    if dv is None:
        return "no docker figure"
    return f"{pv / dv:.2f}× docker: " + ("met" if pv <= dv else "MISSED")


def table(sides: dict[str, Side]) -> str:
    return render_table(sides, ROWS, _cell, _verdict)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/stats_pause.py", description=__doc__.split("\n")[0])
    p.add_argument("--containers", type=int, default=50, help="containers `stats` shows (default 50)")
    p.add_argument("--seconds", type=float, default=30.0, help="CPU window per engine (default 30)")
    p.add_argument("--runs", type=int, default=20, help="timed pause + unpause round trips (default 20)")
    p.add_argument("--engines", default="pallet,docker", help="which to measure (default pallet,docker)")
    p.add_argument("--only", default=",".join(PARTS), help=f"parts: {', '.join(PARTS)} (default all)")
    p.add_argument("--json", help="also write the figures to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/stats_pause.py needs root (namespaces, cgroups, containers)", file=sys.stderr)
        return 2
    engines = [e for e in args.engines.split(",") if e]
    parts = args.only.split(",")
    if set(engines) - {"pallet", "docker"} or set(parts) - set(PARTS):
        print(f"bench: --engines takes pallet and docker; --only takes {', '.join(PARTS)}", file=sys.stderr)
        return 2

    def measure_sides(sides: dict[str, Side]) -> None:
        ss = list(sides.values())
        if "pause" in parts:
            print("bench: pause + unpause ...", file=sys.stderr)
            api = {n: (_pallet_round_trip(s.daemon.channel()) if n == "pallet"
                       else _docker_round_trip(str(s.daemon.sock))) for n, s in sides.items()}
            attempt(ss, ("pause_rt", "pause_rt_cli"), lambda: measure_pause(ss, args.runs, api))
        if "stats" in parts:
            print(f"bench: stats of {args.containers} ...", file=sys.stderr)
            attempt(ss, ("stats_cpu", "stats_idle"),
                    lambda: measure_stats(ss, args.containers, args.seconds))

    from pathlib import Path

    return session("stats", engines, measure_sides, table, Path(args.json) if args.json else None)


if __name__ == "__main__":
    sys.exit(main())
