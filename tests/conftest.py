"""Fixtures every test layer may use.

Owns: the session's test image, a real root filesystem built from Debian's busybox-static
(`/bin/busybox`, never downloaded) and written as a tar with `tarfile`. Must not: start
daemons or touch the host outside pytest's temp dirs (tests/integration/conftest.py does that).

The rootfs has bin/busybox plus one symlink per applet, /etc/passwd with root, nobody and
app (uid 1000, home /home/app), /etc/group with root, nogroup, app and a supplementary group
staff (gid 50) that app belongs to, a world-writable sticky /tmp, and empty mount points.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path

import pytest

BUSYBOX = Path("/bin/busybox")
# A fixed mtime makes the tar (and so the imported layer's digest) the same on every run.
MTIME = 1_700_000_000

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n"
)
GROUP = "root:x:0:\nstaff:x:50:app\nnogroup:x:65534:\napp:x:1000:\n"

#: (path, mode, uid, gid) of the directories in the test rootfs.
DIRECTORIES: tuple[tuple[str, int, int, int], ...] = (
    ("bin", 0o755, 0, 0),
    ("dev", 0o755, 0, 0),
    ("etc", 0o755, 0, 0),
    ("home", 0o755, 0, 0),
    ("home/app", 0o755, 1000, 1000),
    ("proc", 0o555, 0, 0),
    ("root", 0o700, 0, 0),
    ("sys", 0o555, 0, 0),
    ("tmp", 0o1777, 0, 0),
    ("usr", 0o755, 0, 0),
    ("usr/bin", 0o755, 0, 0),
    ("var", 0o755, 0, 0),
    ("var/log", 0o755, 0, 0),
)


def busybox_problem() -> str | None:
    """Why /bin/busybox cannot make a test image, or None when it can."""
    if not BUSYBOX.is_file():
        return "/bin/busybox is missing: apt-get install busybox-static"
    if elf_interpreter(BUSYBOX.read_bytes()) is not None:
        # A dynamic busybox would need the host's libc inside the rootfs.
        return "/bin/busybox is dynamically linked: apt-get install busybox-static"
    return None


def elf_interpreter(data: bytes) -> str | None:
    """The PT_INTERP path of a 64-bit little-endian ELF, None for a static binary."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        base = phoff + i * phentsize
        p_type, = struct.unpack_from("<I", data, base)
        if p_type == 3:  # PT_INTERP
            offset, = struct.unpack_from("<Q", data, base + 8)
            size, = struct.unpack_from("<Q", data, base + 32)
            return data[offset : offset + size].rstrip(b"\0").decode()
    return None


def busybox_applets() -> list[str]:
    result = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True, timeout=10
    )
    return sorted({name for name in result.stdout.split() if name and name != "busybox"})


def add_dir(tar: tarfile.TarFile, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
    info = tarfile.TarInfo(path)
    info.type = tarfile.DIRTYPE
    info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, MTIME
    tar.addfile(info)


def add_file(
    tar: tarfile.TarFile, path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0
) -> None:
    info = tarfile.TarInfo(path)
    info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, gid, MTIME
    tar.addfile(info, io.BytesIO(data))


def add_symlink(tar: tarfile.TarFile, path: str, target: str) -> None:
    info = tarfile.TarInfo(path)
    info.type = tarfile.SYMTYPE
    info.linkname, info.mode, info.mtime = target, 0o777, MTIME
    tar.addfile(info)


def write_busybox_rootfs(
    dest: Path, extra_files: Iterable[tuple[str, bytes, int]] = ()
) -> Path:
    """Write the test rootfs tar to `dest`; `extra_files` are (path, content, mode)."""
    applets = busybox_applets()
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for path, mode, uid, gid in DIRECTORIES:
            add_dir(tar, path, mode, uid, gid)
        add_file(tar, "bin/busybox", BUSYBOX.read_bytes(), 0o755)
        for applet in applets:
            add_symlink(tar, f"bin/{applet}", "busybox")
        add_file(tar, "etc/passwd", PASSWD.encode())
        add_file(tar, "etc/group", GROUP.encode())
        add_file(tar, "etc/pallet-test-image", b"busybox\n")
        for path, content, mode in extra_files:
            add_file(tar, path, content, mode)
    return dest


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the busybox rootfs tar (built once per session)."""
    problem = busybox_problem()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run every test, but {problem}")
        pytest.skip(problem)
    return write_busybox_rootfs(tmp_path_factory.mktemp("image") / "busybox-rootfs.tar")
