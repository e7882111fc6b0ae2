"""Unpacked layers stack correctly under a real overlayfs mount (root only).

Loads docker-save and OCI archives whose upper layers delete a file (whiteout) and replace
a directory (opaque), mounts the image's layer directories as overlayfs lowerdirs, and
looks at what a container would see. Also checks what only root can preserve: owners,
setuid bits after chown, security/trusted xattrs.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from test_images_kit import (  # noqa: E402
    ArchiveImage,
    build_tar,
    chunks,
    device,
    dir_,
    docker_archive,
    entry,
    hard,
    oci_archive,
    open_store,
    reg,
    sym,
)

from pallet.v1.errors import InvalidArgument  # noqa: E402
from pallet.daemon.images.tarsafe import OPAQUE_XATTR  # noqa: E402

pytestmark = pytest.mark.integration

BASE = build_tar(
    dir_("etc"),
    reg("etc/hostname", b"base\n"),
    reg("etc/secret", b"delete me\n"),
    dir_("data"),
    reg("data/old1", b"1"),
    reg("data/old2", b"2"),
    dir_("keep"),
    reg("keep/k", b"k"),
)
MIDDLE = build_tar(dir_("data"), reg("data/old3", b"3"), reg("mid.txt", b"middle\n"))
TOP = build_tar(
    dir_("etc"),
    reg("etc/.wh.secret"),
    dir_("data"),
    reg("data/.wh..wh..opq"),
    reg("data/new", b"fresh"),
    reg(".wh.mid.txt"),
    reg("top.txt", b"top\n"),
)


@pytest.fixture
def overlay(tmp_path: Path) -> Iterator[list[Path]]:
    """Mounts made by a test, unmounted afterwards: call `mount_layers(dirs, target)`."""
    mounted: list[Path] = []
    yield mounted
    for target in reversed(mounted):
        subprocess.run(["umount", str(target)], check=True)


def mount_layers(mounted: list[Path], lowerdirs: list[str], target: Path) -> Path:
    target.mkdir()
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", "lowerdir=" + ":".join(lowerdirs), str(target)],
        check=True,
    )
    mounted.append(target)
    return target


def check_merged(merged: Path) -> None:
    assert (merged / "etc/hostname").read_bytes() == b"base\n"
    assert not (merged / "etc/secret").exists(), "whiteout did not delete the lower file"
    assert sorted(os.listdir(merged / "data")) == ["new"], "opaque dir shows lower content"
    assert not (merged / "mid.txt").exists()
    assert (merged / "top.txt").read_bytes() == b"top\n"
    assert (merged / "keep/k").read_bytes() == b"k"


@pytest.mark.parametrize("kind", ["docker", "oci", "oci-plain"])
async def test_loaded_layers_stack_with_whiteouts(
    tmp_path: Path, overlay: list[Path], kind: str
) -> None:
    image = ArchiveImage([BASE, MIDDLE, TOP], ["stack:1"])
    if kind == "docker":
        archive = docker_archive(image)
    else:
        archive = oci_archive(image, gzip_layers=(kind == "oci"))
    async with open_store(tmp_path) as env:
        (loaded,) = (await env.manager.load(chunks(archive))).images
        dirs = env.manager.layer_dirs(loaded)
        assert len(dirs) == 3
        top = Path(dirs[0])
        whiteout = os.lstat(top / "etc/secret")
        assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == os.makedev(0, 0)
        assert os.getxattr(top / "data", OPAQUE_XATTR) == b"y"
        assert not (top / "etc/.wh.secret").exists()
        check_merged(mount_layers(overlay, dirs, tmp_path / "merged"))


async def test_import_preserves_owners_setuid_and_xattrs(tmp_path: Path) -> None:
    capability = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_bind_service
    rootfs = build_tar(
        dir_("home/app", uid=1000, gid=1000, mode=0o750),
        reg("usr/bin/passwd", b"\x7fELF", mode=0o4755, uid=0, gid=0),
        reg("usr/bin/wall", b"\x7fELF", mode=0o2755, uid=0, gid=5),
        reg("usr/bin/ping", b"\x7fELF", mode=0o755, xattrs={"security.capability": capability}),
        reg("home/app/notes", b"n", uid=1000, gid=50, mode=0o640, xattrs={"trusted.note": b"t"}),
        sym("home/app/link", "notes", uid=1000, gid=1000),
        hard("home/app/notes2", "home/app/notes"),
        entry("dev/.wh.ignored"),  # a whiteout of something no lower layer has is harmless
        entry("dev/null", b"3", devmajor=0, devminor=0),  # overlay-style whiteout kept as is
    )
    async with open_store(tmp_path) as env:
        image = await env.manager.import_rootfs(chunks(rootfs), "owners:1")
        root = Path(env.manager.layer_dirs(image)[0])
        home = os.lstat(root / "home/app")
        assert (home.st_uid, home.st_gid, stat.S_IMODE(home.st_mode)) == (1000, 1000, 0o750)
        passwd = os.lstat(root / "usr/bin/passwd")
        assert stat.S_IMODE(passwd.st_mode) == 0o4755
        wall = os.lstat(root / "usr/bin/wall")
        assert (wall.st_gid, stat.S_IMODE(wall.st_mode)) == (5, 0o2755)
        assert os.getxattr(root / "usr/bin/ping", "security.capability") == capability
        notes = os.lstat(root / "home/app/notes")
        assert (notes.st_uid, notes.st_gid, notes.st_nlink) == (1000, 50, 2)
        assert os.getxattr(root / "home/app/notes", "trusted.note") == b"t"
        link = os.lstat(root / "home/app/link")
        assert (link.st_uid, link.st_gid) == (1000, 1000)
        for name in ("dev/ignored", "dev/null"):
            node = os.lstat(root / name)
            assert stat.S_ISCHR(node.st_mode) and node.st_rdev == 0, name


async def test_hostile_tar_as_root_writes_nothing_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"original")
    for case, members in enumerate((
        [sym("esc", str(outside)), reg("esc/victim", b"pwned")],
        [sym("esc", "../../../../../../../.." + str(outside)), reg("esc/victim", b"pwned")],
        [reg("../" * 12 + str(outside).lstrip("/") + "/victim", b"pwned")],
        [sym("esc", str(outside / "victim")), hard("h", "esc")],  # link to the symlink only
        [device("dev/kmsg", "chr", 1, 11)],
    )):
        async with open_store(tmp_path / f"store{case}") as env:
            try:
                image = await env.manager.import_rootfs(chunks(build_tar(*members)), "evil")
            except InvalidArgument:
                assert env.stored_files() == []
            else:
                # Only the hardlink-to-symlink case is allowed: it links the link itself.
                root = Path(env.manager.layer_dirs(image)[0])
                assert os.readlink(root / "h") == str(outside / "victim")
        assert (outside / "victim").read_bytes() == b"original"
        assert os.lstat(outside / "victim").st_nlink == 1
        assert sorted(os.listdir(outside)) == ["victim"]
