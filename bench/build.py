"""Sending a build context, pallet beside docker in one run: `sudo python bench/build.py`
(issue 14, the context row).

Owns: the figure "sending a 100 MB, 20,000-file context" of issue 14's speed table: a
context of 20,000 files of 5,000 random bytes in 100 directories, with a Dockerfile that
builds next to nothing (`FROM scratch`, `COPY Dockerfile /`), built by `pallet build` and
by docker's classic builder (`DOCKER_BUILDKIT=0 docker build`), turn about; what is timed
is the context's transfer: from the CLI's start until the build's first step starts (the
`Step 1/2 :` line, printed once the daemon has the whole context on disk and begins).
Before each build, palletd's removal of the builds before (in the background) is waited
for, so neither engine is timed with it. Must not: use or stop an engine the
machine runs itself (both come up in network namespaces of their own, as bench/net.py
brings them up).
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
from pathlib import Path

from net import Row, Side, _cli_cpu, _turns, attempt, render_table, session

ROWS: tuple[tuple[str, str, str], ...] = (
    ("context_100m", "sending a 100 MB, 20,000-file context", "≥ docker's MB/s"),
)
FILES = 20_000
FILE_SIZE = 5_000
DIRS = 100
DOCKERFILE = "FROM scratch\nCOPY Dockerfile /\n"


def make_context(path: Path) -> int:
    """The context directory; its size in bytes (the files' content)."""
    path.mkdir(parents=True)
    (path / "Dockerfile").write_text(DOCKERFILE)
    per_dir = FILES // DIRS
    for d in range(DIRS):
        sub = path / f"d{d:03}"
        sub.mkdir()
        for f in range(per_dir):
            (sub / f"f{f:04}.bin").write_bytes(os.urandom(FILE_SIZE))
    return FILES * FILE_SIZE + len(DOCKERFILE)


def time_to_first_step(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from the start of `argv` to its `Step 1/` line; the build then runs to
    its end, untimed."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    for raw in proc.stdout:
        if raw.startswith(b"Step 1/"):
            elapsed = time.perf_counter() - start
            break
    else:
        _, err = proc.communicate(timeout=600)
        raise RuntimeError(f"{argv[0]} build printed no step: {err.decode(errors='replace').strip()[-300:]}")
    _, err = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} build failed: {err.decode(errors='replace').strip()[-300:]}")
    return elapsed


def daemon_cpu(side: Side) -> float:
    """CPU seconds of the engine's daemons so far, with their children's that they
    reaped (docker's classic builder extracts the context in a docker-untar child)."""
    total = 0
    for pid in side.daemon_pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")


def settle(sides: dict[str, Side]) -> None:
    """Wait until palletd has removed the directories of the builds before (it does so in
    the background once a build is over): a removal running under the next build's
    timing would charge either engine with the last one's cleanup. docker removes its
    context after the build too, but before its build call ends, so it is never timed."""
    pallet = sides.get("pallet")
    if pallet is None or pallet.daemon is None:
        return
    top = Path(pallet.daemon.root) / "builds"
    deadline = time.monotonic() + 600
    while top.exists() and any(top.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)


def measure(sides: dict[str, Side], runs: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="pallet-bench-ctx-"))
    try:
        ctx = workdir / "ctx"
        size = make_context(ctx)
        env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        times: dict[str, list[float]] = {n: [] for n in sides}
        cpu: dict[str, list[tuple[float, float]]] = {n: [] for n in sides}  # (CLI, daemons) per build
        order = list(sides.values())
        for r in range(runs + 1):  # round 0: warm-up (page cache, daemons' first build)
            for s in _turns(order, r):
                argv = s.cli("build", "--progress", "plain", "-t", "bench-ctx:latest", str(ctx)) \
                    if s.name == "pallet" else s.cli("build", "-t", "bench-ctx:latest", str(ctx))
                settle(sides)
                cli0, daemon0 = _cli_cpu(), daemon_cpu(s)
                elapsed = time_to_first_step(argv, env)
                if r:
                    times[s.name].append(elapsed)
                    cpu[s.name].append((_cli_cpu() - cli0, daemon_cpu(s) - daemon0))
        for name, values in times.items():
            median = statistics.median(values)
            sides[name].rows["context_100m"] = Row(
                size / median / 1e6, "MB/s",
                f"median {median:.2f} s, min {min(values):.2f} / max {max(values):.2f} s over {len(values)} "
                f"builds ({size / 1e6:.0f} MB, {FILES} files), timed to the first step; CPU per whole "
                f"build (median): CLI {statistics.median(c for c, _ in cpu[name]):.2f} s, daemons "
                f"{statistics.median(d for _, d in cpu[name]):.2f} s",
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def cell(row: Row | None) -> str:
    if row is None or row.value is None:
        return "n/a"
    return f"{row.value:.1f} {row.unit}"


def verdict(key: str, sides: dict[str, Side]) -> str:
    p, d = sides.get("pallet"), sides.get("docker")
    if p is None or d is None:
        return "n/a"
    pr, dr = p.rows.get(key), d.rows.get(key)
    if pr is None or dr is None or pr.value is None or dr.value is None:
        return "n/a"
    return f"{'met' if pr.value >= dr.value else 'NOT met'} ({pr.value / dr.value:.2f}x docker's)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/build.py", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=5, help="timed builds per engine (after one warm-up)")
    p.add_argument("--engines", default="pallet,docker", help="comma-separated: pallet, docker")
    p.add_argument("--json", type=Path, help="write the figures here too")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/build.py needs root (both engines run as root)", file=sys.stderr)
        return 2

    def measure_sides(sides: dict[str, Side]) -> None:
        attempt(list(sides.values()), ("context_100m",), lambda: measure(sides, args.runs))

    return session("build", args.engines.split(","), measure_sides,
                   lambda sides: render_table(sides, ROWS, cell, verdict), args.json)


if __name__ == "__main__":
    sys.exit(main())
