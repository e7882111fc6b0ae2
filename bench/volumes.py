"""Volumes and container files, pallet beside docker in one run: `sudo python bench/volumes.py`
(issue 11).

Owns: the four figures of issue 11's speed table, measured on pallet and on docker in one
run, turn about: what 5 volumes and a bind add to a start, `cp` of a 1 GB file and of a
20,000-file tree in both directions, `commit` of 100 MB of changes, and `volume create` +
`volume rm`; the table; the check that the host is as before. Must not: use or stop an
engine the machine runs itself, or kill anything it did not start (both engines come up
the way bench/net.py brings them up: each in a network namespace of its own).

A row whose verb an engine does not have yet (pallet before `cp` or `commit` landed) is
`n/a` with the reason; the others are still measured.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engines import EngineError, check
from figures import time_command
from net import USED_DIRS, Row, Side, _turns, attempt, session

ROWS: tuple[tuple[str, str, str], ...] = (
    ("start_volumes", "start with 5 volumes and a bind, minus one with none", "≤ 5 ms"),
    ("cp_in_1g", "`cp` of a 1 GB file into a container", "≥ docker's MB/s"),
    ("cp_out_1g", "`cp` of a 1 GB file out of a container", "≥ docker's MB/s"),
    ("cp_in_tree", "`cp` of a 20,000-file tree into a container", "≥ docker's files/s"),
    ("cp_out_tree", "`cp` of a 20,000-file tree out of a container", "≥ docker's files/s"),
    ("commit_100m", "`commit` of a container with 100 MB of changes", "≤ docker's time"),
    ("volume_cycle", "`volume create` + `volume rm`, API", "≤ 20 ms"),
    ("volume_cycle_cli", "`volume create` + `volume rm`, CLI (two commands)", "(for reference)"),
)
LONG_SLEEP = ["sleep", "100000"]


def _ms(values: list[float]) -> str:
    return f"min {min(values):.1f} / max {max(values):.1f} ms, n={len(values)}"


def _has_verb(side: Side, verb: str) -> bool:
    done = subprocess.run(side.cli(verb, "--help"), capture_output=True, timeout=60)
    return done.returncode == 0


def _remove_containers(side: Side, names: list[str]) -> None:
    if names:
        subprocess.run(side.cli("rm", "-f", *names), capture_output=True, timeout=300)


# --- start with volumes -------------------------------------------------------------------------------


def measure_start(sides: list[Side], runs: int, workdir: Path,
                  starters: dict[str, Callable[[str], None]]) -> None:
    host = workdir / "bind-src"
    host.mkdir(exist_ok=True)
    times: dict[str, dict[str, list[float]]] = {s.name: {"with": [], "without": []} for s in sides}
    made: dict[str, list[str]] = {s.name: [] for s in sides}
    full_ids: set[str] = set()  # pallet's containers with volumes, for its own step timer
    try:
        for r in range(runs + 1):  # round 0: warm-up, untimed
            for s in _turns(sides, r):
                tag = secrets.token_hex(3)
                plain, full = f"plain-{tag}", f"vols-{tag}"
                mounts = [a for i in range(5) for a in ("-v", f"bv-{tag}-{i}:/v{i}")]
                check(s.cli("create", "--name", plain, "--network", "none", s.image, "true"))
                full_ids.add(check(s.cli("create", "--name", full, "--network", "none", *mounts,
                                         "-v", f"{host}:/b", s.image, "true")).strip())
                made[s.name] += [plain, full]
                pair = [(plain, "without"), (full, "with")]
                for name, key in pair if r % 2 else reversed(pair):  # who goes first alternates
                    t0 = time.perf_counter()
                    starters[s.name](name)
                    elapsed = (time.perf_counter() - t0) * 1e3
                    if r:
                        times[s.name][key].append(elapsed)
                subprocess.run(s.cli("wait", plain, full), capture_output=True, timeout=120)
    finally:
        for s in sides:
            _remove_containers(s, made[s.name])
            vols = check(s.cli("volume", "ls", "-q")).split()
            ours = [v for v in vols if v.startswith("bv-")]
            if ours:
                subprocess.run(s.cli("volume", "rm", *ours), capture_output=True, timeout=300)
    for s in sides:
        w, wo = times[s.name]["with"], times[s.name]["without"]
        how = ("Start over one open gRPC channel" if s.name == "pallet"
               else "POST /containers/NAME/start on docker's socket, one curl each")
        s.rows["start_volumes"] = Row(
            statistics.median(w) - statistics.median(wo), "ms",
            f"{how}: with: median {statistics.median(w):.1f} ({_ms(w)}); without: median "
            f"{statistics.median(wo):.1f} ({_ms(wo)}); the row is the difference of the medians",
        )
        if s.timings is not None:
            steps = [r["ms"] for r in _timings(s.timings)
                     if r["name"] == "ContainerStart.mount_volumes" and r["container"] in full_ids]
            if steps:
                s.notes.append(
                    f"palletd's own `volumes` start step for 5 volumes and a bind (mounted, "
                    f"counted, events journalled): median {statistics.median(steps):.2f} ms "
                    f"({_ms(steps)})"
                )


def _timings(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


# --- cp --------------------------------------------------------------------------------------------------


def _tree(top: Path, files: int) -> None:
    """`files` files of 1 KiB in 100 directories."""
    payload = os.urandom(1024)
    for i in range(files):
        d = top / f"d{i % 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}").write_bytes(payload)


def measure_cp(sides: list[Side], rounds: int, size: int, files: int, workdir: Path) -> None:
    big = workdir / "big.bin"
    with open(big, "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(size // len(chunk)):
            f.write(chunk)
    tree = workdir / "tree"
    _tree(tree, files)
    usable = [s for s in sides if _has_verb(s, "cp")]
    for s in sides:
        if s not in usable:
            for key in ("cp_in_1g", "cp_out_1g", "cp_in_tree", "cp_out_tree"):
                s.rows[key] = Row(None, detail=f"{s.name} has no cp verb yet")
    if not usable:
        return
    results: dict[str, dict[str, list[float]]] = {s.name: {} for s in usable}
    try:
        for s in usable:
            check(s.cli("run", "-d", "--name", "cp-target", "--network", "none", s.image, *LONG_SLEEP))
        for r in range(rounds):
            for s in _turns(usable, r):
                out = workdir / f"out-{s.name}-{r}"
                out.mkdir()
                steps: list[tuple[str, list[str]]] = [
                    ("cp_in_1g", s.cli("cp", str(big), f"cp-target:/tmp/big-{r}")),
                    ("cp_out_1g", s.cli("cp", f"cp-target:/tmp/big-{r}", str(out / "big"))),
                    ("cp_in_tree", s.cli("cp", str(tree), f"cp-target:/tmp/tree-{r}")),
                    ("cp_out_tree", s.cli("cp", f"cp-target:/tmp/tree-{r}", str(out / "tree"))),
                ]
                for key, argv in steps:
                    results[s.name].setdefault(key, []).append(time_command(argv))
                if (out / "big").stat().st_size != big.stat().st_size:
                    raise EngineError(f"{s.name}: cp out gave {(out / 'big').stat().st_size} bytes")
                shutil.rmtree(out)
                subprocess.run(s.cli("exec", "cp-target", "rm", "-rf", f"/tmp/big-{r}", f"/tmp/tree-{r}"),
                               capture_output=True, timeout=300)
    finally:
        for s in usable:
            _remove_containers(s, ["cp-target"])
    for s in usable:
        for key, amount, unit in (("cp_in_1g", size / 1e6, "MB/s"), ("cp_out_1g", size / 1e6, "MB/s"),
                                  ("cp_in_tree", files, "files/s"), ("cp_out_tree", files, "files/s")):
            secs = results[s.name][key]
            s.rows[key] = Row(amount / statistics.median(secs), unit,
                              f"median {statistics.median(secs):.2f} s (min {min(secs):.2f} / max "
                              f"{max(secs):.2f}), n={len(secs)}")


# --- commit ------------------------------------------------------------------------------------------------


def measure_commit(sides: list[Side], rounds: int, size_mb: int) -> None:
    usable = [s for s in sides if _has_verb(s, "commit")]
    for s in sides:
        if s not in usable:
            s.rows["commit_100m"] = Row(None, detail=f"{s.name} has no commit verb yet")
    results: dict[str, list[float]] = {s.name: [] for s in usable}
    for r in range(rounds):
        for s in _turns(usable, r):
            name, image = f"commit-src-{r}", f"bench-committed:{r}"
            check(s.cli("run", "--name", name, "--network", "none", s.image, "sh", "-c",
                        f"head -c {size_mb * 1_000_000} /dev/urandom > /changes.bin"))
            try:
                results[s.name].append(time_command(s.cli("commit", name, image)) * 1e3)
            finally:
                _remove_containers(s, [name])
                subprocess.run(s.cli("rmi", "-f", image), capture_output=True, timeout=120)
    for s in usable:
        t = results[s.name]
        s.rows["commit_100m"] = Row(statistics.median(t), "ms", _ms(t))


# --- volume create + rm -----------------------------------------------------------------------------------


def measure_volume_cycle(sides: list[Side], runs: int, api: dict[str, Callable[[str], None]]) -> None:
    cli: dict[str, list[float]] = {s.name: [] for s in sides}
    apis: dict[str, list[float]] = {s.name: [] for s in sides}
    for r in range(runs + 1):
        for s in _turns(sides, r):
            name = f"cycle-{secrets.token_hex(4)}"
            t0 = time.perf_counter()
            check(s.cli("volume", "create", name))
            check(s.cli("volume", "rm", name))
            t1 = time.perf_counter()
            api[s.name](f"cycle-{secrets.token_hex(4)}")
            t2 = time.perf_counter()
            if r:
                cli[s.name].append((t1 - t0) * 1e3)
                apis[s.name].append((t2 - t1) * 1e3)
    for s in sides:
        a, c = apis[s.name], cli[s.name]
        how = ("gRPC over one open channel" if s.name == "pallet"
               else "docker's REST API over its socket, one curl per call")
        s.rows["volume_cycle"] = Row(statistics.median(a), "ms", f"{how}: {_ms(a)}")
        s.rows["volume_cycle_cli"] = Row(statistics.median(c), "ms", _ms(c))


def _pallet_start(daemon_channel: Any) -> Callable[[str], None]:
    from pallet.v1 import containers_pb2, containers_pb2_grpc

    stub = containers_pb2_grpc.ContainersServiceStub(daemon_channel)

    def start(name: str) -> None:
        stub.Start(containers_pb2.StartContainerRequest(container=name), timeout=60)

    return start


def _docker_start(socket_path: str) -> Callable[[str], None]:
    def start(name: str) -> None:
        check(["curl", "-sf", "--unix-socket", socket_path, "-X", "POST",
               f"http://docker/containers/{name}/start"])

    return start


def _pallet_api(daemon_channel: Any) -> Callable[[str], None]:
    from pallet.v1 import volumes_pb2, volumes_pb2_grpc

    stub = volumes_pb2_grpc.VolumesServiceStub(daemon_channel)

    def cycle(name: str) -> None:
        stub.Create(volumes_pb2.CreateVolumeRequest(name=name), timeout=30)
        stub.Remove(volumes_pb2.RemoveVolumeRequest(name=name), timeout=30)

    return cycle


def _docker_api(socket_path: str) -> Callable[[str], None]:
    def cycle(name: str) -> None:
        base = ["curl", "-sf", "--unix-socket", socket_path]
        check(base + ["-X", "POST", "-H", "Content-Type: application/json",
                      "-d", json.dumps({"Name": name}), "http://docker/volumes/create"])
        check(base + ["-X", "DELETE", f"http://docker/volumes/{name}"])

    return cycle


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
    if key == "start_volumes":
        return "met" if pv <= 5 else "MISSED"
    if key == "volume_cycle":
        return "met" if pv <= 20 else "MISSED"
    if key == "volume_cycle_cli":
        return ""
    if dv is None:
        return "no docker figure"
    if key == "commit_100m":
        return f"{pv / dv:.2f}× docker's time: " + ("met" if pv <= dv else "MISSED")
    return f"{pv / dv:.2f}× docker's rate: " + ("met" if pv >= dv else "MISSED")


def table(sides: dict[str, Side]) -> str:
    names = list(sides)
    lines = ["| figure | " + " | ".join(names) + " | target | pallet |",
             "|---|" + "---|" * len(names) + "---|---|"]
    for key, label, target in ROWS:
        cells = " | ".join(_cell(sides[n].rows.get(key)) for n in names)
        lines.append(f"| {label} | {cells} | {target} | {_verdict(key, sides)} |")
    lines += ["", "details:"]
    for n in names:
        for key, label, _ in ROWS:
            row = sides[n].rows.get(key)
            if row is not None and row.detail:
                lines.append(f"  {n}: {label}: {row.detail}")
        lines += [f"  {n}: {note}" for note in sides[n].notes]
    return "\n".join(lines)


PARTS = ("start", "cp", "commit", "volumes")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/volumes.py", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=20, help="timed starts and volume cycles (default 20)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of cp and commit (default 3)")
    p.add_argument("--bytes", type=int, default=1_000_000_000, help="size of the cp file (default 1 GB)")
    p.add_argument("--files", type=int, default=20_000, help="files in the cp tree (default 20,000)")
    p.add_argument("--commit-mb", type=int, default=100, help="MB of changes to commit (default 100)")
    p.add_argument("--engines", default="pallet,docker", help="which to measure (default pallet,docker)")
    p.add_argument("--only", default=",".join(PARTS), help=f"parts: {', '.join(PARTS)} (default all)")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/volumes.py needs root (namespaces, mounts, containers)", file=sys.stderr)
        return 2
    engines = [e for e in args.engines.split(",") if e]
    parts = args.only.split(",")
    if set(engines) - {"pallet", "docker"} or set(parts) - set(PARTS):
        print(f"bench: --engines takes pallet and docker; --only takes {', '.join(PARTS)}", file=sys.stderr)
        return 2

    def measure_sides(sides: dict[str, Side]) -> None:
        api: dict[str, Callable[[str], None]] = {}
        starters: dict[str, Callable[[str], None]] = {}
        for name, side in sides.items():
            if name == "pallet":
                api[name] = _pallet_api(side.daemon.channel())
                starters[name] = _pallet_start(side.daemon.channel())
            else:
                api[name] = _docker_api(str(side.daemon.sock))
                starters[name] = _docker_start(str(side.daemon.sock))
        ss = list(sides.values())
        workdir = Path(tempfile.mkdtemp(prefix="pallet-bench-volumes-data-"))
        USED_DIRS.append(workdir)
        try:
            if "start" in parts:
                print("bench: start with volumes ...", file=sys.stderr)
                attempt(ss, ("start_volumes",), lambda: measure_start(ss, args.runs, workdir, starters))
            if "volumes" in parts:
                print("bench: volume create + rm ...", file=sys.stderr)
                attempt(ss, ("volume_cycle", "volume_cycle_cli"),
                        lambda: measure_volume_cycle(ss, args.runs, api))
            if "cp" in parts:
                print("bench: cp ...", file=sys.stderr)
                attempt(ss, ("cp_in_1g", "cp_out_1g", "cp_in_tree", "cp_out_tree"),
                        lambda: measure_cp(ss, args.rounds, args.bytes, args.files, workdir))
            if "commit" in parts:
                print("bench: commit ...", file=sys.stderr)
                attempt(ss, ("commit_100m",), lambda: measure_commit(ss, args.rounds, args.commit_mb))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    return session("volumes", engines, measure_sides, table, args.json)


if __name__ == "__main__":
    sys.exit(main())
