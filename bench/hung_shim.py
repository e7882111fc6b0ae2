"""A stopped shim (issue 9): how long `stop -t 1` and `rm -f` take from SIGSTOP of a
container's shim until they return, and what they say.

Owns: that one figure set, over N rounds (a container run, its shim SIGSTOPped, `stop -t 1`
timed, then `rm -f` timed; each capped at --cap seconds). Must not: signal anything but the
shims of the containers it ran (each found as its container init's parent) and its own
palletd (bench/palletd.py).

    sudo python bench/hung_shim.py                          # 5 rounds
    PYTHONPATH=/tmp/old/pkg python bench/hung_shim.py       # another checkout's palletd
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import rootfs
from palletd import OwnPalletd


def shim_of(daemon: OwnPalletd, name: str) -> int:
    """The pid of the shim serving container `name`: its init's parent (the subreaper)."""
    out = subprocess.run(daemon.cli("inspect", name), check=True, capture_output=True,
                         text=True).stdout
    init = json.loads(out)[0]["State"]["Pid"]
    for line in Path(f"/proc/{init}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise RuntimeError(f"no parent for the init {init} of container {name}")


def timed(argv: list[str], cap: float) -> dict[str, Any]:
    began = time.monotonic()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=cap)
    except subprocess.TimeoutExpired:
        return {"s": None, "rc": None, "said": f"still waiting after {cap:.0f}s"}
    said = (r.stderr or r.stdout).strip().splitlines()
    return {"s": round(time.monotonic() - began, 2), "rc": r.returncode,
            "said": said[-1][:240] if said else ""}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--cap", type=float, default=90.0)
    args = p.parse_args(argv)
    rounds = []
    with OwnPalletd() as daemon, tempfile.TemporaryDirectory() as tmp:
        tar = rootfs.write_rootfs_tar(Path(tmp) / "busybox-rootfs.tar")
        subprocess.run(daemon.cli("import", str(tar), "bench:latest", "-c", 'CMD ["sh"]'),
                       check=True, capture_output=True)
        for i in range(args.rounds):
            name = f"hung{i}"
            subprocess.run(daemon.cli("run", "-d", "--name", name, "bench:latest", "sleep", "1000"),
                           check=True, capture_output=True)
            shim = shim_of(daemon, name)
            os.kill(shim, signal.SIGSTOP)
            try:
                stop = timed(daemon.cli("stop", "-t", "1", name), args.cap)
                rm = timed(daemon.cli("rm", "-f", name), args.cap)
            finally:
                try:  # the old code may leave it: let the cleanup end it
                    os.kill(shim, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            rounds.append({"stop_t1": stop, "rm_f": rm})
    rm_times = [r["rm_f"]["s"] for r in rounds if r["rm_f"]["s"] is not None]
    stop_times = [r["stop_t1"]["s"] for r in rounds if r["stop_t1"]["s"] is not None]
    print(json.dumps({
        "rounds": rounds,
        "rm_f_s": [min(rm_times), max(rm_times)] if rm_times else None,
        "stop_t1_s": [min(stop_times), max(stop_times)] if stop_times else None,
    }, indent=1))


if __name__ == "__main__":
    sys.exit(main())
