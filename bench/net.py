"""Networking, pallet beside docker in one run: `sudo python bench/net.py` (issue 10).

Owns: the seven figures of issue 10's speed table, measured on pallet and on docker in
one run, turn about, each engine started by this script inside a throwaway network
namespace of its own (`ip netns add`; the daemon under `nsenter --net`), so its bridge,
rules, ip_forward and port publishing never reach the host's namespace; the containers,
networks and traffic of each figure; the table; and a check that the host's links,
iptables, nftables, ip_forward and namespaces are as they were before and our
directories and mounts gone.
Must not: use or stop a docker or palletd the machine runs itself, or kill anything it
did not start (see `palletd.OwnPalletd`, `own_dockerd.OwnDockerd`, `Netns`).

palletd runs as `bench/timed_palletd.py` (its own `main`, with timers on the network
calls), which gives palletd's own figures for network attach and teardown. The traffic
clients (`bench/net_clients.py`) run in the engine's namespace, where its published
ports and the containers' addresses are.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import procs
import rootfs
from engines import IMAGE_NAME, TIMEOUT, EngineError, Pallet, check
from figures import time_command
from own_dockerd import OUTSIDE_ROOTS, OwnDockerd
from palletd import OwnPalletd, _mounts_under

HERE = Path(__file__).resolve().parent
CLIENTS = str(HERE / "net_clients.py")
WEB = ["sh", "-c", "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www"]
HTTP_PORT, SINK_PORT = 18080, 19000  # on 127.0.0.1 of the engine's namespace
CONTAINER_SINK_PORT = 9000
LONG_SLEEP = ["sleep", "100000"]

#: (key, label, target) of the rows, in the issue's order.
ROWS: tuple[tuple[str, str, str], ...] = (
    ("run_rm", "`run --rm busybox true` on the default network, CLI", "≤ 0.5× docker's"),
    ("run_d", "N × `run -d` on the default network, until all running", "≤ 0.5× docker's"),
    ("attach", "network attach inside palletd (netns, veth, addresses, routes, lease, DNS)", "≤ 10 ms median"),
    ("teardown", "teardown visible to `run --rm`", "≤ 2 ms"),
    ("bulk", "1 GB through a port published on 127.0.0.1, % of straight to the container", "≥ 95 %"),
    ("conns", "new TCP connections/s through a published port, % of direct", "≥ 90 %"),
    ("lookup", "a name lookup from a container, median", "≤ 1 ms"),
)


@dataclass(frozen=True, slots=True)
class Row:
    value: float | None  # None: not measured (see detail)
    unit: str = ""
    detail: str = ""


@dataclass
class Side:
    """One engine as the figures see it: its CLI, its namespace, its image."""

    name: str
    cli: Callable[..., list[str]]
    netns: Netns
    image: str
    running: Callable[[list[str]], int]
    daemon_pids: Callable[[], list[int]]
    timings: Path | None = None  # palletd's timer lines (pallet only)
    daemon: Any = None  # the OwnPalletd or OwnDockerd (for figures that talk to it directly)
    rows: dict[str, Row] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Netns:
    """A network namespace of our own under /run/netns; on exit, what runs in it is
    killed (it is all ours) and the namespace deleted."""

    def __init__(self, tag: str) -> None:
        self.name = f"pallet-bench-{tag}-{secrets.token_hex(3)}"
        self.path = Path("/run/netns") / self.name

    @property
    def prefix(self) -> list[str]:
        return ["nsenter", f"--net={self.path}"]

    def __enter__(self) -> Netns:
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        ns = os.stat(self.path)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                st = os.stat(entry / "ns" / "net")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (ns.st_dev, ns.st_ino):
                print(f"bench: cleanup: killing {entry.name} ({_comm(entry.name)}), left in {self.name}",
                      file=sys.stderr)
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        subprocess.run(["ip", "netns", "del", self.name], check=True)


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def attempt(sides: list[Side], keys: tuple[str, ...], measure: Callable[[], None]) -> None:
    """Run one measurement; on failure its rows say why, and the rest go on."""
    try:
        measure()
    except Exception as exc:  # noqa: BLE001 - reported in the table
        for side in sides:
            for key in keys:
                side.rows.setdefault(key, Row(None, detail=f"failed: {exc}"))


def _ms(values: list[float]) -> str:
    return f"min {min(values):.1f} / max {max(values):.1f} ms, n={len(values)}"


def _cli_cpu() -> float:
    """CPU seconds of the children this process has waited for: the CLIs it ran."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _daemon_cpu(side: Side) -> float:
    """CPU seconds the engine's daemons have used so far (utime + stime of each)."""
    total = 0
    for pid in side.daemon_pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _turns(sides: list[Side], r: int) -> list[Side]:
    """The engines in round r: who goes first alternates, so a load that comes and goes
    on a shared machine falls on both alike."""
    return sides if r % 2 == 0 else list(reversed(sides))


# --- 1, 3, 4: run --rm, and palletd's own attach and teardown ---------------------------------


def measure_run_rm(sides: list[Side], runs: int) -> None:
    argv = {s.name: (s.cli("run", "--rm", s.image, "true"),
                     s.cli("run", "--rm", "--network", "none", s.image, "true")) for s in sides}
    for s in sides:  # warm-up, untimed
        for a in argv[s.name]:
            time_command(a)
    first = {s.name: _timing_lines(s) for s in sides}
    bridge: dict[str, list[float]] = {s.name: [] for s in sides}
    none: dict[str, list[float]] = {s.name: [] for s in sides}
    cli_cpu: dict[str, list[float]] = {s.name: [] for s in sides}
    daemon_cpu: dict[str, list[float]] = {s.name: [] for s in sides}
    for r in range(runs):
        for s in _turns(sides, r):
            cpu0, dcpu0 = _cli_cpu(), _daemon_cpu(s)
            bridge[s.name].append(time_command(argv[s.name][0]) * 1e3)
            cli_cpu[s.name].append((_cli_cpu() - cpu0) * 1e3)
            daemon_cpu[s.name].append((_daemon_cpu(s) - dcpu0) * 1e3)
            none[s.name].append(time_command(argv[s.name][1]) * 1e3)
    for s in sides:
        b, n = bridge[s.name], none[s.name]
        s.rows["run_rm"] = Row(statistics.median(b), "ms", _ms(b))
        s.notes.append(f"CPU of one `run --rm` on the default network: the CLI "
                       f"{statistics.median(cli_cpu[s.name]):.0f} ms, the daemon process(es) "
                       f"{statistics.median(daemon_cpu[s.name]):.0f} ms (medians; daemons: "
                       f"{_daemon_names(s)})")
        s.notes.append(
            f"`run --rm --network none busybox true`: {statistics.median(n):.1f} ms ({_ms(n)}); "
            f"the default network adds {statistics.median(b) - statistics.median(n):.1f} ms "
            "(difference of the medians)"
        )
        if s.timings is not None:
            _palletd_figures(s, _read_timings(s.timings)[first[s.name]:])


def _daemon_names(side: Side) -> str:
    return " + ".join(_comm(str(p)) for p in side.daemon_pids())


def _timing_lines(side: Side) -> int:
    return len(_read_timings(side.timings)) if side.timings is not None else 0


def _read_timings(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def _palletd_figures(side: Side, records: list[dict[str, Any]]) -> None:
    """Rows 3 and 4 from palletd's timers over the timed `run --rm` calls on the default
    network: NetworkManager.attach (the network step of the start) and the release in
    the after-exit path, which `run --rm` waits for (see bench/README.md)."""
    attaches = [r for r in records if r["name"] == "NetworkManager.attach" and r.get("mode") == "bridge"]
    ids = {r["container"] for r in attaches}
    releases = [r for r in records
                if r["name"] == "NetworkManager.release" and r.get("noop") is False and r["container"] in ids]
    if not attaches or not releases:
        raise EngineError("palletd's timers recorded no attach or release")
    a = [r["ms"] for r in attaches]
    side.rows["attach"] = Row(statistics.median(a), "ms",
                              _ms(a) + "; " + _breakdown(records, "NetworkManager.attach", len(a)))
    t = [r["ms"] for r in releases]
    side.rows["teardown"] = Row(statistics.median(t), "ms",
                                _ms(t) + "; " + _breakdown(records, "NetworkManager.release", len(t)))
    steps = [r["ms"] for r in records if r["name"] == "ContainerStart.attach_network" and r["container"] in ids]
    if steps:
        side.notes.append(f"the start's whole network step (attach + writing hosts and resolv.conf): "
                          f"median {statistics.median(steps):.2f} ms ({_ms(steps)})")


def _breakdown(records: list[dict[str, Any]], outer: str, calls: int) -> str:
    """Per inner call: the median of its calls and how many per outer call, largest first."""
    by_name: dict[str, list[float]] = {}
    for r in records:
        if r["outer"] == outer and r["name"] != outer:
            by_name.setdefault(r["name"], []).append(r["ms"])
    parts = sorted(by_name.items(), key=lambda kv: -sum(kv[1]))
    return "inside it (median per call, × calls per " + outer.split(".")[1] + "): " + ", ".join(
        f"{name} {statistics.median(v):.2f} ms ×{len(v) / calls:.0f}" for name, v in parts
    )


# --- 2: N x run -d ---------------------------------------------------------------------------------


def _start_many(side: Side, count: int, extra: list[str]) -> tuple[float, float, float]:
    """Seconds from starting `count` `run -d` at once until all are running, and the CPU
    seconds the CLIs and the daemon used meanwhile."""
    names = [f"nb-{secrets.token_hex(3)}-{i}" for i in range(count)]
    try:
        cpu0, dcpu0 = _cli_cpu(), _daemon_cpu(side)
        started = time.perf_counter()
        clients = [
            subprocess.Popen(side.cli("run", "-d", "--name", n, *extra, side.image, *LONG_SLEEP),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for n in names
        ]
        failures = []
        for client in clients:
            _, stderr = client.communicate(timeout=TIMEOUT)
            if client.returncode != 0:
                failures.append(stderr.decode(errors="replace").strip())
        if failures:
            raise EngineError(f"{len(failures)} of {count} `run -d` failed, e.g.: {failures[0]}")
        deadline = time.monotonic() + TIMEOUT
        while (running := side.running(names)) < count:
            if time.monotonic() > deadline:
                raise EngineError(f"only {running} of {count} running after {TIMEOUT}s")
            time.sleep(0.02)
        return time.perf_counter() - started, _cli_cpu() - cpu0, _daemon_cpu(side) - dcpu0
    finally:
        subprocess.run(side.cli("rm", "-f", *names), capture_output=True, timeout=TIMEOUT)


def measure_run_d(sides: list[Side], count: int, rounds: int) -> None:
    first = {s.name: _timing_lines(s) for s in sides}
    bridge: dict[str, list[float]] = {s.name: [] for s in sides}
    none: dict[str, list[float]] = {s.name: [] for s in sides}
    cpu: dict[str, list[tuple[float, float]]] = {s.name: [] for s in sides}
    for r in range(rounds):
        for s in _turns(sides, r):
            seconds, cli, daemon = _start_many(s, count, [])
            bridge[s.name].append(seconds)
            cpu[s.name].append((cli, daemon))
        for s in _turns(sides, r):
            none[s.name].append(_start_many(s, count, ["--network", "none"])[0])
    for s in sides:
        b, n = bridge[s.name], none[s.name]
        s.notes.append(f"CPU while {count} × `run -d` start: the {count} CLIs "
                       f"{statistics.median(c for c, _ in cpu[s.name]):.2f} s, the daemon process(es) "
                       f"{statistics.median(d for _, d in cpu[s.name]):.2f} s (medians of the rounds; "
                       f"{os.cpu_count()} CPUs)")
        s.rows["run_d"] = Row(statistics.median(b), "s",
                              f"N={count}, {rounds} rounds: " + ", ".join(f"{x:.2f}" for x in b) + " s")
        s.notes.append(f"{count} × `run -d --network none`: median {statistics.median(n):.2f} s ("
                       + ", ".join(f"{x:.2f}" for x in n) + " s)")
        if s.timings is not None:
            records = _read_timings(s.timings)[first[s.name]:]
            a = [x["ms"] for x in records if x["name"] == "NetworkManager.attach" and x.get("mode") == "bridge"]
            if a:
                s.notes.append(f"network attach inside palletd while {count} start at once: median "
                               f"{statistics.median(a):.1f} ms ({_ms(a)}); "
                               + _breakdown(records, "NetworkManager.attach", len(a)))


# --- 5, 6: published port vs direct ------------------------------------------------------------------


def _inspect(side: Side, name: str) -> tuple[int, str]:
    out = check(side.cli("inspect", "--format", "{{.State.Pid}} {{.NetworkSettings.IPAddress}}", name))
    pid, _, address = out.strip().partition(" ")
    return int(pid), address


def _client(prefix: list[str], *args: str, timeout: float = 300) -> dict[str, Any]:
    out = check([*prefix, sys.executable, CLIENTS, *args], timeout=timeout)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


@dataclass
class Web:
    """One engine's web container: busybox httpd on 80, and a sink on 9000 in its netns."""

    name: str
    sink: subprocess.Popen[str]
    paths: dict[str, tuple[str, int, int]]  # path: (address, sink port, http port)


def _start_web(side: Side) -> Web:
    name = f"nb-web-{secrets.token_hex(3)}"
    check(side.cli(
        "run", "-d", "--name", name,
        "-p", f"127.0.0.1:{HTTP_PORT}:80", "-p", f"127.0.0.1:{SINK_PORT}:{CONTAINER_SINK_PORT}",
        side.image, *WEB,
    ))  # fmt: skip
    pid, address = _inspect(side, name)
    # The sink runs in the container's network namespace: the same process for both
    # paths, and fast enough (recv_into a 1 MiB buffer) not to be the limit itself.
    sink = subprocess.Popen(
        ["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, CLIENTS, "sink", str(CONTAINER_SINK_PORT)],
        stdout=subprocess.PIPE, text=True,
    )
    web = Web(name, sink, {"published": ("127.0.0.1", SINK_PORT, HTTP_PORT),
                           "direct": (address, CONTAINER_SINK_PORT, 80)})
    assert sink.stdout is not None
    if sink.stdout.readline().strip() != "ready":
        raise EngineError("the sink did not start")
    # Warm-up of both paths (conntrack, docker-proxy's first connection), untimed.
    for host, sink_port, http_port in web.paths.values():
        _client(side.netns.prefix, "send", host, str(sink_port), str(1 << 20))
        _client(side.netns.prefix, "connect", host, str(http_port), "20")
    return web


def measure_traffic(sides: list[Side], size: int, conns: int, rounds: int) -> None:
    webs: dict[str, Web] = {}
    try:
        for s in sides:
            webs[s.name] = _start_web(s)
        rate: dict[str, dict[str, list[float]]] = {s.name: {"published": [], "direct": []} for s in sides}
        cps: dict[str, dict[str, list[float]]] = {s.name: {"published": [], "direct": []} for s in sides}
        for r in range(rounds):
            for s in _turns(sides, r):
                paths = webs[s.name].paths
                order = list(paths) if (r // 2) % 2 == 0 else list(reversed(paths))
                for p in order:
                    host, sink_port, _ = paths[p]
                    seconds = _client(s.netns.prefix, "send", host, str(sink_port), str(size))["seconds"]
                    rate[s.name][p].append(size / 1e6 / seconds)
                for p in order:
                    host, _, http_port = paths[p]
                    seconds = _client(s.netns.prefix, "connect", host, str(http_port), str(conns))["seconds"]
                    cps[s.name][p].append(conns / seconds)
        for s in sides:
            for key, values, unit in (("bulk", rate[s.name], "MB/s"), ("conns", cps[s.name], "conn/s")):
                pub, direct = statistics.median(values["published"]), statistics.median(values["direct"])
                each = "; ".join(f"{p} median {statistics.median(v):.0f} {unit} ("
                                 + ", ".join(f"{x:.0f}" for x in v) + ")" for p, v in values.items())
                ratios = [100 * a / b for a, b in zip(values["published"], values["direct"], strict=True)]
                s.rows[key] = Row(100 * pub / direct, "%",
                                  f"{each}; ratio of the medians; per round "
                                  + ", ".join(f"{x:.0f}" for x in ratios) + " %")
    finally:
        for s in sides:
            web = webs.get(s.name)
            if web is not None:
                web.sink.kill()
                web.sink.wait()
                subprocess.run(s.cli("rm", "-f", web.name), capture_output=True, timeout=TIMEOUT)


# --- 7: a name lookup --------------------------------------------------------------------------------


def measure_lookup(sides: list[Side], count: int, rounds: int) -> None:
    token = secrets.token_hex(3)
    network, asker, target = f"nb-net-{token}", f"nb-ask-{token}", f"nb-web-{token}"
    asking: dict[str, tuple[list[str], str]] = {}
    try:
        for s in sides:
            check(s.cli("network", "create", network))
            for n in (target, asker):
                check(s.cli("run", "-d", "--name", n, "--network", network, s.image, *LONG_SLEEP))
            pid, _ = _inspect(s, asker)
            resolv = check(s.cli("exec", asker, "cat", "/etc/resolv.conf"))
            server = next(line.split()[1] for line in resolv.splitlines() if line.startswith("nameserver"))
            asking[s.name] = (["nsenter", f"--net=/proc/{pid}/ns/net"], server)
        ms: dict[str, list[float]] = {s.name: [] for s in sides}
        for r in range(rounds):
            for s in _turns(sides, r):
                prefix, server = asking[s.name]
                ms[s.name] += _client(prefix, "lookup", server, target, str(count // rounds))["ms"]
        for s in sides:
            m = ms[s.name]
            q = statistics.quantiles(m, n=10)
            s.rows["lookup"] = Row(statistics.median(m), "ms",
                                   f"p90 {q[8]:.3f}, min {min(m):.3f} / max {max(m):.2f} ms, n={len(m)}; "
                                   f"the name of another container on a user network, asked of "
                                   f"{asking[s.name][1]} from the asking container's namespace")
    finally:
        for s in sides:
            subprocess.run(s.cli("rm", "-f", asker, target), capture_output=True, timeout=TIMEOUT)
            subprocess.run(s.cli("network", "rm", network), capture_output=True, timeout=TIMEOUT)


#: The parts of a run (`--only`), each with the rows it fills.
PARTS = ("run_rm", "run_d", "traffic", "lookup")


def measure(sides: list[Side], args: argparse.Namespace) -> None:
    names = " and ".join(s.name for s in sides)
    parts = args.only.split(",")
    if "run_rm" in parts:
        print(f"bench: {names}: run --rm ...", file=sys.stderr)
        attempt(sides, ("run_rm", "attach", "teardown"), lambda: measure_run_rm(sides, args.runs))
    if "run_d" in parts:
        print(f"bench: {names}: {args.containers} x run -d ...", file=sys.stderr)
        attempt(sides, ("run_d",), lambda: measure_run_d(sides, args.containers, args.rounds))
    if "traffic" in parts:
        print(f"bench: {names}: published port vs direct ...", file=sys.stderr)
        attempt(sides, ("bulk", "conns"), lambda: measure_traffic(sides, args.bytes, args.conns, args.rounds))
    if "lookup" in parts:
        print(f"bench: {names}: name lookups ...", file=sys.stderr)
        attempt(sides, ("lookup",), lambda: measure_lookup(sides, args.lookups, args.rounds))


# --- the engines ---------------------------------------------------------------------------------------

#: Every directory an engine of this run used, checked to be gone at the end.
USED_DIRS: list[Path] = []


def pallet_side(stack: contextlib.ExitStack, tar: Path, workdir: Path) -> Side:
    timings = workdir / "palletd-timings.jsonl"
    ns = stack.enter_context(Netns("pallet"))
    daemon = stack.enter_context(OwnPalletd(
        prefix=ns.prefix,
        command=[sys.executable, str(HERE / "timed_palletd.py")],
        env={"PALLET_BENCH_TIMINGS": str(timings)},
    ))
    USED_DIRS.append(daemon.base)
    engine = Pallet(daemon)
    return Side("pallet", daemon.cli, ns, engine.import_image(tar, workdir), engine.running,
                lambda: [daemon.pid], timings, daemon=daemon)


def docker_side(stack: contextlib.ExitStack, tar: Path, workdir: Path) -> Side:
    ns = stack.enter_context(Netns("docker"))
    daemon = OwnDockerd(ns.prefix)
    USED_DIRS.append(daemon.base)
    stack.enter_context(daemon)
    check(daemon.cli("import", str(tar), IMAGE_NAME))

    def running(names: list[str]) -> int:
        out = check(daemon.cli("inspect", "--format", "{{.State.Running}}", *names))
        return out.split().count("true")

    def daemons() -> list[int]:  # dockerd and the containerd it started
        return [daemon.pid, *(p for p in procs.all_pids() if procs.comm(p) == "containerd"
                              and str(daemon.base) in procs.cmdline(p))]

    side = Side("docker", daemon.cli, ns, IMAGE_NAME, running, daemons, daemon=daemon)
    side.notes.append(f"dockerd {daemon.version} (Debian docker.io) with its containerd, its default "
                      "bridge and iptables, userland-proxy on (docker-proxy serves 127.0.0.1)")
    return side


# --- the host, before and after ----------------------------------------------------------------------


def host_state() -> dict[str, str]:
    """What an engine could leave on the host. Other sessions may use this machine at the
    same time (their tests make namespaces and mounts of their own), so namespaces are
    ours by name, and our directories are checked on their own (`leftovers`)."""

    def out(*argv: str) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            return done.stdout + done.stderr
        except FileNotFoundError:
            return f"({argv[0]} not installed)"

    def iptables(tool: str) -> str:  # without the "# Generated ... on <time>" lines
        return "\n".join(line for line in out(tool).splitlines() if not line.startswith("#"))

    return {
        "links": " ".join(sorted(line.split(":")[1].strip() for line in out("ip", "-o", "link").splitlines())),
        "iptables-save": iptables("iptables-save"),
        "ip6tables-save": iptables("ip6tables-save"),
        "nft list ruleset": out("nft", "list", "ruleset"),
        "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
        "our netns": " ".join(n for n in out("ip", "netns", "list").split() if n.startswith("pallet-bench-")),
        "dockerd/containerd/docker-proxy running": " ".join(
            f"{pid} ({name})" for name in ("dockerd", "containerd", "docker-proxy")
            for pid in procs.pids_named(name)
        ),
        "dockerd's files outside its roots": " ".join(str(p) for p in OUTSIDE_ROOTS if p.exists()),
    }


def host_changes(before: dict[str, str], after: dict[str, str], dirs: list[Path]) -> list[str]:
    changes = [f"{key}: before {before[key]!r}, after {after[key]!r}"
               for key in before if before[key] != after[key]]
    for d in dirs:
        mounts = _mounts_under(d)
        if d.exists() or mounts:
            changes.append(f"{d} is still there" + (f", with mounts {mounts}" if mounts else ""))
    return changes


# --- the table ------------------------------------------------------------------------------------------


def _cell(row: Row | None) -> str:
    if row is None:
        return "-"
    if row.value is None:
        return "n/a"
    digits = 0 if row.value >= 100 else 1 if row.value >= 10 else 2
    if row.unit == "ms" and row.value < 10:
        digits = 2 if row.value >= 1 else 3
    return f"{row.value:.{digits}f} {row.unit}".strip()


def _verdict(key: str, sides: dict[str, Side]) -> str:
    p = sides.get("pallet")
    d = sides.get("docker")
    pv = p.rows.get(key).value if p and p.rows.get(key) else None  # type: ignore[union-attr]
    if pv is None:
        return "not measured"
    if key in ("run_rm", "run_d"):
        dv = d.rows.get(key).value if d and d.rows.get(key) else None  # type: ignore[union-attr]
        if not dv:
            return "no docker figure"
        ratio = pv / dv
        return f"{ratio:.2f}× docker: " + ("met" if ratio <= 0.5 else "MISSED")
    limit, below = {"attach": (10, True), "teardown": (2, True), "lookup": (1, True),
                    "bulk": (95, False), "conns": (90, False)}[key]
    return "met" if (pv <= limit if below else pv >= limit) else "MISSED"


def table(sides: dict[str, Side]) -> str:
    return render_table(sides, ROWS, _cell, _verdict)


def render_table(
    sides: dict[str, Side],
    rows: Sequence[tuple[str, str, str]],
    cell: Callable[[Row | None], str],
    verdict: Callable[[str, dict[str, Side]], str],
) -> str:
    """The figures as a Markdown table (one column per engine, the target and the
    verdict), then each row's details and each engine's notes: every bench's report."""
    names = list(sides)
    lines = ["| figure | " + " | ".join(names) + " | target | pallet |",
             "|---|" + "---|" * len(names) + "---|---|"]
    for key, label, target in rows:
        cells = " | ".join(cell(sides[n].rows.get(key)) for n in names)
        lines.append(f"| {label} | {cells} | {target} | {verdict(key, sides)} |")
    lines += ["", "details:"]
    for n in names:
        for key, label, _ in rows:
            row = sides[n].rows.get(key)
            if row is not None and row.detail:
                lines.append(f"  {n}: {label}: {row.detail}")
        lines += [f"  {n}: {note}" for note in sides[n].notes]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/net.py", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=20, help="timed `run --rm` calls per network (default 20)")
    p.add_argument("--containers", type=int, default=20, help="containers started at once (default 20)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of run -d, of each traffic figure and of lookups (default 5)")
    p.add_argument("--bytes", type=int, default=1_000_000_000, help="bytes per transfer (default 1 GB)")
    p.add_argument("--conns", type=int, default=1000, help="HTTP connections per round (default 1000)")
    p.add_argument("--lookups", type=int, default=2000, help="timed DNS lookups (default 2000)")
    p.add_argument("--engines", default="pallet,docker", help="which to measure (default pallet,docker)")
    p.add_argument("--only", default=",".join(PARTS),
                   help="which parts, comma-separated: run_rm (rows 1, 3, 4), run_d (2), traffic (5, 6), "
                        "lookup (7); default all")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/net.py needs root (network namespaces, containers)", file=sys.stderr)
        return 2
    engines = [e for e in args.engines.split(",") if e]
    if set(engines) - {"pallet", "docker"} or set(args.only.split(",")) - set(PARTS):
        print(f"bench: --engines takes pallet and docker; --only takes {', '.join(PARTS)}", file=sys.stderr)
        return 2
    return session("net", engines, lambda sides: measure(list(sides.values()), args), table, args.json)


def session(
    tag: str,
    engines: list[str],
    measure_sides: Callable[[dict[str, Side]], None],
    table_of: Callable[[dict[str, Side]], str],
    json_path: Path | None,
) -> int:
    """One run of a side-by-side benchmark: the engines brought up (each in a namespace
    of its own), `measure_sides` over them, the table, the load, and the check that the
    host is as before (exit status 1 when it is not)."""
    before = host_state()
    load = [Path("/proc/loadavg").read_text().split()[0]]
    sides: dict[str, Side] = {}
    workdir = Path(tempfile.mkdtemp(prefix=f"pallet-bench-{tag}-"))
    try:
        tar = rootfs.write_rootfs_tar(workdir / "busybox-rootfs.tar")
        # Both engines up at once, measured turn about (see `_turns`); each one's daemon
        # idles while the other works.
        with contextlib.ExitStack() as stack:
            for engine in engines:
                print(f"bench: starting {engine} in a network namespace of its own ...", file=sys.stderr)
                try:
                    sides[engine] = (pallet_side if engine == "pallet" else docker_side)(stack, tar, workdir)
                except (EngineError, RuntimeError, OSError, subprocess.CalledProcessError) as exc:
                    print(f"bench: {engine} could not be measured: {exc}", file=sys.stderr)
            measure_sides(sides)
            load.append(Path("/proc/loadavg").read_text().split()[0])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(table_of(sides))
    print(f"\nload average (1 min) at the start {load[0]}, at the end {load[-1]}; {os.cpu_count()} CPUs")
    changes = host_changes(before, host_state(), [workdir, *USED_DIRS])
    print("\nhost: " + ("as before (" + ", ".join(before) + "; our directories gone)" if not changes else "CHANGED:"))
    for change in changes:
        print(f"  {change}")
    if json_path:
        json_path.write_text(json.dumps(
            {n: {k: {"value": r.value, "unit": r.unit, "detail": r.detail} for k, r in s.rows.items()}
             | {"notes": s.notes} for n, s in sides.items()}, indent=2) + "\n")
    return 1 if changes else 0


if __name__ == "__main__":
    sys.exit(main())
