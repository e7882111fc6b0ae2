"""`pallet cp`'s path rules, without root: docker's argument and trailing-slash rules
(client), container paths resolved inside a root with openat2 (daemon), archive names,
and extraction that stays inside its root and leaves nothing when it fails (daemon and
host side)."""

from __future__ import annotations

import io
import subprocess
import os
import tarfile
from pathlib import Path

import pytest

from pallet.client import cplocal
from pallet.client.verbs_cp import Plan, local_abs, plan_copy, split_cp_arg, split_last
from pallet.shim.api import inroot
from pallet.daemon.containers.cparchive import resolve_source, write_archive
from pallet.daemon.containers.cpextract import ExtractOptions, Extractor
from pallet.v1.errors import InvalidArgument, NotFound

# ---- client: docker's rules -------------------------------------------------------------------


@pytest.mark.parametrize(("arg", "expected"), [
    ("web:/etc/hosts", ("web", "/etc/hosts")),
    ("web:etc", ("web", "etc")),
    ("web:", ("web", "")),
    ("/abs/with:colon", ("", "/abs/with:colon")),
    ("./rel:colon", ("", "./rel:colon")),
    ("plain", ("", "plain")),
    ("-", ("", "-")),
])
def test_split_cp_arg(arg: str, expected: tuple[str, str]) -> None:
    assert split_cp_arg(arg) == expected


@pytest.mark.parametrize(("path", "expected"), [
    ("/tmp/foo", ("/tmp", "foo")),
    ("/tmp/foo/", ("/tmp", "foo")),
    ("/tmp/foo/.", ("/tmp/foo", ".")),
    ("/", ("/", ".")),
    ("foo", (".", "foo")),
    ("/foo", ("/", "foo")),
])
def test_split_last(path: str, expected: tuple[str, str]) -> None:
    assert split_last(path) == expected


def test_local_abs_keeps_what_the_user_asserted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert local_abs("d/") == f"{tmp_path}/d/"
    assert local_abs("d/.") == f"{tmp_path}/d/."
    assert local_abs(".") == f"{tmp_path}/."
    assert local_abs("a//b") == f"{tmp_path}/a/b"


def test_plan_follows_docker_for_every_case() -> None:
    # dest exists as a directory: extracted into it as it is ("." for "dir/.").
    assert plan_copy("foo", True, "/d", True, True, "w") == Plan("/d", "foo", "foo")
    assert plan_copy(".", True, "/d", True, True, "w") == Plan("/d", ".", ".")
    # a file onto a file, or to a new name: into the parent, renamed.
    assert plan_copy("f", False, "/d/g", True, False, "w") == Plan("/d", "f", "g")
    assert plan_copy("f", False, "/d/new", False, False, "w") == Plan("/d", "f", "new")
    # a directory to a new name: its contents there.
    assert plan_copy("foo", True, "/d/new", False, False, "w") == Plan("/d", "foo", "new")
    assert plan_copy(".", True, "/d/new/", False, False, "w") == Plan("/d", ".", "new")
    with pytest.raises(InvalidArgument, match="cannot copy a directory to a file"):
        plan_copy("foo", True, "/d/file", True, False, "w")
    with pytest.raises(NotFound, match="no such directory"):
        plan_copy("f", False, "/d/missing/", False, False, "w")


def test_rebaser_renames_the_top_entry_only() -> None:
    rename = cplocal.rebaser("foo", "bar")
    assert [rename(n) for n in ("foo", "foo/x", "foobar", "other")] == ["bar", "bar/x", "foobar", "other"]
    contents = cplocal.rebaser(".", "new")
    assert [contents(n) for n in (".", "./x", "x")] == ["new", "new/x", "new/x"]
    assert cplocal.rebaser("a", "a")("a/b") == "a/b"


# ---- daemon: in-root resolution ---------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A container root whose symlinks point out of it, absolute and relative."""
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("container\n")
    (r / "deep" / "a").mkdir(parents=True)
    os.symlink("/etc", r / "abs")
    os.symlink("../../../../../../../..", r / "deep" / "a" / "up")
    os.symlink("/proc/self/root", r / "magic")
    return r


@pytest.fixture
def root_fd(root: Path) -> int:
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def test_clean_parts_and_split() -> None:
    assert inroot.clean_parts("/a/./b//c/../d") == ("a", "b", "d")
    assert inroot.clean_parts("a/../..") is None
    assert inroot.clean_parts("/") == ()
    assert inroot.split_last("/a/b/") == ("/a", "b")
    assert inroot.split_last("/a/b/.") == ("/a/b", ".")


def test_symlinks_out_of_the_root_are_resolved_inside_it(root_fd: int, root: Path) -> None:
    for path in ("/abs", "abs/.", "/deep/a/up/etc", "/deep/a/up/deep/a/up/abs", "/../../etc"):
        fd = inroot.open_dir(root_fd, path)
        try:
            assert os.fstat(fd).st_ino == os.stat(root / "etc").st_ino, path
        finally:
            os.close(fd)
    with pytest.raises(OSError):  # a magic link is refused, not followed to the host's /
        os.close(inroot.open_dir(root_fd, "/magic"))


def test_make_dirs_makes_missing_parents_inside_the_root(root_fd: int, root: Path) -> None:
    made: list[tuple[str, ...]] = []
    fd = inroot.make_dirs(root_fd, ("abs", "new", "deeper"), made)
    os.close(fd)
    assert (root / "etc" / "new" / "deeper").is_dir()
    assert made == [("abs", "new"), ("abs", "new", "deeper")]


# ---- daemon: archive names --------------------------------------------------------------------


def archive_names(root_fd: int, path: str, follow: bool = False) -> list[str]:
    source = resolve_source(root_fd, path, "c", follow)
    read_fd, write_fd = os.pipe()
    import threading

    data: list[bytes] = []
    reader = threading.Thread(target=lambda: data.append(b"".join(iter(lambda: os.read(read_fd, 1 << 16), b""))))
    reader.start()
    try:
        write_archive(source, write_fd)
    finally:
        os.close(write_fd)
        source.close()
    reader.join()
    os.close(read_fd)
    with tarfile.open(fileobj=io.BytesIO(data[0])) as tar:
        return tar.getnames()


def test_archive_names_follow_docker(root_fd: int) -> None:
    assert archive_names(root_fd, "/etc") == ["etc", "etc/passwd"]
    assert archive_names(root_fd, "/etc/.") == [".", "./passwd"]
    assert archive_names(root_fd, "/etc/passwd") == ["passwd"]
    assert archive_names(root_fd, "/abs") == ["abs"]  # the link itself
    assert archive_names(root_fd, "/abs", follow=True) == ["abs", "abs/passwd"]
    assert archive_names(root_fd, "/abs/") == ["abs", "abs/passwd"]
    with pytest.raises(NotFound, match="Could not find the file /nope in container c"):
        resolve_source(root_fd, "/nope", "c")
    with pytest.raises(InvalidArgument, match="not a directory"):
        resolve_source(root_fd, "/etc/passwd/", "c")


# ---- daemon: extraction -----------------------------------------------------------------------


def tar_of(*members: tuple[str, bytes, str]) -> io.BytesIO:
    """(name, type, data or link target) entries."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, 0o755 if kind == tarfile.DIRTYPE else 0o644
            if kind == tarfile.REGTYPE:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload.encode()))
            else:
                info.linkname = payload
                if kind == tarfile.CHRTYPE:
                    info.devmajor, info.devminor = 1, 3
                tar.addfile(info)
    buf.seek(0)
    return buf


def extract(root_fd: int, dest: str, archive: io.BytesIO, **options: bool) -> None:
    extractor = Extractor(root_fd, dest, "c", ExtractOptions(**options))
    extractor.check_destination()
    try:
        extractor.extract(archive)
    except BaseException:
        extractor.rollback()
        raise


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_entries_through_symlinks_stay_inside(root_fd: int, root: Path) -> None:
    before = set(listing(root))
    extract(root_fd, "/abs", tar_of(("/abs-name", tarfile.REGTYPE, "1"),
                                    ("l", tarfile.SYMTYPE, "/"),
                                    ("l/etc/through", tarfile.REGTYPE, "2")))
    assert set(listing(root)) - before == {"etc/abs-name", "etc/l", "etc/through"}
    assert not [p for p in listing(root) if ".pallet-cp-" in p]


@pytest.mark.parametrize(("members", "words"), [
    ([("ok", tarfile.REGTYPE, "x"), ("../../out", tarfile.REGTYPE, "x")], "climbs out"),
    ([("ok", tarfile.REGTYPE, "x"), ("h", tarfile.LNKTYPE, "../../etc/passwd")], "outside the extraction point"),
    ([("ok", tarfile.REGTYPE, "x"), ("null", tarfile.CHRTYPE, "")], "device node"),
    ([("d", tarfile.DIRTYPE, ""), ("d/f", tarfile.REGTYPE, "x"), ("passwd", tarfile.DIRTYPE, "")],
     "cannot overwrite non-directory"),
])
def test_a_refused_entry_leaves_nothing(root_fd: int, root: Path, members: list[tuple[str, bytes, str]], words: str) -> None:
    before = listing(root)
    with pytest.raises(InvalidArgument, match=words):
        extract(root_fd, "/etc", tar_of(*members))
    assert listing(root) == before
    assert (root / "etc" / "passwd").read_text() == "container\n"


def test_destination_must_be_an_existing_directory(root_fd: int) -> None:
    with pytest.raises(NotFound, match="Could not find the file /missing in container c"):
        Extractor(root_fd, "/missing", "c", ExtractOptions()).check_destination()
    with pytest.raises(InvalidArgument, match="extraction point is not a directory"):
        Extractor(root_fd, "/etc/passwd", "c", ExtractOptions()).check_destination()


def test_replacing_a_file_is_whole_and_overwriting_a_directory_needs_leave(root_fd: int, root: Path) -> None:
    extract(root_fd, "/etc", tar_of(("passwd", tarfile.REGTYPE, "new\n")))
    assert (root / "etc" / "passwd").read_text() == "new\n"
    (root / "etc" / "d").mkdir()
    extract(root_fd, "/etc", tar_of(("d", tarfile.REGTYPE, "file now")), no_overwrite_dir_non_dir=False)
    assert (root / "etc" / "d").read_text() == "file now"


# ---- host side --------------------------------------------------------------------------------


def test_host_extraction_never_writes_through_a_symlink(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    canary.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    archive = tar_of(("t", tarfile.DIRTYPE, ""), ("t/link", tarfile.SYMTYPE, str(canary)),
                     ("t/link/escaped", tarfile.REGTYPE, "x"))
    with pytest.raises(InvalidArgument, match="symlink"):
        cplocal.extract_into(iter([archive.getvalue()]), str(dest), lambda n: n, False)
    assert list(canary.iterdir()) == [] and list(dest.iterdir()) == []  # rolled back
    climbing = tar_of(("../escaped", tarfile.REGTYPE, "x"))
    with pytest.raises(InvalidArgument, match="climbs out"):
        cplocal.extract_into(iter([climbing.getvalue()]), str(dest), lambda n: n, False)
    ok = tar_of(("d", tarfile.DIRTYPE, ""), ("d/f", tarfile.REGTYPE, "hello"), ("d/l", tarfile.SYMTYPE, "/etc"))
    assert cplocal.extract_into(iter([ok.getvalue()]), str(dest), cplocal.rebaser("d", "e"), False) == 5
    assert (dest / "e" / "f").read_text() == "hello" and os.readlink(dest / "e" / "l") == "/etc"


def test_a_sparse_file_entry_is_refused_and_nothing_is_left(root_fd: int, root: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "holes", "wb") as f:
        f.truncate(1 << 20)
        f.write(b"data at the start")
    archive = tmp_path / "in.tar"
    subprocess.run(["tar", "--sparse", "-cf", str(archive), "-C", str(src), "holes"], check=True)
    with pytest.raises(InvalidArgument, match="sparse file entry"):
        extract(root_fd, "/etc", io.BytesIO(archive.read_bytes()))
    assert not (root / "etc" / "holes").exists()
