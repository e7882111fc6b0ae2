"""The container log file on its own: how fast the shim can write it and palletd read it.

Owns: timing `pallet.shim.logfile` in this process on a temporary file, no daemon needed.
Must not: assert anything (figures only; the format's correctness is in the unit tests).

The 64 KiB run is a busy container (the shim reads up to 256 KiB per pipe read, often
less); the 1 KiB run is a container printing a little at a time, 100,000 records.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

from figures import Figure

MB = 1_000_000


def measure_logfile(total_bytes: int = 100 * MB, directory: str | None = None) -> list[Figure]:
    from pallet.shim.api.logs import read_records
    from pallet.shim.logfile import LogWriter

    base = tempfile.mkdtemp(prefix="pallet-bench-log-", dir=directory)
    figures: list[Figure] = []
    try:
        for suffix, chunk_size in (("", 64 * 1024), ("_small", 1024)):
            path = os.path.join(base, f"ctr{suffix}.log")
            # Text-like data: lines of 80 bytes, so tail has lines to count.
            line = b"x" * 79 + b"\n"
            chunk = (line * (chunk_size // len(line) + 1))[:chunk_size]
            count = total_bytes // chunk_size
            started = time.perf_counter()
            with LogWriter(path) as writer:
                for i in range(count):
                    writer.write(1 + (i & 1), chunk, time.time_ns())
            wrote = time.perf_counter() - started
            started = time.perf_counter()
            read = sum(len(r.data) for r in read_records(path))
            read_s = time.perf_counter() - started
            mb = count * chunk_size / MB
            size = os.path.getsize(path)
            overhead = f"file {size / MB:.1f} MB for {mb:.1f} MB of output"
            figures.append(Figure(f"logfile_write{suffix}", mb / wrote, f"{wrote:.2f} s; {overhead}"))
            detail = f"{mb / read_s:.0f} MB/s"
            if read != count * chunk_size:
                detail += f"; WRONG: read {read} bytes"
            figures.append(Figure(f"logfile_read{suffix}", read_s, detail))
            if not suffix:
                started = time.perf_counter()
                tail = list(read_records(path, tail_lines=100))
                tail_s = time.perf_counter() - started
                text = b"".join(r.data for r in tail)
                lines = text.count(b"\n") + (not text.endswith(b"\n"))
                figures.append(Figure("logfile_tail", tail_s * 1000, f"{lines} lines"))
            os.unlink(path)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return figures
