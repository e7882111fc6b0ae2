"""diff's rules and commit's layer tar, on fake overlay trees in a temporary directory.

The trees are what overlayfs leaves: an upper directory with whiteouts (0:0 character
devices, made with mknod) and opaque directories (`trusted.overlay.opaque=y`), over lower
layer directories (top first). Whiteouts and trusted xattrs need root: the tests that
need them skip without it.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from pallet.daemon.images import tarsafe
from pallet.daemon.snapshots.changes import OPAQUE_XATTR, ChangeKind, LowerView, changes
from pallet.daemon.snapshots.difftar import write_layer

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts and trusted xattrs need root")


def _write(path: Path, data: str = "x", mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    os.chmod(path, mode)
    return path


def _whiteout(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))


def _opaque(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.setxattr(path, OPAQUE_XATTR, b"y")


def _copy_dir_meta(lower: Path, upper: Path) -> None:
    """What overlayfs does to a directory it copies up for a child: same mode, owner, times."""
    st = os.stat(lower)
    upper.mkdir(parents=True, exist_ok=True)
    os.chmod(upper, stat.S_IMODE(st.st_mode))
    os.utime(upper, ns=(st.st_atime_ns, st.st_mtime_ns))


def _lines(upper: Path, lowers: list[Path]) -> list[str]:
    return [f"{c.kind.value} {c.path}" for c in changes(upper, [str(p) for p in lowers])]


@pytest.fixture
def image(tmp_path: Path) -> tuple[Path, Path]:
    """A two-layer image: the bottom layer has etc/, home/user/, bin/sh; the top one adds
    etc/motd and usr/lib/a."""
    bottom, top = tmp_path / "bottom", tmp_path / "top"
    _write(bottom / "etc" / "passwd", "root\n")
    _write(bottom / "etc" / "group", "root\n")
    _write(bottom / "home" / "user" / "a")
    _write(bottom / "home" / "user" / "b")
    _write(bottom / "bin" / "sh", mode=0o755)
    _write(top / "etc" / "motd", "hi\n")
    _write(top / "usr" / "lib" / "a")
    return top, bottom


@needs_root
def test_adds_changes_and_deletes_with_their_parents(tmp_path: Path, image: tuple[Path, Path]) -> None:
    top, bottom = image
    upper = tmp_path / "upper"
    _write(upper / "etc" / "passwd", "root\nme\n")  # changed: C, its parent not by itself
    _whiteout(upper / "home" / "user" / "b")  # deleted: D, its parent C
    _write(upper / "new" / "deep" / "file")  # added: A all the way down
    _write(upper / "usr" / "lib" / "b")  # added beside a file of the top layer
    # overlayfs gives the directories it copied up their lower times back.
    for lower, rel in ((top, "etc"), (bottom, "home/user"), (bottom, "home"),
                       (top, "usr/lib"), (top, "usr")):
        _copy_dir_meta(lower / rel, upper / rel)
    assert _lines(upper, [top, bottom]) == [
        "C /etc/passwd",
        "C /home/user",
        "D /home/user/b",
        "A /new",
        "A /new/deep",
        "A /new/deep/file",
        "C /usr/lib",
        "A /usr/lib/b",
    ]


@needs_root
def test_an_opaque_directory_is_changed_and_what_it_hides_deleted(
    tmp_path: Path, image: tuple[Path, Path]
) -> None:
    top, bottom = image
    upper = tmp_path / "upper"
    # rm -rf /home; mkdir -p /home/user; touch /home/user/a /home/x
    _opaque(upper / "home")
    _write(upper / "home" / "user" / "a")
    _write(upper / "home" / "x")
    assert _lines(upper, [top, bottom]) == [
        "C /home",
        "C /home/user",
        "C /home/user/a",
        "D /home/user/b",
        "A /home/x",
    ]


@needs_root
def test_lower_whiteouts_hide_what_is_below_them(tmp_path: Path, image: tuple[Path, Path]) -> None:
    top, bottom = image
    _whiteout(top / "etc" / "group")  # the top layer deleted it
    upper = tmp_path / "upper"
    _write(upper / "etc" / "group", "new\n")
    _copy_dir_meta(bottom / "etc", upper / "etc")
    lines = _lines(upper, [top, bottom])
    assert "A /etc/group" in lines and "C /etc" in lines
    view = LowerView([str(top), str(bottom)])
    assert view.lstat(("etc", "group")) is None
    assert view.names(("etc",)) == {"passwd", "motd"}


def test_the_runtimes_mount_points_are_not_changes(tmp_path: Path) -> None:
    bottom = tmp_path / "bottom"
    _write(bottom / "bin" / "sh")
    (bottom / "etc").mkdir()
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    for name in ("hosts", "hostname", "resolv.conf"):
        (upper / "etc" / name).write_text("")  # the runtime's empty bind targets
    (upper / "proc").mkdir()
    os.chmod(upper / "etc", 0o755)
    os.chmod(bottom / "etc", 0o755)
    assert _lines(upper, [bottom]) == []
    (upper / "etc" / "hosts").write_text("written, so the container's\n")
    assert _lines(upper, [bottom]) == ["C /etc", "A /etc/hosts"]


def test_a_container_that_changed_nothing_has_no_changes(tmp_path: Path, image: tuple[Path, Path]) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    assert _lines(upper, list(image)) == []


def test_changes_are_sorted_component_by_component(tmp_path: Path) -> None:
    bottom = tmp_path / "bottom"
    bottom.mkdir()
    upper = tmp_path / "upper"
    _write(upper / "a-c")
    _write(upper / "a" / "b")
    # "/a-c" < "/a/b" as strings; docker lists a directory's content right after it.
    assert _lines(upper, [bottom]) == ["A /a", "A /a/b", "A /a-c"]


# ---- the layer tar


def _tar(upper: Path, lowers: list[Path]) -> tuple[int, bytes]:
    out = io.BytesIO()
    count = write_layer(upper, [str(p) for p in lowers], out)
    return count, out.getvalue()


@needs_root
def test_whiteouts_and_opaque_directories_become_oci_markers(tmp_path: Path, image: tuple[Path, Path]) -> None:
    top, bottom = image
    upper = tmp_path / "upper"
    _whiteout(upper / "etc" / "group")
    _opaque(upper / "home")
    _write(upper / "home" / "x", "new\n", mode=0o640)
    os.chown(upper / "home" / "x", 1234, 5678)
    os.setxattr(upper / "home" / "x", "user.note", b"\xff\x00raw")
    os.link(upper / "home" / "x", upper / "home" / "y")
    (upper / "etc" / "hosts").write_text("")  # a runtime stub: not in the layer
    count, data = _tar(upper, [top, bottom])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members) == ["etc", "etc/.wh.group", "home", "home/.wh..wh..opq", "home/x", "home/y"]
    assert count == len(members)
    assert members["etc/.wh.group"].isreg() and members["etc/.wh.group"].size == 0
    x = members["home/x"]
    assert (x.uid, x.gid, x.mode, x.uname) == (1234, 5678, 0o640, "")
    assert x.pax_headers["SCHILY.xattr.user.note"].encode("utf-8", "surrogateescape") == b"\xff\x00raw"
    assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for m in members.values() for k in m.pax_headers)
    assert members["home/y"].islnk() and members["home/y"].linkname == "home/x"

    # Unpacked as an image layer, the markers are overlay's again.
    layer = tmp_path / "layer"
    layer.mkdir()
    tarsafe.extract(io.BytesIO(data), str(layer))
    group = os.lstat(layer / "etc" / "group")
    assert stat.S_ISCHR(group.st_mode) and group.st_rdev == 0
    assert os.getxattr(layer / "home", OPAQUE_XATTR) == b"y"
    assert os.getxattr(layer / "home" / "x", "user.note") == b"\xff\x00raw"
    assert os.stat(layer / "home" / "x").st_ino == os.stat(layer / "home" / "y").st_ino
    assert not (layer / "etc" / "hosts").exists()


def test_an_unchanged_container_writes_no_entries(tmp_path: Path, image: tuple[Path, Path]) -> None:
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "resolv.conf").write_text("")
    count, _ = _tar(upper, list(image))
    # Only etc/ itself: its stub is left out, the directory is still the container's.
    assert count == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _tar(empty, list(image))[0] == 0


def test_kinds_are_dockers_letters() -> None:
    assert [k.value for k in ChangeKind] == ["C", "A", "D"]


def test_times_are_whole_seconds_with_no_pax_header_per_entry(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    f = _write(upper / "data" / "f", "content")
    os.utime(f, (1700000000.75, 1700000000.75))
    os.utime(upper / "data", (1700000001.5, 1700000001.5))
    count, data = _tar(upper, [])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert count == 2
    assert members["data/f"].mtime == 1700000000 and members["data"].mtime == 1700000001
    assert all("mtime" not in m.pax_headers for m in members.values())
