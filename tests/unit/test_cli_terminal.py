"""The CLI's terminal pieces without a daemon: docker's detach-key syntax and the scanner.

Owns: `parse_detach_keys` (every accepted spelling, every refused one with docker's
words) and `DetachScanner` (a sequence split across reads, a false start passed on, a
prefix at the end held). Must not: open a terminal (tests/integration/test_tty.py does).
"""

from __future__ import annotations

import pytest

from pallet.client.terminal import DetachScanner, parse_detach_keys
from pallet.v1.errors import InvalidArgument


@pytest.mark.parametrize(
    ("spec", "keys"),
    [
        ("", b"\x10\x11"),
        ("ctrl-p,ctrl-q", b"\x10\x11"),
        ("ctrl-a", b"\x01"),
        ("CTRL-Z", b"\x1a"),
        ("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", b"\x00\x1b\x1c\x1d\x1e\x1f"),
        ("x", b"x"),
        ("ctrl-x,x", b"\x18x"),
    ],
)
def test_detach_keys_docker_spellings(spec: str, keys: bytes) -> None:
    assert parse_detach_keys(spec) == keys


@pytest.mark.parametrize("spec", ["ctrl-", "ctrl-1", "ab", "ctrl-p,,", "ctrl-pq", "alt-x"])
def test_invalid_detach_keys(spec: str) -> None:
    with pytest.raises(InvalidArgument, match=rf"Invalid detach keys \({__import__('re').escape(spec)}\) provided"):
        parse_detach_keys(spec)


def test_scanner_finds_keys_across_reads_and_passes_false_starts_on() -> None:
    scanner = DetachScanner(b"\x10\x11")
    assert scanner.feed(b"ab\x10") == b"ab"  # held: it may be the start
    assert not scanner.detached
    assert scanner.feed(b"c") == b"\x10c"  # it was not
    assert scanner.feed(b"\x10\x10") == b"\x10"  # the second one may start it again
    assert scanner.feed(b"\x11tail") == b""
    assert scanner.detached


def test_scanner_without_keys_passes_everything() -> None:
    scanner = DetachScanner(b"")
    assert scanner.feed(b"\x10\x11") == b"\x10\x11"
    assert not scanner.detached
