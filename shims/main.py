"""Entry point of `pallet-shim` (also `python -m pallet.shim.main`).

Owns: the command line. Must not: import anything the shim does not need; this module is
what every shim process starts from, so its imports are the shim's memory.

    pallet-shim launcher --run-root /run/pallet [--foreground]

starts (or finds running) the fork-server palletd asks for shims; it exits 0 once the
launcher serves on <run-root>/shim-launcher.sock, and the launcher itself lives on.
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args(argv)
    from pallet.shim import launcher as launcher_module

    try:
        return launcher_module.run(args.run_root, foreground=args.foreground)
    except OSError as exc:
        print(f"pallet-shim launcher: {exc.filename or args.run_root}: {exc.strerror}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
