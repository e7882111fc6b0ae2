"""Terminals, pallet beside docker in one run: `sudo python bench/tty.py` (issue 13).

Owns: issue 13's two terminal figures, measured on pallet and on docker in one run, turn
about: the round trip of a keystroke through `run -it IMAGE sh` (the CLI on a pty of
ours: a byte written to its master, until the shell's echo of it comes back on it), and
100 MB through a container's terminal (`run -t --rm IMAGE head -c 100000000 /dev/zero`,
our side to /dev/null; minus the same run of `true`, so the start and stop are not in
the rate), and beside it, right after each engine's turn, the same 100 MB from a pty to
a bare Python loop with no engine at all: what the machine allows at that moment (a pty
hands out 4 KiB a read and holds some 16 KiB unread, so its writer and reader take
turns every few KiB and a loaded machine's scheduling bounds the rate). Must not: use or stop an engine the machine runs itself, or kill anything it
did not start (both engines come up as bench/net.py brings them up, each in a network
namespace of its own; the CLIs it starts are ended by their pids).
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import time
from pathlib import Path

from engines import EngineError
from figures import time_command
from rootfs import BUSYBOX
from net import Row, Side, render_table, _turns, attempt, session

ROWS: tuple[tuple[str, str, str], ...] = (
    ("keystroke", "keystroke to echo through `run -it` (round trip), median", "≤ 5 ms"),
    ("tty_100m", "100 MB through a TTY (`run -t`, start and stop taken out)", "≥ 50 MB/s"),
    ("tty_100m_whole", "100 MB through a TTY, the whole `run -t --rm`", "(for reference)"),
    ("tty_bare", "100 MB from a pty to a bare Python loop, no engine, after each engine's turn", "(the machine now)"),
)
SIZE = 100_000_000
TIMEOUT = 120.0


class _OnPty:
    """A CLI on a pseudo-terminal of ours (its controlling terminal, via `setsid -c`)."""

    def __init__(self, argv: list[str]) -> None:
        self.master, slave = os.openpty()
        try:
            self.proc = subprocess.Popen(
                ["setsid", "-w", "-c", *argv], stdin=slave, stdout=slave, stderr=slave,
                env={**os.environ, "TERM": "xterm"},
            )
        finally:
            os.close(slave)
        self.seen = b""

    def read_until(self, wanted: bytes, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while wanted not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.master], [], [], left)[0]:
                raise EngineError(f"no {wanted!r} within {timeout:g} s; got {self.seen[-200:]!r}")
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                raise EngineError(f"the CLI ended before {wanted!r}; got {self.seen[-200:]!r}")
            self.seen += chunk

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)
        os.close(self.master)


def _keystrokes(side: Side, count: int) -> list[float]:
    term = _OnPty(side.cli("run", "-it", "--rm", side.image, "sh"))
    try:
        term.read_until(b"# ")
        times = []
        for i in range(count + 1):
            term.seen = b""
            key = b"abcdefghijklmnopqrstuvwxyz"[i % 26 : i % 26 + 1]
            started = time.perf_counter()
            os.write(term.master, key)
            term.read_until(key)
            if i:  # the first one is the warm-up
                times.append((time.perf_counter() - started) * 1000)
        os.write(term.master, b"\x15exit\r")  # Ctrl-U clears the typed line
        term.proc.wait(TIMEOUT)
        return times
    finally:
        term.close()


def measure_keystroke(sides: list[Side], rounds: int, count: int) -> None:
    got: dict[str, list[float]] = {s.name: [] for s in sides}
    for r in range(rounds):
        for side in _turns(sides, r):
            got[side.name] += _keystrokes(side, count)
    for side in sides:
        values = got[side.name]
        q = statistics.quantiles(values, n=20)
        side.rows["keystroke"] = Row(
            statistics.median(values), "ms",
            f"min {min(values):.2f} / p95 {q[18]:.2f} / max {max(values):.2f} ms, n={len(values)}",
        )


def bare_pty_seconds() -> float:
    """`head -c 100000000 /dev/zero` on a new pty (its default modes, as a container's
    terminal has them) read by this process in 64 KiB reads: seconds to its end."""
    master, slave = os.openpty()
    buf = bytearray(64 << 10)
    try:
        started = time.perf_counter()
        proc = subprocess.Popen([str(BUSYBOX), "head", "-c", str(SIZE), "/dev/zero"],
                                stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        slave = -1
        got = 0
        while True:
            try:
                n = os.readv(master, [buf])
            except OSError:  # EIO: the writer closed the terminal
                break
            if not n:
                break
            got += n
        elapsed = time.perf_counter() - started
        if proc.wait(TIMEOUT) != 0 or got != SIZE:
            raise EngineError(f"the bare pty reader got {got} bytes (head exited {proc.returncode})")
        return elapsed
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


def measure_100m(sides: list[Side], rounds: int) -> None:
    whole: dict[str, list[float]] = {s.name: [] for s in sides}
    empty: dict[str, list[float]] = {s.name: [] for s in sides}
    bare: dict[str, list[float]] = {s.name: [] for s in sides}
    for r in range(rounds + 1):
        for side in _turns(sides, r):
            big = time_command(side.cli("run", "-t", "--rm", side.image, "head", "-c", str(SIZE), "/dev/zero"))
            none = time_command(side.cli("run", "-t", "--rm", side.image, "true"))
            alone = bare_pty_seconds()
            if r:  # round 0 warms up
                whole[side.name].append(big)
                empty[side.name].append(none)
                bare[side.name].append(alone)
    for side in sides:
        b = statistics.median(bare[side.name])
        side.rows["tty_bare"] = Row(SIZE / b / 1e6, "MB/s", f"median {b:.2f} s, n={len(bare[side.name])}")
        w, e = statistics.median(whole[side.name]), statistics.median(empty[side.name])
        side.rows["tty_100m_whole"] = Row(SIZE / w / 1e6, "MB/s", f"median {w:.2f} s, n={len(whole[side.name])}")
        side.rows["tty_100m"] = Row(
            SIZE / max(w - e, 1e-6) / 1e6, "MB/s",
            f"median {w:.2f} s minus `run -t --rm true` {e:.2f} s",
        )


def _cell(row: Row | None) -> str:
    if row is None:
        return "-"
    if row.value is None:
        return "n/a"
    digits = 0 if abs(row.value) >= 100 else 1 if abs(row.value) >= 10 else 2
    return f"{row.value:.{digits}f} {row.unit}".strip()


def _verdict(key: str, sides: dict[str, Side]) -> str:
    p = sides.get("pallet")
    pv = p.rows[key].value if p and key in p.rows else None
    if pv is None:
        return "not measured"
    if key == "keystroke":
        return "met" if pv <= 5 else "MISSED"
    if key == "tty_100m":
        return "met" if pv >= 50 else "MISSED"
    return ""


def table(sides: dict[str, Side]) -> str:
    return render_table(sides, ROWS, _cell, _verdict)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/tty.py", description=__doc__.split("\n")[0])
    p.add_argument("--keys", type=int, default=100, help="keystrokes timed per session (default 100)")
    p.add_argument("--rounds", type=int, default=3, help="sessions and 100 MB runs per engine (default 3)")
    p.add_argument("--engines", default="pallet,docker", help="which to measure (default pallet,docker)")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/tty.py needs root (namespaces, mounts, containers)", file=sys.stderr)
        return 2
    engines = [e for e in args.engines.split(",") if e]
    if set(engines) - {"pallet", "docker"}:
        print("bench: --engines takes pallet and docker", file=sys.stderr)
        return 2

    def measure_sides(sides: dict[str, Side]) -> None:
        ss = list(sides.values())
        print("bench: keystrokes through run -it ...", file=sys.stderr)
        attempt(ss, ("keystroke",), lambda: measure_keystroke(ss, args.rounds, args.keys))
        print("bench: 100 MB through a tty ...", file=sys.stderr)
        attempt(ss, ("tty_100m", "tty_100m_whole", "tty_bare"), lambda: measure_100m(ss, args.rounds))

    return session("tty", engines, measure_sides, table, args.json)


if __name__ == "__main__":
    sys.exit(main())
