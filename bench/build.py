"""Sending a build context, pallet beside docker in one run: `sudo python bench/build.py`
(issue 14, the context row).

Owns: the figure "sending a 100 MB, 20,000-file context" of issue 14's speed table: a
context of 20,000 files of 5,000 random bytes in 100 directories, with a Dockerfile that
builds next to nothing (`FROM scratch`, one `LABEL`), built by `pallet build` and by
docker's classic builder (`DOCKER_BUILDKIT=0 docker build`), turn about; what is timed
is the context's transfer: from the CLI's start until the build's first step starts
(the `Step 1/2 :` line, printed once the daemon has the whole context and begins), or,
for a palletd whose Dockerfile builder has not landed yet (it refuses every build once
the context is received, extracted and removed again), until that refusal: more work
than docker's side does in that time, never less. Must not: use or stop an engine the
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

from net import Row, Side, _turns, attempt, render_table, session

ROWS: tuple[tuple[str, str, str], ...] = (
    ("context_100m", "sending a 100 MB, 20,000-file context", "≥ docker's MB/s"),
)
FILES = 20_000
FILE_SIZE = 5_000
DIRS = 100
DOCKERFILE = "FROM scratch\nLABEL bench=context\n"


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


def time_to_first_step(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Seconds from the start of `argv` to its `Step 1/` line (or to its end, when it
    prints none), and which of the two it was."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    seen = ""
    for raw in proc.stdout:
        line = raw.decode(errors="replace")
        if line.startswith("Step 1/"):
            elapsed = time.perf_counter() - start
            seen = "first step"
            break
    else:
        proc.wait(timeout=600)
        elapsed = time.perf_counter() - start
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if "no Dockerfile builder yet: the context was received" not in err:
            raise RuntimeError(f"{argv[0]} build printed no step and failed: {err.strip()[-300:]}")
        return elapsed, "refused once received (no builder yet)"
    proc.communicate(timeout=600)  # the build's end, untimed
    return elapsed, seen


def measure(sides: dict[str, Side], runs: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="pallet-bench-ctx-"))
    try:
        ctx = workdir / "ctx"
        size = make_context(ctx)
        env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        times: dict[str, list[float]] = {n: [] for n in sides}
        how: dict[str, set[str]] = {n: set() for n in sides}
        order = list(sides.values())
        for r in range(runs + 1):  # round 0: warm-up (page cache, daemons' first build)
            for s in _turns(order, r):
                argv = s.cli("build", "--progress", "plain", "-t", "bench-ctx:latest", str(ctx)) \
                    if s.name == "pallet" else s.cli("build", "-t", "bench-ctx:latest", str(ctx))
                elapsed, what = time_to_first_step(argv, env)
                if r:
                    times[s.name].append(elapsed)
                    how[s.name].add(what)
        for name, values in times.items():
            median = statistics.median(values)
            sides[name].rows["context_100m"] = Row(
                size / median / 1e6, "MB/s",
                f"median {median:.2f} s, min {min(values):.2f} / max {max(values):.2f} s over {len(values)} "
                f"builds ({size / 1e6:.0f} MB, {FILES} files), timed to: {', '.join(sorted(how[name]))}",
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
