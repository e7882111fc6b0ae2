"""fsutil.DirectFile: a file written past the page cache has exactly the bytes written."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pallet.daemon.images.fsutil import DirectFile


def _write(path: Path, pieces: list[bytes]) -> None:
    f = DirectFile(path)
    try:
        for piece in pieces:
            assert f.write(memoryview(piece)) == len(piece)
        f.flush()
        os.fsync(f.fileno())
    finally:
        f.close()


@pytest.mark.parametrize("sizes", [
    [],  # an empty blob
    [1],
    [DirectFile.BLOCK],
    [DirectFile.BUFFER],  # exactly one buffer
    [DirectFile.BUFFER - 1, 2, DirectFile.BLOCK + 7],
    [10240] * 1000 + [333],  # tarfile's records, across buffers
    [3 * DirectFile.BUFFER + 5],  # one write of several buffers
])
def test_the_file_holds_exactly_what_was_written(tmp_path: Path, sizes: list[int]) -> None:
    pieces = [os.urandom(n) for n in sizes]
    _write(tmp_path / "blob", pieces)
    assert (tmp_path / "blob").read_bytes() == b"".join(pieces)


def test_a_filesystem_without_o_direct_gets_an_ordinary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def no_direct(path: object, flags: int, mode: int = 0o777, **kw: object) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", no_direct)
    data = os.urandom(DirectFile.BUFFER + 12345)
    _write(tmp_path / "blob", [data])
    assert (tmp_path / "blob").read_bytes() == data


def test_an_existing_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "blob").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        DirectFile(tmp_path / "blob")
    assert (tmp_path / "blob").read_bytes() == b"old"


def test_a_failed_write_of_a_full_buffer_is_raised_by_the_next_write_or_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    f = DirectFile(tmp_path / "blob")
    monkeypatch.setattr(os, "write", full)
    try:
        f.write(os.urandom(DirectFile.BUFFER))  # handed to the writing thread
        with pytest.raises(OSError) as raised:
            f.write(os.urandom(DirectFile.BUFFER))
            f.flush()
        assert raised.value.errno == errno.ENOSPC
    finally:
        f.close()
