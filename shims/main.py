"""Entry point of `pallet-shim` (also `python -m pallet.shim.main`).

Owns: the command line. Must not: import anything the shim does not need; this module is
what every shim process starts from, so its imports are the shim's memory.

    pallet-shim launcher --run-root /run/pallet [--foreground]

starts (or finds running) the fork-server palletd asks for shims; it exits 0 once the
launcher serves on <run-root>/shim-launcher.sock, and the launcher itself lives on.

    pallet-shim delete --run-root /run/pallet --id ID --bundle DIR [--cgroups-path P]

cleans up after the container's dead shim (kills what is left in its cgroup, removes the
cgroup and the shim's socket) and prints one JSON line: the `DeleteResult`, or
{"error": {"code": ..., "message": ...}} with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys

DESCRIPTION = (
    "pallet's per-container supervisor. palletd runs `pallet-shim launcher`, a fork-server "
    "that outlives it and forks one shim per container."
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pallet-shim", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    launcher = commands.add_parser("launcher", help="run the shim fork-server for a run root")
    launcher.add_argument("--run-root", required=True, help="e.g. /run/pallet")
    launcher.add_argument(
        "--foreground", action="store_true", help="serve in this process (for debugging)"
    )
    delete = commands.add_parser(
        "delete", help="clean up after a container whose shim died (cgroup, socket)"
    )
    delete.add_argument("--run-root", required=True, help="e.g. /run/pallet")
    delete.add_argument("--id", required=True, help="the container's id")
    delete.add_argument("--bundle", required=True, help="the container's bundle directory")
    delete.add_argument(
        "--cgroups-path", default=None,
        help="the container's cgroup, e.g. pallet/<id> (default: from the bundle's spec)",
    )
    args = parser.parse_args(argv)
    if args.command == "delete":
        return _delete(args.run_root, args.id, args.bundle, args.cgroups_path)
    from pallet.shim import launcher as launcher_module

    try:
        return launcher_module.run(args.run_root, foreground=args.foreground)
    except OSError as exc:
        print(f"pallet-shim launcher: {exc.filename or args.run_root}: {exc.strerror}", file=sys.stderr)
        return 1


def _delete(run_root: str, container_id: str, bundle: str, cgroups_path: str | None) -> int:
    from pallet.v1.errors import PalletError
    from pallet.shim.api import codec, wire
    from pallet.shim.delete import delete

    try:
        result = delete(run_root, container_id, bundle, cgroups_path)
    except PalletError as exc:
        print(json.dumps(wire.error_reply(exc)))
        return 1
    print(codec.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
