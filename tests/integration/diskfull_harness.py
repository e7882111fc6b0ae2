"""A palletd whose state directory (--root) is a small tmpfs, and a way to fill it.

Owns: `DiskfullPalletd` (a `conftest.Palletd` whose root is a tmpfs of its own, mounted
before palletd starts and always unmounted at teardown), filling that filesystem with a
filler file (`fill`, `full`) and freeing it (`free`), and the fixtures `diskfull_palletd`
(started, busybox:latest imported) and `diskfull_factory` (make more, choose the size);
the same for a directory without palletd (`small_disk`, `fill_disk`, `free_disk`,
`disk_free_bytes`).
Must not: touch anything outside its own directories; like `conftest.Palletd` it kills
only processes that name them.

The tmpfs lies beside the daemon's base directory (`<base>-disk`), not inside it, so the
base teardown does not take the tmpfs for a leaked mount; mounts left under the tmpfs
(container rootfs) are still reported as leaks. Processes are found by command line, and
`<base>-disk` contains `<base>`, so shims and containers under the tmpfs are found too.

Usage:

    def test_x(diskfull_palletd):
        d = diskfull_palletd
        d.cli_ok("run", "-d", "--name", "c", "busybox", "sleep", "100")
        with d.full():            # the filesystem has no free block in the body
            r = d.cli("create", "busybox")
        # freed again here

    `d.fill()` / `d.free()` for a fill that spans more than one block of the test.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import (
    BASE_CHANGES,
    LEAK_REPORTS,
    Palletd,
    _lazy_unmount,
    mounts_under,
    new_palletd,
)

#: The tmpfs size when a test does not choose one: room for busybox (its blob and its
#: unpacked layer, about 2 MiB each), a few containers and the database.
DEFAULT_SIZE = "20m"
FILLER = "filler"


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(mode=0o711)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0711", "tmpfs", str(path)],
        check=True,
        capture_output=True,
    )


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` (made here) for the body; unmounted and removed
    afterwards, always. For a directory of something other than palletd (a bundle)."""
    _mount_tmpfs(path, size)
    try:
        yield path
    finally:
        free_disk(path)
        _lazy_unmount(str(path))
        shutil.rmtree(path, ignore_errors=True)


def disk_free_bytes(disk: Path) -> int:
    """Bytes still free on the filesystem of `disk` (tmpfs keeps no reserve for root)."""
    st = os.statvfs(disk)
    return st.f_bavail * st.f_frsize


def fill_disk(disk: Path, leave: int = 0) -> int:
    """Write a filler file in `disk` until its filesystem is full (or `leave` bytes are
    left); return its size. Appends to a filler already there: calling it again after
    something freed some space fills that too."""
    fd = os.open(disk / FILLER, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (1 << 20, 64 << 10, 4096, 512, 1):
            block = b"\0" * chunk
            while disk_free_bytes(disk) - chunk >= leave:
                try:
                    os.write(fd, block)
                except OSError as e:
                    if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                        raise
                    break
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def free_disk(disk: Path) -> None:
    """Remove the filler of `disk`: the space it took is free again."""
    (disk / FILLER).unlink(missing_ok=True)


@dataclass
class DiskfullPalletd(Palletd):
    """A palletd whose --root is its own tmpfs of `size` (mounted by `start`)."""

    size: str = DEFAULT_SIZE
    #: With a size, --run-root is a tmpfs of its own too (`run_disk`), beside the base dir.
    run_size: str = ""

    @property
    def disk(self) -> Path:
        """The tmpfs mount point (and palletd's --root)."""
        return Path(str(self.base) + "-disk")

    @property
    def run_disk(self) -> Path:
        """The run root's tmpfs mount point (with `run_size`)."""
        return Path(str(self.base) + "-run")

    @property
    def root(self) -> Path:
        return self.disk

    @property
    def run_root(self) -> Path:
        return self.run_disk if self.run_size else super().run_root

    @property
    def filler(self) -> Path:
        return self.disk / FILLER

    def start(self) -> None:
        if not os.path.ismount(self.disk):
            _mount_tmpfs(self.disk, self.size)
        if self.run_size and not os.path.ismount(self.run_disk):
            _mount_tmpfs(self.run_disk, self.run_size)
        super().start()

    # ---- the filesystem (the root's tmpfs; `on=d.run_disk` for the run root's)

    def free_bytes(self, on: Path | None = None) -> int:
        """Bytes still free on the tmpfs (tmpfs keeps no reserve for root)."""
        return disk_free_bytes(on or self.disk)

    def fill(self, leave: int = 0, on: Path | None = None) -> int:
        """Write the filler file until the filesystem is full (or `leave` bytes are left);
        return its size. Appends to a filler already there: calling it again after palletd
        freed some space fills that too."""
        return fill_disk(on or self.disk, leave)

    def free(self, on: Path | None = None) -> None:
        """Remove the filler: the space it took is free again."""
        free_disk(on or self.disk)

    @contextlib.contextmanager
    def full(self, leave: int = 0, on: Path | None = None) -> Iterator[int]:
        """The filesystem full in the body (the filler's size given), freed afterwards."""
        size = self.fill(leave, on)
        try:
            yield size
        finally:
            self.free(on)

    # ---- teardown

    def teardown(self) -> list[str]:
        """The base teardown (containers, daemon, processes, cgroups), after freeing the
        disk so that removing containers has room; then whatever is mounted under the
        tmpfs (a leak), then the tmpfs itself, always."""
        problems: list[str] = []
        disks = [self.disk] + ([self.run_disk] if self.run_size else [])
        for disk in disks:
            if disk.exists():
                self.free(disk)
        try:
            problems += super().teardown()
        finally:
            for disk in disks:
                mounted = [m for m in mounts_under(disk) if m != str(disk)]
                if mounted:
                    problems.append(f"mounts left behind on the small disk: {mounted}")
                for mount_point in sorted(mounted, key=len, reverse=True):
                    _lazy_unmount(mount_point)
                if os.path.ismount(disk):
                    _lazy_unmount(str(disk))
                shutil.rmtree(disk, ignore_errors=True)
                if disk.exists():
                    problems.append(f"cannot remove {disk}")
        return problems


def new_diskfull_palletd(size: str = DEFAULT_SIZE, run_size: str = "") -> DiskfullPalletd:
    plain = new_palletd()
    return DiskfullPalletd(
        base=plain.base, cgroup_parent=plain.cgroup_parent, netns=plain.netns, size=size,
        run_size=run_size,
    )


def _finish_all(daemons: list[DiskfullPalletd]) -> None:
    problems = [p for d in daemons for p in d.teardown()]
    if problems:
        LEAK_REPORTS.extend(problems)
        pytest.fail("teardown found leaks:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture
def diskfull_factory(
    busybox_tar: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., DiskfullPalletd]]:
    """`make(size="20m", image=True, run_size="")`: a started palletd on a tmpfs root of
    `size` (and a tmpfs run root of `run_size`, if given), with busybox:latest imported
    unless `image` is false; torn down after the test."""
    made: list[DiskfullPalletd] = []

    def make(size: str = DEFAULT_SIZE, image: bool = True, run_size: str = "") -> DiskfullPalletd:
        daemon = new_diskfull_palletd(size, run_size)
        made.append(daemon)
        request.node.palletd_under_test = daemon
        daemon.start()
        if image:
            daemon.base_image_id = daemon.import_image(busybox_tar, "busybox:latest", BASE_CHANGES)
        return daemon

    try:
        yield make
    finally:
        _finish_all(made)


@pytest.fixture
def diskfull_palletd(
    diskfull_factory: Callable[..., DiskfullPalletd],
) -> DiskfullPalletd:
    """A started palletd on a 20 MB tmpfs root with busybox:latest; the disk not yet full."""
    return diskfull_factory()
