"""The context tar `pallet build` makes (`client.buildcontext`): entries as docker's
archive writes them, .dockerignore's walk rules, stdin's forms, streaming in pieces."""

from __future__ import annotations

import bz2
import io
import lzma
import os
import socket
import stat
import tarfile
from pathlib import Path

import pytest

from pallet.client.buildcontext import directory_context, stdin_context
from pallet.client.cplocal import CHUNK
from pallet.v1.errors import InvalidArgument, NotFound


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def content(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def make(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_entries_are_written_as_dockers_archive_writes_them(tmp_path: Path) -> None:
    ctx = make(tmp_path / "ctx", {"Dockerfile": "FROM x\n", "bin/tool": "#!/bin/sh\n", "z": "last"})
    os.chmod(ctx / "bin" / "tool", 0o4755)
    os.utime(ctx / "bin" / "tool", (1_600_000_000.7, 1_600_000_000.7))
    os.link(ctx / "bin" / "tool", ctx / "bin" / "tool2")
    os.symlink("/etc/passwd", ctx / "passwd")
    os.mkfifo(ctx / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(ctx / "sock"))
    try:
        context = directory_context(str(ctx), None)
        data = b"".join(context.chunks())
    finally:
        sock.close()
    got = members(data)
    assert list(got) == ["Dockerfile", "bin", "bin/tool", "bin/tool2", "fifo", "passwd", "z"]  # name order
    tool = got["bin/tool"]
    assert (tool.uid, tool.gid, tool.uname, tool.gname) == (0, 0, "", "")
    assert stat.S_IMODE(tool.mode) == 0o4755 and tool.mtime == 1_600_000_000
    assert got["bin/tool2"].islnk() and got["bin/tool2"].linkname == "bin/tool"
    assert got["passwd"].issym() and got["passwd"].linkname == "/etc/passwd"
    assert got["fifo"].isfifo()
    assert content(data, "bin/tool") == b"#!/bin/sh\n"
    assert context.dockerfile == "Dockerfile"
    assert context.warnings == [f"skipping {ctx}/sock: a socket is not sent in a build context"]


def test_an_excluded_directory_is_entered_only_for_an_exception_below_it(tmp_path: Path) -> None:
    ctx = make(tmp_path / "ctx", {
        "Dockerfile": "FROM x\n", ".dockerignore": "docs\n!docs/api/keep.md\nbuild\n*/tmp\n",
        "docs/api/keep.md": "k", "docs/api/drop.md": "d", "docs/x.md": "x", "build/a": "a", "src/tmp": "t",
        "src/main.c": "c",
    })
    got = members(b"".join(directory_context(str(ctx), None).chunks()))
    # docs/ itself is not sent (its entry is excluded); keep.md is, below implied parents.
    assert sorted(got) == [".dockerignore", "Dockerfile", "docs/api/keep.md", "src", "src/main.c"]


def test_a_big_file_streams_in_pieces_of_at_most_a_chunk(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM x\n")
    big = os.urandom(3 * CHUNK + 123)
    (ctx / "big").write_bytes(big)
    pieces = list(directory_context(str(ctx), None).chunks())
    assert len(pieces) >= 4 and max(len(p) for p in pieces) <= CHUNK + 2048
    assert content(b"".join(pieces), "big") == big


def test_an_unreadable_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = make(tmp_path / "ctx", {"Dockerfile": "FROM x\n", "secret": "s"})
    real = os.open

    def refuse(path: str, flags: int, *a: object) -> int:
        if str(path).endswith("secret"):
            raise PermissionError(13, "Permission denied", path)
        return real(path, flags, *a)  # type: ignore[arg-type]

    monkeypatch.setattr("pallet.client.buildcontext.os.open", refuse)
    with pytest.raises(InvalidArgument, match="no permission to read from '.*secret'"):
        b"".join(directory_context(str(ctx), None).chunks())


def test_the_context_must_be_a_directory_and_the_dockerfile_must_exist(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="not found"):
        directory_context(str(tmp_path / "nope"), None)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidArgument, match="context must be a directory"):
        directory_context(str(tmp_path / "file"), None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFound, match='Cannot locate Dockerfile: ".*/empty/Dockerfile"'):
        directory_context(str(tmp_path / "empty"), None)


def _tar(names: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in names.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("compress", [None, bz2.compress, lzma.compress])
def test_a_tar_on_stdin_goes_as_it_is_decompressed(compress: object) -> None:
    plain = _tar({"Dockerfile": b"FROM x\n", "a": b"a" * 5000})
    data = compress(plain) if callable(compress) else plain
    context = stdin_context(io.BytesIO(data), None)
    assert context.dockerfile == "Dockerfile"
    assert b"".join(context.chunks()) == plain


def test_a_dockerfile_on_stdin_is_a_context_of_its_own() -> None:
    context = stdin_context(io.BytesIO(b"FROM busybox\n"), None)
    data = b"".join(context.chunks())
    assert list(members(data)) == ["Dockerfile"] and content(data, "Dockerfile") == b"FROM busybox\n"


def test_zstd_on_stdin_is_refused_with_what_to_do() -> None:
    with pytest.raises(InvalidArgument, match="zstd -dc"):
        stdin_context(io.BytesIO(b"\x28\xb5\x2f\xfd" + b"\0" * 2000), None)


# ---- the live view (`pallet build` on a terminal) -------------------------------------------


def screen(written: str) -> list[str]:
    """What a terminal shows after `written`: lines, the cursor's moves up (CSI n F) and
    erasing below (CSI J) applied, colours dropped."""
    import re

    lines: list[str] = [""]
    row = 0
    for token in re.split(r"(\x1b\[\d*[A-Za-z]|\n)", written):
        if not token:
            continue
        if token == "\n":
            row += 1
            if row == len(lines):
                lines.append("")
        elif token.startswith("\x1b["):
            arg, cmd = token[2:-1], token[-1]
            if cmd == "F":
                row = max(0, row - int(arg or 1))
                lines[row] = ""
            elif cmd == "J":
                del lines[row + 1:]
                lines[row] = ""
        else:
            lines[row] += token
    return lines[:-1] if lines and lines[-1] == "" else lines


def test_the_live_view_keeps_step_lines_and_only_the_current_steps_last_output() -> None:
    from pallet.client.verbs_build import LIVE_LINES, LiveView

    out = io.StringIO()
    view = LiveView(out, 80)
    view.line("Step 1/2 : RUN make")
    view.output(b"".join(b"line %d\n" % i for i in range(20)), 1)
    view.output(b"partial", 1)
    shown = screen(out.getvalue())
    assert shown[0] == "Step 1/2 : RUN make"
    assert shown[1:] == [" | " + f"line {i}" for i in range(20 - LIVE_LINES + 1, 20)] + [" | partial"]
    view.step_over()
    view.line(" ---> 1a2b3c4d5e6f")
    view.line("Step 2/2 : CMD x")
    view.close()
    assert screen(out.getvalue()) == ["Step 1/2 : RUN make", " ---> 1a2b3c4d5e6f", "Step 2/2 : CMD x"]


def test_the_live_view_leaves_a_failing_steps_output_on_screen() -> None:
    from pallet.client.verbs_build import LiveView

    out = io.StringIO()
    view = LiveView(out, 80)
    view.line("Step 1/1 : RUN false")
    view.output(b"error: it broke\n", 2)
    view.failed()
    assert screen(out.getvalue()) == ["Step 1/1 : RUN false", " | error: it broke"]
