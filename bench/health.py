"""Healthchecks (issue 13): what probing costs the daemon, pallet beside docker in one run:
`sudo python bench/health.py`.

Owns: one figure of issue 13's speed table and its reference rows: the daemon's CPU (% of
one core) while N running containers each have a healthcheck every second (`true`, run
by /bin/sh -c as docker's --health-cmd runs it), over a window after every container has
had its first probe (nothing asks the daemon anything during it); the same containers'
shims (with the probe processes they reaped); the probes that ended in that window (their
exec_die events, read afterwards), so a figure that probes less cannot look cheaper; the table; the check that the host is as before. Must
not: use or stop an engine the machine runs itself, or kill anything it did not start
(both engines come up as bench/net.py brings them up: each in a network namespace of its
own; see `net.session`).

    sudo python bench/health.py                            # 50 containers, 30 s
    sudo python bench/health.py --containers 20 --seconds 10 --engines pallet
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import procs
from engines import check
from net import Row, Side, _daemon_cpu, attempt, render_table, session

ROWS: tuple[tuple[str, str, str], ...] = (
    ("health_cpu", "N containers with a 1 s healthcheck, daemon CPU, % of one core", "≤ 10 %"),
    ("health_shims", "the same window, the containers' shims and what they reaped, % of one core",
     "(for reference)"),
    ("health_probes", "probes per second in that window (their exec_die events)", "(about N)"),
    ("health_per_probe", "daemon CPU per probe, ms", "(for reference)"),
    ("idle_cpu", "the same N containers without a healthcheck, daemon CPU, % of one core",
     "(for reference)"),
)
TARGET = 10.0


def _start(side: Side, names: list[str], health: bool) -> None:
    flags = ["--health-cmd", "true", "--health-interval", "1s"] if health else []
    started = [subprocess.Popen(side.cli("run", "-d", "--name", n, *flags, side.image, "sleep", "100000"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for n in names]
    for p in started:
        _, err = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"{side.name}: run -d failed: {err.decode(errors='replace')[-300:]}")


def _remove(side: Side, names: list[str]) -> None:
    if names:
        subprocess.run(side.cli("rm", "-f", *names), capture_output=True, timeout=600)


def _shim_pids(side: Side) -> list[int]:
    want = "pallet-shim" if side.name == "pallet" else "containerd-shim"
    base = str(side.daemon.base)
    return [p for p in procs.all_pids()
            if procs.comm(p).startswith(want[:15]) and base in procs.cmdline(p)]


def _cpu_with_children(pids: list[int]) -> float:
    """CPU seconds of `pids` and of the children they have reaped."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def _logs(side: Side, names: list[str]) -> dict[str, list[str]]:
    """Each container's health log: the start times of its last 5 probes."""
    out = check(side.cli("inspect", "--format", "{{json .State.Health}}", *names))
    logs = {}
    for name, line in zip(names, out.splitlines()):
        health = json.loads(line) if line.strip() not in ("", "null") else None
        logs[name] = [entry["Start"] for entry in (health or {}).get("Log") or []]
    return logs


def _probes_between(side: Side, t0: float, t1: float) -> int:
    """The probes that ended between `t0` and `t1` (wall clock): their exec_die events,
    read after the window (docker journals a healthcheck's exec as pallet does)."""
    out = check(side.cli("events", "--since", f"{t0:.3f}", "--until", f"{t1:.3f}",
                         "--filter", "event=exec_die", "--format", "{{.Action}}"))
    return len(out.split())


def measure(sides: list[Side], count: int, seconds: float) -> None:
    for s in sides:
        names = [f"hc{i}-{os.getpid()}" for i in range(count)]
        idle_names = [f"idle{i}-{os.getpid()}" for i in range(count)]
        try:
            print(f"bench: {s.name}: {count} containers without a healthcheck ...", file=sys.stderr)
            _start(s, idle_names, health=False)
            time.sleep(2.0)
            cpu0, t0 = _daemon_cpu(s), time.monotonic()
            time.sleep(seconds)
            idle = (_daemon_cpu(s) - cpu0) / (time.monotonic() - t0) * 100.0
            _remove(s, idle_names)
            idle_names = []
            print(f"bench: {s.name}: {count} containers with a 1 s healthcheck ...", file=sys.stderr)
            _start(s, names, health=True)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # every one has had its first probe
                if all(_logs(s, names).values()):
                    break
                time.sleep(1.0)
            shims = _shim_pids(s)
            wall0 = time.time()
            cpu0, shim0, t0 = _daemon_cpu(s), _cpu_with_children(shims), time.monotonic()
            time.sleep(seconds)  # nothing asks the daemon anything meanwhile
            cpu1, shim1, t1 = _daemon_cpu(s), _cpu_with_children(shims), time.monotonic()
            wall1 = wall0 + (t1 - t0)
            elapsed = t1 - t0
            busy = (cpu1 - cpu0) / elapsed * 100.0
            shim_cpu = (shim1 - shim0) / elapsed * 100.0
            rate = _probes_between(s, wall0, wall1) / elapsed
            status = check(s.cli("inspect", "--format", "{{.State.Health.Status}}", *names)).split()
            healthy = status.count("healthy")
            daemons = "palletd" if s.name == "pallet" else "dockerd + its containerd"
            s.rows["health_cpu"] = Row(busy, "%", (
                f"{daemons}, utime+stime over {elapsed:.0f} s, {count} containers (`sleep`, "
                f"default bridge) with --health-cmd true --health-interval 1s, {healthy} "
                "healthy at the end; the window starts once each has been probed"))
            s.rows["health_shims"] = Row(shim_cpu, "%", (
                f"{len(shims)} {'pallet-shim' if s.name == 'pallet' else 'containerd-shim'} "
                "processes, utime+stime with their reaped children's (the probes, and runc for "
                "docker)"))
            s.rows["health_probes"] = Row(rate, "/s", "exec_die events in the window")
            per_probe = (cpu1 - cpu0) / (rate * elapsed) * 1e3 if rate else None
            s.rows["health_per_probe"] = Row(per_probe, "ms", "the daemon CPU row over the probes row")
            s.rows["idle_cpu"] = Row(idle, "%", f"{seconds:g} s, {count} containers, no healthcheck")
        finally:
            _remove(s, names)
            _remove(s, idle_names)


def _cell(row: Row | None) -> str:
    if row is None:
        return "-"
    if row.value is None:
        return "n/a"
    digits = 0 if abs(row.value) >= 100 else 1 if abs(row.value) >= 10 else 2
    return f"{row.value:.{digits}f} {row.unit}".strip()


def _verdict(key: str, sides: dict[str, Side]) -> str:
    p = sides.get("pallet")
    pv = p.rows[key].value if p and key in p.rows else None
    if pv is None:
        return "not measured"
    if key != "health_cpu":
        return ""
    d = sides.get("docker")
    dv = d.rows[key].value if d and key in d.rows else None
    vs = f" ({pv / dv:.2f}× docker)" if dv else ""
    return ("met" if pv <= TARGET else "MISSED") + vs


def table(sides: dict[str, Side]) -> str:
    return render_table(sides, ROWS, _cell, _verdict)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/health.py", description=__doc__.split("\n")[0])
    p.add_argument("--containers", type=int, default=50, help="containers probed (default 50)")
    p.add_argument("--seconds", type=float, default=30.0, help="CPU window per engine (default 30)")
    p.add_argument("--engines", default="pallet,docker", help="which to measure (default pallet,docker)")
    p.add_argument("--json", help="also write the figures to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/health.py needs root (namespaces, cgroups, containers)", file=sys.stderr)
        return 2
    engines = [e for e in args.engines.split(",") if e]
    if set(engines) - {"pallet", "docker"}:
        print("bench: --engines takes pallet and docker", file=sys.stderr)
        return 2

    def measure_sides(sides: dict[str, Side]) -> None:
        ss = list(sides.values())
        attempt(ss, tuple(key for key, _, _ in ROWS),
                lambda: measure(ss, args.containers, args.seconds))

    return session("health", engines, measure_sides, table, Path(args.json) if args.json else None)


if __name__ == "__main__":
    sys.exit(main())
