"""pallet's benchmarks: `python bench/run.py [--reference docker|podman|ctr]` (as root).

Owns: the order of the benchmark: the log file on its own, then a palletd of our own
with the busybox image imported through `pallet import`, then (optionally) the same CLI
figures on a reference engine a person started; and printing the table. Must not: start
docker, podman or containerd, or leave anything behind (see `palletd.OwnPalletd`).

Figures are figures: nothing here passes or fails, and none of it runs under pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

import rootfs
from engines import EngineError, Pallet, reference_engine
from figures import Figure, measure_engine, measure_grpc, table
from logfile_bench import measure_logfile
from palletd import OwnPalletd, console_script


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    p.add_argument(
        "--reference",
        choices=["docker", "podman", "ctr"],
        help="also measure the CLI figures with this engine (it must already be running)",
    )
    p.add_argument("--runs", type=int, default=20, help="timed calls per latency (default 20)")
    p.add_argument(
        "--containers", type=int, default=20, help="containers started at once (default 20)"
    )
    p.add_argument(
        "--only",
        choices=["all", "logfile", "engines"],
        default="all",
        help="logfile: only the log file (no daemon, no root); engines: skip it",
    )
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.runs < 1 or args.containers < 1:
        print("bench: --runs and --containers must be at least 1", file=sys.stderr)
        return 2
    columns: dict[str, list[Figure]] = {"pallet": []}
    if args.only in ("all", "logfile"):
        print("bench: log file ...", file=sys.stderr)
        columns["pallet"] += measure_logfile()
    if args.only in ("all", "engines"):
        if os.geteuid() != 0:
            print("bench: the engine figures need root (containers); try --only logfile", file=sys.stderr)
            return 2
        workdir = Path(tempfile.mkdtemp(prefix="pallet-bench-"))
        try:
            tar = rootfs.write_rootfs_tar(workdir / "busybox-rootfs.tar")
            columns["pallet"] += _pallet(tar, workdir, args)
            if args.reference:
                columns[args.reference] = _reference(args.reference, tar, workdir, args)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(columns))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    name: {f.key: {"value": f.value, "unit": f.unit, "detail": f.detail} for f in figs}
                    for name, figs in columns.items()
                },
                indent=2,
            )
            + "\n"
        )
    return 0


def _pallet(tar: Path, workdir: Path, args: argparse.Namespace) -> list[Figure]:
    print(f"bench: pallet ({' '.join(console_script('palletd'))}) ...", file=sys.stderr)
    try:
        with OwnPalletd() as daemon:
            engine = Pallet(daemon)
            image = engine.import_image(tar, workdir)
            figures = measure_engine(
                engine, image, runs=args.runs, containers=args.containers, token=secrets.token_hex(3)
            )
            figures += measure_grpc(daemon.channel(), image, runs=args.runs)
            return figures
    except (EngineError, RuntimeError, OSError) as exc:
        print(f"bench: pallet could not be measured: {exc}", file=sys.stderr)
        return [Figure("version", None, f"failed: {exc}")]


def _reference(tool: str, tar: Path, workdir: Path, args: argparse.Namespace) -> list[Figure]:
    print(f"bench: {tool} ...", file=sys.stderr)
    try:
        engine = reference_engine(tool)
        image = engine.import_image(tar, workdir)
    except EngineError as exc:
        print(f"bench: {tool} could not be measured: {exc}", file=sys.stderr)
        return [Figure("version", None, f"failed: {exc}")]
    try:
        return measure_engine(
            engine, image, runs=args.runs, containers=args.containers, token=secrets.token_hex(3)
        )
    finally:
        try:
            engine.close()
        except EngineError as exc:
            print(f"bench: {tool}: removing the image failed: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
