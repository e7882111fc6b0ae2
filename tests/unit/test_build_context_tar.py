"""A build context's tar extracted into its directory (`builder.contexttar`): what is kept,
and what refuses the context (the API tests send the hostile cases through the RPC)."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from pallet.daemon.builder.contexttar import MAX_EXTENDED_HEADER, entry_parts, extract_context
from pallet.v1.errors import InvalidArgument


def info(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, link: str = "", mtime: int = 1_600_000_000) -> tarfile.TarInfo:
    i = tarfile.TarInfo(name)
    i.type, i.mode, i.linkname, i.mtime = kind, mode, link, mtime
    return i


def tar(*entries: tuple[tarfile.TarInfo, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for i, data in entries:
            if i.isreg():
                i.size = len(data)
                t.addfile(i, io.BytesIO(data))
            else:
                t.addfile(i)
    buf.seek(0)
    return buf


def test_files_modes_mtimes_symlinks_hardlinks_and_fifos_are_kept(tmp_path: Path) -> None:
    stats = extract_context(tar(
        (info("Dockerfile"), b"FROM scratch\n"),
        (info("bin", tarfile.DIRTYPE, 0o750, mtime=1_500_000_000), b""),
        (info("bin/tool", mode=0o4755), b"#!/bin/sh\n"),
        (info("bin/same", tarfile.LNKTYPE, link="bin/tool"), b""),
        (info("up", tarfile.SYMTYPE, link="../../outside"), b""),
        (info("pipe", tarfile.FIFOTYPE, 0o640), b""),
        (info("deep/er/file"), b"implied parents"),
        (info("rw", mode=0o666), b""),  # more than palletd's umask lets open make
    ), str(tmp_path))
    assert (stats.entries, stats.size) == (8, 13 + 10 + 15)
    assert stat.S_IMODE((tmp_path / "rw").stat().st_mode) == 0o666
    assert stat.S_IMODE((tmp_path / "Dockerfile").stat().st_mode) == 0o644
    tool = tmp_path / "bin" / "tool"
    assert stat.S_IMODE(tool.stat().st_mode) == 0o4755
    assert tool.stat().st_mtime == 1_600_000_000
    assert os.path.samefile(tool, tmp_path / "bin" / "same")
    assert stat.S_IMODE((tmp_path / "bin").stat().st_mode) == 0o750
    assert (tmp_path / "bin").stat().st_mtime == 1_500_000_000
    assert os.readlink(tmp_path / "up") == "../../outside"
    assert stat.S_ISFIFO((tmp_path / "pipe").lstat().st_mode)
    assert stat.S_IMODE((tmp_path / "pipe").lstat().st_mode) == 0o640
    assert (tmp_path / "deep" / "er" / "file").read_bytes() == b"implied parents"


def test_a_later_entry_of_the_same_name_replaces_a_file_but_never_a_directory(tmp_path: Path) -> None:
    extract_context(tar((info("a"), b"old"), (info("a"), b"new"), (info("l", tarfile.SYMTYPE, link="a"), b""),
                        (info("l"), b"file now")), str(tmp_path))
    assert (tmp_path / "a").read_bytes() == b"new"
    assert not (tmp_path / "l").is_symlink() and (tmp_path / "l").read_bytes() == b"file now"
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(InvalidArgument, match="would replace a directory"):
        extract_context(tar((info("d", tarfile.DIRTYPE), b""), (info("d"), b"x")), str(other))


def test_a_file_written_through_a_symlink_it_replaced_stays_inside(tmp_path: Path) -> None:
    """`l -> /etc/...` then `l` as a file: the symlink is replaced, nothing is written through it."""
    outside = tmp_path / "outside"
    outside.write_bytes(b"keep")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    extract_context(tar((info("l", tarfile.SYMTYPE, link=str(outside)), b""), (info("l"), b"mine")), str(ctx))
    assert outside.read_bytes() == b"keep"
    assert (ctx / "l").read_bytes() == b"mine"


@pytest.mark.parametrize(
    ("name", "parts"),
    [("a/b", ("a", "b")), ("./a//b/", ("a", "b")), ("a/../b", ("b",)), (".", ())],
)
def test_entry_names_are_cleaned(name: str, parts: tuple[str, ...]) -> None:
    assert entry_parts(name) == parts


@pytest.mark.parametrize("name", ["/abs", "..", "../x", "a/../../x"])
def test_names_that_leave_the_context_are_refused(name: str) -> None:
    with pytest.raises(InvalidArgument):
        entry_parts(name)


def test_a_huge_extended_header_is_refused(tmp_path: Path) -> None:
    long_name = "x" * (MAX_EXTENDED_HEADER + 10)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        i = tarfile.TarInfo("short")
        i.pax_headers = {"comment": long_name}
        t.addfile(i, io.BytesIO(b""))
    buf.seek(0)
    with pytest.raises(InvalidArgument, match="extended tar header"):
        extract_context(buf, str(tmp_path))


def test_a_truncated_tar_is_refused(tmp_path: Path) -> None:
    data = tar((info("big"), b"x" * 10000)).getvalue()[:3000]
    with pytest.raises(InvalidArgument, match="truncated|not a valid tar"):
        extract_context(io.BytesIO(data), str(tmp_path))


def test_a_tar_that_ends_right_after_its_last_content_is_whole(tmp_path: Path) -> None:
    # The docker CLI's context for `build -f -` ends so (its tar's pipe closes before the
    # last padding and end blocks); Go's archive/tar, dockerd's, reads it as whole.
    data = tar((info("Dockerfile"), b"FROM scratch\n"), (info("last"), b"x" * 47)).getvalue()
    end = 512 * 3 + 47  # two headers, the Dockerfile's block, then the last content
    assert data[end:].strip(b"\0") == b""
    stats = extract_context(io.BytesIO(data[:end]), str(tmp_path))
    assert stats.entries == 2 and (tmp_path / "last").read_bytes() == b"x" * 47
    (tmp_path / "cut").mkdir()
    with pytest.raises(InvalidArgument, match="not a valid tar"):
        extract_context(io.BytesIO(data[:end - 1]), str(tmp_path / "cut"))


@pytest.mark.parametrize("form", ["gnu", "posix"])
def test_a_sparse_file_entry_is_refused_not_extracted_wrong(tmp_path: Path, form: str) -> None:
    # GNU tar's --sparse stores only the data regions; read as a plain file they would be
    # the wrong bytes (and the headers after them taken for content).
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "holes", "wb") as f:
        f.truncate(1 << 20)
        f.write(b"data at the start")
    archive = tmp_path / "ctx.tar"
    subprocess.run(["tar", "--sparse", f"--format={form}", "-cf", str(archive), "-C", str(src), "holes"],
                   check=True)
    out = tmp_path / "out"
    out.mkdir()
    with open(archive, "rb") as f, pytest.raises(InvalidArgument, match="sparse file entry"):
        extract_context(f, str(out))
