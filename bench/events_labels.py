"""The event bus under hostile labels (issue 9): palletd's memory and the journal's size
after N create/remove cycles of a container carrying the largest labels allowed, with M
`pallet events` subscribers following.

Owns: that one figure set (palletd's VmRSS before and after, the journal's rows and the
bytes of pallet.db + pallet.db-wal, what each subscriber received). Must not: start or stop
anything but its own palletd (bench/palletd.py) and the subscribers it started (by pid).

    sudo python bench/events_labels.py                      # 1,000 cycles, 10 subscribers
    sudo python bench/events_labels.py --cycles 200 --subscribers 3
    PYTHONPATH=/tmp/old/pkg python bench/events_labels.py   # another checkout's palletd
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import rootfs
from palletd import OwnPalletd, stub

# The largest labels one object may carry: 64 KiB of keys and values in all, as 4 labels
# of 16 KiB each (a value may be 16 KiB; the key's bytes count towards the total).
LABELS = {f"l{i}": chr(ord("a") + i) * (16 * 1024 - 2) for i in range(4)}
TIMEOUT = 60.0


def vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def journal(root: Path) -> dict[str, int]:
    db = root / "pallet.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT COUNT(*), COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) "
                            "FROM events").fetchone()
    finally:
        conn.close()
    wal = root / "pallet.db-wal"
    return {"events_rows": rows[0], "oldest_seq": rows[1], "newest_seq": rows[2],
            "db_bytes": db.stat().st_size,
            "wal_bytes": wal.stat().st_size if wal.exists() else 0}


def cycles(daemon: OwnPalletd, image: str, count: int) -> float:
    """`count` create/remove cycles over one channel; seconds they took."""
    from pallet.v1 import containers_pb2 as pb

    containers = stub("ContainersService", daemon.channel())
    began = time.monotonic()
    for _ in range(count):
        created = containers.Create(pb.CreateContainerRequest(
            config=pb.ContainerConfig(image=image, cmd=["true"], labels=LABELS)), timeout=TIMEOUT)
        containers.Remove(pb.RemoveContainerRequest(container=created.id), timeout=TIMEOUT)
    return time.monotonic() - began


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cycles", type=int, default=1000)
    p.add_argument("--subscribers", type=int, default=10)
    args = p.parse_args(argv)
    figures: dict[str, Any] = {"cycles": args.cycles, "subscribers": args.subscribers,
                               "label_bytes": sum(len(k) + len(v) for k, v in LABELS.items())}
    with OwnPalletd() as daemon, tempfile.TemporaryDirectory() as tmp:
        tar = rootfs.write_rootfs_tar(Path(tmp) / "busybox-rootfs.tar")
        subprocess.run(daemon.cli("import", str(tar), "bench:latest", "-c", 'CMD ["sh"]'),
                       check=True, capture_output=True)
        outputs = [Path(tmp) / f"sub{i}.out" for i in range(args.subscribers)]
        subs = []
        try:
            for out in outputs:
                with open(out, "wb") as sink:
                    subs.append(subprocess.Popen(daemon.cli("events", "--filter", "type=container"),
                                                 stdout=sink, stderr=subprocess.STDOUT))
            time.sleep(3)  # the CLIs are up and subscribed
            figures["rss_before_kib"] = vm_rss_kib(daemon.pid)
            figures["journal_before"] = journal(daemon.root)
            figures["cycles_s"] = round(cycles(daemon, "bench:latest", args.cycles), 1)
            time.sleep(3)  # the subscribers drain what is queued for them
            figures["rss_after_kib"] = vm_rss_kib(daemon.pid)
            figures["journal_after"] = journal(daemon.root)
        finally:
            for sub in subs:
                sub.terminate()
            for sub in subs:
                try:
                    sub.wait(10)
                except subprocess.TimeoutExpired:
                    sub.kill()
                    sub.wait()
        received = []
        for out in outputs:
            text = out.read_text(errors="replace")
            received.append(sum(1 for line in text.splitlines() if " container " in line))
            if "Error:" in text:
                figures.setdefault("subscriber_errors", []).append(
                    [line for line in text.splitlines() if "Error:" in line][-1][:200])
        figures["events_received_per_subscriber"] = received
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    sys.exit(main())
