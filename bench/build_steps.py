"""A 10-instruction Dockerfile on busybox, pallet beside docker in one run:
`sudo python bench/build_steps.py` (issue 14, the build rows).

Owns: the figures "a 10-instruction Dockerfile on busybox, all cached" and "the same from
scratch (no cache)" of issue 14's speed table: the same Dockerfile (ENV, WORKDIR, two
COPYs, two RUNs, LABEL, USER, CMD on the engine's busybox image) and the same small
context, built by `pallet build` and by docker's classic builder (`DOCKER_BUILDKIT=0
docker build`; BuildKit too when the installed docker has buildx), turn about; each
build timed whole, from the CLI's start to its exit. Must not: use or stop an engine the
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
    ("cached", "a 10-instruction Dockerfile on busybox, all cached", "≤ 0.5× docker's"),
    ("no_cache", "the same from scratch (no cache)", "≤ docker's"),
)
TARGET = {"cached": 0.5, "no_cache": 1.0}


def dockerfile(image: str) -> str:
    return (
        f"FROM {image}\n"
        "ENV GREETING=hello\n"
        "WORKDIR /app\n"
        "COPY one.txt /app/one.txt\n"
        "RUN echo \"$GREETING\" > /app/greeting\n"
        "COPY two.txt /app/two.txt\n"
        "RUN cat /app/one.txt /app/two.txt > /app/both\n"
        "LABEL bench=steps\n"
        "USER nobody\n"
        "CMD [\"cat\", \"/app/both\"]\n"
    )


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, env=env, timeout=600)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed: {result.stderr.decode(errors='replace')[-300:]}")
    return elapsed


def measure(sides: dict[str, Side], runs: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="pallet-bench-steps-"))
    try:
        env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        contexts: dict[str, Path] = {}
        for name, side in sides.items():
            ctx = workdir / name
            ctx.mkdir()
            (ctx / "one.txt").write_text("one\n")
            (ctx / "two.txt").write_text("two\n")
            (ctx / "Dockerfile").write_text(dockerfile(side.image))
            contexts[name] = ctx
        order = list(sides.values())

        def argv(s: Side, *extra: str) -> list[str]:
            plain = ("--progress", "plain") if s.name == "pallet" else ()
            return s.cli("build", *plain, *extra, "-t", "bench-steps:latest", str(contexts[s.name]))

        for s in order:  # warm-up, untimed: the daemons' first build, and the cache filled
            timed(argv(s, "--no-cache"), env)
            timed(argv(s), env)
        times: dict[str, dict[str, list[float]]] = {n: {"cached": [], "no_cache": []} for n in sides}
        for r in range(runs):
            for s in _turns(order, r):
                times[s.name]["no_cache"].append(timed(argv(s, "--no-cache"), env))
                times[s.name]["cached"].append(timed(argv(s), env))
        for name, rows in times.items():
            for key, values in rows.items():
                median = statistics.median(values)
                sides[name].rows[key] = Row(
                    median * 1e3, "ms",
                    f"median {median * 1e3:.0f} ms, min {min(values) * 1e3:.0f} / max {max(values) * 1e3:.0f} ms "
                    f"over {len(values)} builds",
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def cell(row: Row | None) -> str:
    if row is None or row.value is None:
        return "n/a"
    return f"{row.value:.0f} {row.unit}"


def verdict(key: str, sides: dict[str, Side]) -> str:
    p, d = sides.get("pallet"), sides.get("docker")
    if p is None or d is None:
        return "n/a"
    pr, dr = p.rows.get(key), d.rows.get(key)
    if pr is None or dr is None or pr.value is None or dr.value is None:
        return "n/a"
    ratio = pr.value / dr.value
    return f"{'met' if ratio <= TARGET[key] else 'NOT met'} ({ratio:.2f}x docker's)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/build_steps.py", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=5, help="timed builds per engine and figure (after a warm-up)")
    p.add_argument("--engines", default="pallet,docker", help="comma-separated: pallet, docker")
    p.add_argument("--json", type=Path, help="write the figures here too")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/build_steps.py needs root (both engines run as root)", file=sys.stderr)
        return 2

    def measure_sides(sides: dict[str, Side]) -> None:
        attempt(list(sides.values()), tuple(k for k, _, _ in ROWS), lambda: measure(sides, args.runs))

    return session("build-steps", args.engines.split(","), measure_sides,
                   lambda sides: render_table(sides, ROWS, cell, verdict), args.json)


if __name__ == "__main__":
    sys.exit(main())
