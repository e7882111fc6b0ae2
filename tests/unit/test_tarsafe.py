"""Hostile layer tars are refused whole, naming the entry; honest ones unpack faithfully.

Runs without root: ownership, whiteouts and trusted xattrs are covered by the integration
tests.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from test_images_kit import (
    MTIME,
    build_tar,
    chunks,
    device,
    dir_,
    docker_archive,
    ArchiveImage,
    fifo,
    hard,
    open_store,
    reg,
    sym,
    Member,
)

from pallet.v1.errors import InvalidArgument
from pallet.daemon.images import tarsafe
from pallet.daemon.images.layers import LayerStore
from pallet.daemon.images.leases import Leases

HOSTILE: dict[str, tuple[list[Member], str]] = {
    "dotdot": ([reg("ok"), reg("../../etc/x", b"pwned")], "'../../etc/x' climbs out"),
    "dotdot_inside_then_out": ([reg("a/../../x", b"pwned")], "'a/../../x' climbs out"),
    "absolute_symlink_then_write": (
        [sym("a", "/"), reg("a/etc/x", b"pwned")],
        "'a/etc/x' is written through the absolute symlink 'a' -> '/'",
    ),
    "relative_symlink_out": (
        [sym("a", "../.."), reg("a/x", b"pwned")],
        "'a/x' leaves the layer through a symlink",
    ),
    "symlink_chain_out": (
        [dir_("d"), sym("d/up", ".."), sym("b", "d/up/d/up/.."), reg("b/x", b"pwned")],
        "'b/x' leaves the layer through a symlink",
    ),
    "hardlink_outside": ([hard("h", "../outside")], "'h' is a hardlink to '../outside'"),
    "hardlink_missing": ([hard("h", "etc/passwd")], "'h' refers to 'etc'"),
    "hardlink_missing_file": ([dir_("etc"), hard("h", "etc/passwd")], "which is not earlier"),
    "hardlink_through_absolute_symlink": (
        [sym("root", "/"), hard("h", "root/etc/shadow")],
        "absolute symlink 'root' -> '/'",
    ),
    "char_device": ([reg("ok"), device("dev/mem", "chr", 1, 1)], "'dev/mem' is a character device"),
    "block_device": ([device("dev/sda", "blk", 8, 0)], "'dev/sda' is a block device"),
    "symlink_loop": ([sym("a", "b"), sym("b", "a"), reg("a/x")], "too many symlinks"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_hostile_import_is_refused_and_stores_nothing(tmp_path: Path, case: str) -> None:
    members, message = HOSTILE[case]
    async with open_store(tmp_path) as env:
        with pytest.raises(InvalidArgument) as info:
            await env.manager.import_rootfs(chunks(build_tar(*members)), "evil:latest")
        assert message in str(info.value)
        assert env.stored_files() == []
        assert await env.manager.list() == []
        assert env.events.events == []
    assert not (tmp_path / "etc").exists() and not (tmp_path / "x").exists()
    assert not (tmp_path / "outside").exists()


@pytest.mark.parametrize("compress", [False, True])
async def test_hostile_layer_in_load_stores_nothing(tmp_path: Path, compress: bool) -> None:
    good = build_tar(reg("bin/sh", b"#!", mode=0o755))
    evil = build_tar(sym("a", "../.."), reg("a/x", b"pwned"))
    archive = docker_archive(ArchiveImage([good], ["good:1"]), ArchiveImage([good, evil], ["evil:1"]))
    async with open_store(tmp_path) as env:
        with pytest.raises(InvalidArgument, match="'a/x' leaves the layer"):
            await env.manager.load(chunks(archive))
        assert env.stored_files() == []  # not even the good image's layer and blobs
        assert await env.manager.list() == []
        assert env.events.events == []


async def test_leading_slash_is_stripped(tmp_path: Path) -> None:
    async with open_store(tmp_path) as env:
        image = await env.manager.import_rootfs(
            chunks(build_tar(dir_("/etc"), reg("/etc/hostname", b"box\n"))), "abs:latest"
        )
        (layer,) = env.manager.layer_dirs(image)
        assert Path(layer, "etc/hostname").read_bytes() == b"box\n"


def extract(tmp_path: Path, *members: Member) -> Path:
    root = tmp_path / "layer"
    root.mkdir()
    tarsafe.extract(_stream(build_tar(*members)), str(root))
    return root


def _stream(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)


def test_preserves_modes_mtimes_links_and_fifos(tmp_path: Path) -> None:
    root = extract(
        tmp_path,
        dir_("bin", mode=0o755),
        reg("bin/su", b"\x7fELF", mode=0o4755),
        reg("bin/tool", b"tool", mode=0o2711),
        dir_("locked", mode=0o500),
        reg("locked/inside", b"x", mode=0o400),
        sym("sh", "bin/su"),
        hard("bin/su-again", "bin/su"),
        fifo("run/pipe", mode=0o620),
        reg("via/../plain", b"p"),
        dir_("tmp", mode=0o1777),
    )
    try:
        assert stat.S_IMODE(os.lstat(root / "bin/su").st_mode) == 0o4755
        assert stat.S_IMODE(os.lstat(root / "bin/tool").st_mode) == 0o2711
        assert stat.S_IMODE(os.lstat(root / "tmp").st_mode) == 0o1777
        assert stat.S_IMODE(os.lstat(root / "locked").st_mode) == 0o500
        assert (root / "locked/inside").read_bytes() == b"x"
        assert os.readlink(root / "sh") == "bin/su"
        assert os.lstat(root / "bin/su").st_ino == os.lstat(root / "bin/su-again").st_ino
        assert stat.S_ISFIFO(os.lstat(root / "run/pipe").st_mode)
        assert stat.S_IMODE(os.lstat(root / "run/pipe").st_mode) == 0o620
        assert (root / "plain").read_bytes() == b"p"
        for path in ("bin", "bin/su", "locked", "sh", "run/pipe"):
            assert os.lstat(root / path).st_mtime == MTIME, path
    finally:
        os.chmod(root / "locked", 0o700)


def test_symlinks_inside_the_layer_are_followed(tmp_path: Path) -> None:
    root = extract(
        tmp_path,
        dir_("usr/lib"),
        sym("lib", "usr/lib"),
        reg("lib/libc.so", b"libc"),
        sym("usr/lib64", "../lib"),
        reg("usr/lib64/x", b"x"),
    )
    assert (root / "usr/lib/libc.so").read_bytes() == b"libc"
    assert (root / "usr/lib/x").read_bytes() == b"x"
    assert (root / "lib").is_symlink()


def test_later_entry_replaces_earlier(tmp_path: Path) -> None:
    root = extract(
        tmp_path,
        sym("etc", "/etc"),  # absolute symlink is fine until something is written through it
        dir_("etc"),  # ... and is replaced by a real directory
        reg("etc/passwd", b"root:x:0:0"),
        reg("f", b"old"),
        reg("f", b"new"),
        sym("g", "/etc/shadow"),
        reg("g", b"regular now"),
    )
    assert not (root / "etc").is_symlink()
    assert (root / "etc/passwd").read_bytes() == b"root:x:0:0"
    assert (root / "f").read_bytes() == b"new"
    assert not (root / "g").is_symlink() and (root / "g").read_bytes() == b"regular now"


def test_user_xattrs_are_kept(tmp_path: Path) -> None:
    root = extract(tmp_path, reg("tagged", b"t", xattrs={"user.origin": b"layer\x00\xff"}))
    try:
        value = os.getxattr(root / "tagged", "user.origin")
    except OSError:
        pytest.skip("this filesystem has no user xattrs")
    assert value == b"layer\x00\xff"


def test_not_a_tar_is_a_clear_error(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "layers", Leases())
    store.prepare()
    with pytest.raises(InvalidArgument, match="not a valid tar archive"):
        store.unpack(_stream(b"this is not a tar file at all" * 40))
    with pytest.raises(InvalidArgument, match="gzip stream is corrupt"):
        store.unpack(_stream(b"\x1f\x8b\x08\x00" + b"\x00" * 600))
    with pytest.raises(InvalidArgument, match="zstd"):
        store.unpack(_stream(b"\x28\xb5\x2f\xfd" + b"\x00" * 600))
    assert list(store.tmp_dir.iterdir()) == []


def test_diff_id_covers_the_whole_uncompressed_tar(tmp_path: Path) -> None:
    import gzip
    import hashlib

    store = LayerStore(tmp_path / "layers", Leases())
    store.prepare()
    plain = build_tar(reg("a", b"a" * 5000), dir_("d"))
    for data in (plain, gzip.compress(plain)):
        unpacked = store.unpack(_stream(data))
        assert unpacked.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
        assert unpacked.size == 5000
        assert unpacked.compression == ("gzip" if data is not plain else "")
        store.discard(unpacked)


def test_impossible_metadata_is_the_tars_fault(tmp_path: Path) -> None:
    root = tmp_path / "layer"
    root.mkdir()
    with pytest.raises(InvalidArgument, match="'f' has invalid metadata"):
        tarsafe.extract(_stream(build_tar(reg("f", b"x", mtime=10**400))), str(root))
