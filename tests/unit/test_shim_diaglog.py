"""The launcher's and shims' diagnostics log (`<run_root>/shim-launcher.log`) stays bounded."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pallet.shim import diaglog
from pallet.shim.diaglog import BURST, TOTAL_PER_WINDOW, WINDOW_S, DiagLog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "shim-launcher.log"


@pytest.fixture
def fd(path: Path) -> Iterator[int]:
    fd = diaglog.open_bounded(str(path))
    yield fd
    os.close(fd)


def failing() -> None:
    raise OSError(28, "No space left on device")


def test_a_message_repeated_for_every_failed_write_is_written_a_few_times_then_counted(
    path: Path, fd: int
) -> None:
    clock = Clock()
    log = DiagLog(fd, str(path), clock=clock)
    for _ in range(74_484):
        try:
            failing()
        except OSError:
            log.warn("log write failed", exc_info=True)
    text = path.read_text()
    assert text.count("log write failed") == BURST
    assert text.count("Traceback") == BURST
    clock.now += WINDOW_S
    try:
        failing()
    except OSError:
        log.warn("log write failed", exc_info=True)
    last = path.read_text().splitlines()
    assert any(f"and {74_484 - BURST} more like it not logged" in line for line in last)


def test_many_different_messages_are_bounded_in_all(path: Path, fd: int) -> None:
    log = DiagLog(fd, str(path), clock=Clock())
    for i in range(10_000):
        log.warn(f"request {i} failed")
    assert len(path.read_text().splitlines()) == TOTAL_PER_WINDOW


def test_the_file_never_grows_past_its_cap_and_keeps_the_previous_lines_in_dot_1(
    path: Path, fd: int
) -> None:
    clock = Clock()
    log = DiagLog(fd, str(path), max_bytes=10_000, clock=clock)
    for i in range(2_000):
        clock.now += WINDOW_S  # never rate-limited: only the cap bounds it
        log.warn(f"message {i:05d} " + "x" * 80)
        assert path.stat().st_size <= 10_000
    older = Path(f"{path}.1").read_text()
    assert older.count("message") > 50 and "message 01999" in path.read_text()


def test_a_full_or_failing_disk_never_raises(tmp_path: Path) -> None:
    full = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC
    try:
        log = DiagLog(full, "", clock=Clock())
        try:
            failing()
        except OSError:
            log.warn("cannot write", exc_info=True)
        log.warn("again")
    finally:
        os.close(full)


def test_a_launcher_starting_on_an_oversized_log_moves_it_aside(path: Path) -> None:
    path.write_bytes(b"old line\n" * 200_000)  # 1.8 MB, from before the bound
    fd = diaglog.open_bounded(str(path), max_bytes=1 << 20)
    os.close(fd)
    assert path.stat().st_size == 0
    assert Path(f"{path}.1").stat().st_size == 1_800_000
