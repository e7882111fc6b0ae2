"""Volumes without root: the local driver's options, filters, copy-up, and VolumeManager
against a real database and a fake mount table (what is made, recorded and undone)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pallet.daemon.containers.model import (
    MOUNT_BIND,
    MOUNT_VOLUME,
    Config,
    Container,
    ContainerState,
    HostConfig,
    MountSpec,
)
from pallet.daemon.containers.mounting import ContainerMounts, resolve_mounts
from pallet.daemon.events.bus import EventBus, RetentionPolicy
from pallet.daemon.events.filters import parse_filters
from pallet.daemon.events.model import Event
from pallet.daemon.store.db import Database
from pallet.daemon.volumes import copyup, filters
from pallet.daemon.volumes.manager import VolumeManager
from pallet.daemon.volumes.model import LABEL_ANONYMOUS, Volume, VolumeUse
from pallet.daemon.volumes.mounts import LocalMount, parse_local_options
from pallet.shim.api.mountflags import FLAGS, MS_BIND, MS_NOEXEC, MS_RDONLY, STRUCTURAL
from pallet.shim.mounts import parse_options
from pallet.daemon.volumes.store import VolumeRecords
from pallet.v1.errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound

FILESYSTEMS = frozenset({"tmpfs", "ext4"})


# ---- the local driver's options ----------------------------------------------------------


def test_no_options_is_a_plain_directory() -> None:
    assert parse_local_options({}, FILESYSTEMS) is None


def test_tmpfs_options_become_one_mount() -> None:
    m = parse_local_options({"type": "tmpfs", "o": "size=10m,uid=1000,noexec,ro"}, FILESYSTEMS)
    assert m == LocalMount("tmpfs", "tmpfs", MS_NOEXEC | MS_RDONLY, "size=10m,uid=1000")


def test_a_bind_needs_type_none_and_o_bind() -> None:
    m = parse_local_options({"type": "none", "device": "/srv/data", "o": "bind,ro"}, FILESYSTEMS)
    assert m is not None and m.is_bind and m.device == "/srv/data" and m.flags & MS_RDONLY
    assert m.flags & MS_BIND


def test_a_mount_word_means_one_thing_to_the_shim_and_the_volumes() -> None:
    for word in sorted(set(FLAGS) - STRUCTURAL):
        flags, _, data = parse_options((word,))
        m = parse_local_options({"type": "tmpfs", "o": word}, FILESYSTEMS)
        assert m is not None and (m.flags, m.data) == (flags, data), word
    m = parse_local_options({"type": "tmpfs", "o": "size=1m,inode64,noswap"}, FILESYSTEMS)
    assert m is not None and m.data == "size=1m,inode64,noswap"


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"size": "1g"}, "invalid volume option 'size'"),
        ({"device": "/dev/sdb1"}, "need type"),
        ({"o": "size=1m"}, "need type"),
        ({"type": "ext4"}, "give the device"),
        ({"type": "none", "device": "/srv"}, "add -o o=bind"),
        ({"type": "none", "device": "srv", "o": "bind"}, "absolute host path"),
        ({"type": "none", "device": "/srv", "o": "bind,size=1m"}, "mount flags only"),
        ({"type": "tmpfs", "o": "bind"}, "needs type=none"),
        ({"type": "tmpfs", "o": "remount"}, "not allowed"),
        ({"type": "tmpfs", "o": "rshared"}, "not allowed"),
        ({"type": "tmpfs", "o": "banana=1"}, "tmpfs takes"),
        ({"type": "zfs-not-here", "device": "x"}, "no such filesystem"),
    ],
)
def test_bad_options_say_what_to_write(options: dict[str, str], words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        parse_local_options(options, FILESYSTEMS)


# ---- filters ------------------------------------------------------------------------------


def test_filters_match_as_docker_does() -> None:
    v = Volume("web-data", 1, labels={"app": "web", "tier": "db"})
    assert filters.matches(v, filters.parse(["name=data"]), False)
    assert not filters.matches(v, filters.parse(["name=other"]), False)
    assert filters.matches(v, filters.parse(["label=app=web", "label=tier"]), False)
    assert not filters.matches(v, filters.parse(["label=app=web", "label=nope"]), False)
    assert not filters.matches(v, filters.parse(["label!=app"]), False)
    assert filters.matches(v, filters.parse(["dangling=true"]), False)
    assert not filters.matches(v, filters.parse(["dangling=true"]), True)
    assert filters.matches(v, filters.parse(["driver=local"]), True)
    for bad, words in (("nokey", "key=value"), ("size=1", "unknown filter"), ("dangling=maybe", "true or false")):
        with pytest.raises(InvalidArgument, match=words):
            filters.parse([bad])
    with pytest.raises(InvalidArgument, match="unknown filter"):
        filters.parse(["name=x"], filters.PRUNE_KEYS)


# ---- copy-up ----------------------------------------------------------------------------


def _image_tree(top: Path) -> Path:
    src = top / "image-var-lib"
    (src / "sub").mkdir(parents=True)
    (src / "file").write_text("hello")
    os.chmod(src / "file", 0o640)
    os.link(src / "file", src / "hard")
    os.symlink("/etc/shadow", src / "abs-link")  # copied as a link, never followed
    os.mkfifo(src / "fifo")
    (src / "sub" / "deep").write_bytes(b"x" * 5000)
    os.chmod(src / "sub", 0o711)
    os.chmod(src, 0o750)
    os.utime(src / "file", ns=(1_000_000_000, 2_000_000_000))
    return src


def test_fill_copies_the_tree_with_modes_links_and_times(tmp_path: Path) -> None:
    src = _image_tree(tmp_path)
    data = tmp_path / "vol" / "_data"
    data.mkdir(parents=True)
    assert copyup.fill(src, data)
    assert (data / "file").read_text() == "hello"
    assert stat.S_IMODE(os.stat(data / "file").st_mode) == 0o640
    assert os.stat(data / "file").st_mtime_ns == 2_000_000_000
    assert os.stat(data / "hard").st_ino == os.stat(data / "file").st_ino
    assert os.readlink(data / "abs-link") == "/etc/shadow"
    assert stat.S_ISFIFO(os.lstat(data / "fifo").st_mode)
    assert stat.S_IMODE(os.stat(data / "sub").st_mode) == 0o711
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o750  # the mount point takes the image's
    # The hard link once; a symlink is its target's length, a fifo 0 (docker counts so).
    assert copyup.tree_size(data) == 5 + 5000 + len("/etc/shadow")
    assert [p.name for p in data.parent.iterdir()] == ["_data"]


def test_fill_leaves_a_volume_with_content_alone(tmp_path: Path) -> None:
    src = _image_tree(tmp_path)
    data = tmp_path / "_data"
    data.mkdir()
    (data / "mine").write_text("kept")
    assert not copyup.fill(src, data)
    assert sorted(p.name for p in data.iterdir()) == ["mine"]
    assert not copyup.fill(tmp_path / "missing", tmp_path / "_data")


def test_tree_size_never_walks_through_a_symlink_even_one_swapped_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "big").write_bytes(b"h" * 100_000)
    data = tmp_path / "_data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "mine").write_bytes(b"m" * 10)
    os.symlink(outside, data / "to-host")
    assert copyup.tree_size(data) == 10 + len(str(outside))
    assert copyup.tree_size(data / "to-host") == 0
    # A container swaps sub for a symlink to the host while the walk is under way: after
    # the top's listing, before sub is entered.
    real_scandir = os.scandir
    calls = []

    def swapping_scandir(path: object) -> object:
        calls.append(path)
        if len(calls) == 2:
            os.rename(data / "sub", data / "sub.old")
            os.symlink(outside, data / "sub")
        return real_scandir(path)  # type: ignore[call-overload]

    monkeypatch.setattr(copyup.os, "scandir", swapping_scandir)
    assert copyup.tree_size(data) < 100_000


def test_a_fill_that_fails_leaves_the_volume_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _image_tree(tmp_path)
    data = tmp_path / "vol" / "_data"
    data.mkdir(parents=True)
    calls = []

    def failing_copy(a: str, b: str, follow_symlinks: bool = True) -> None:
        calls.append(a)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        Path(b).write_bytes(Path(a).read_bytes())

    monkeypatch.setattr(copyup.shutil, "copyfile", failing_copy)
    with pytest.raises(OSError, match="No space"):
        copyup.fill(src, data)
    assert list(data.iterdir()) == []
    assert [p.name for p in data.parent.iterdir()] == ["_data"]


# ---- the manager ----------------------------------------------------------------------------


@dataclass
class FakeMounts:
    """A mount table: target -> what is mounted there."""

    table: dict[str, LocalMount] = field(default_factory=dict)
    fail: bool = False
    # (entered, go): mount_points says it was called, then waits for go (on its thread).
    gate: tuple[threading.Event, threading.Event] | None = None

    def mount(self, m: LocalMount, target: str) -> None:
        if self.fail:
            raise FailedPrecondition(f"cannot mount at {target}: Invalid argument")
        assert target not in self.table, f"{target} mounted twice"
        self.table[target] = m

    def unmount(self, target: str) -> None:
        self.table.pop(target, None)

    def mount_points(self, under: str) -> set[str]:
        if self.gate is not None:
            entered, go = self.gate
            entered.set()
            assert go.wait(10)
        return {t for t in self.table if t.startswith(under.rstrip("/") + "/")}


@dataclass
class Env:
    manager: VolumeManager
    mounts: FakeMounts
    events: EventBus
    root: Path
    users: dict[str, list[tuple[str, str]]]
    db: Database

    async def journal(self) -> list[Event]:
        stream = self.events.subscribe(parse_filters([]), since_seq=0, until_ns=time.time_ns())
        return [e async for e in stream]

    async def actions(self) -> list[str]:
        return [f"{e.action} {e.actor_id}" for e in await self.journal()]

    async def restart(self) -> VolumeManager:
        m = VolumeManager(VolumeRecords(self.db), self.events, self.root, self.mounts,
                          filesystems=lambda: FILESYSTEMS)
        m.set_users(lambda name: self.users.get(name, []))
        await m.start()
        self.manager = m
        return m


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    db = Database(tmp_path / "pallet.db")
    await db.start()
    events = EventBus(db, RetentionPolicy(1000, 3600, 1 << 20))
    await events.start()
    e = Env(None, FakeMounts(), events, tmp_path / "root", {}, db)  # type: ignore[arg-type]
    await e.restart()
    yield e
    await e.events.aclose()
    await e.db.aclose()


async def test_create_makes_the_directory_and_the_record(env: Env) -> None:
    v = await env.manager.create("data", labels={"a": "b"})
    assert env.manager.data_dir("data").is_dir()
    assert env.manager.get("data") == v
    assert await env.actions() == ["create data"]
    # Again with the same (or no) labels: the same volume, no second event.
    assert await env.manager.create("data") == v
    assert await env.manager.create("data", labels={"a": "b"}) == v
    with pytest.raises(AlreadyExists, match="other labels or options"):
        await env.manager.create("data", labels={"a": "c"})
    assert await env.actions() == ["create data"]
    # A restart finds it.
    m = await env.restart()
    assert m.get("data") == v


async def test_bad_names_drivers_and_options_change_nothing(env: Env) -> None:
    for name in ("a", "-x", "../etc", "a/b", ".hidden", "x" * 256):
        with pytest.raises(InvalidArgument, match="invalid volume name"):
            await env.manager.create(name)
    with pytest.raises(InvalidArgument, match="local driver only"):
        await env.manager.create("ok", driver="nfs")
    with pytest.raises(InvalidArgument):
        await env.manager.create("ok", options={"type": "tmpfs", "o": "bind"})
    env.mounts.fail = True
    with pytest.raises(FailedPrecondition, match="Invalid argument"):
        await env.manager.create("ok", options={"type": "tmpfs", "o": "size=1m"})
    assert env.manager.volumes() == []
    assert list((env.root / "volumes").iterdir()) == []
    assert await env.actions() == []


async def test_options_are_tried_at_create_and_mounted_for_the_first_user_only(env: Env) -> None:
    await env.manager.create("fast", options={"type": "tmpfs", "o": "size=1m"})
    assert env.mounts.table == {}  # tried, then taken off
    data = str(env.manager.data_dir("fast"))
    path = await env.manager.mount("fast", VolumeUse("c1", "/cache", True, ""))
    assert str(path) == data and data in env.mounts.table
    await env.manager.mount("fast", VolumeUse("c2", "/cache", False, "rprivate"))
    await env.manager.unmount("fast", "c1")
    assert data in env.mounts.table  # c2 still has it
    await env.manager.unmount("fast", "c2")
    await env.manager.unmount("fast", "c2")  # a second unmount is nothing
    assert env.mounts.table == {}
    events = [e for e in await env.journal() if e.action in ("mount", "unmount")]
    assert [(e.action, e.attributes["container"]) for e in events] == [
        ("mount", "c1"), ("mount", "c2"), ("unmount", "c1"), ("unmount", "c2")]
    assert events[1].attributes["read/write"] == "false"
    assert events[1].attributes["destination"] == "/cache"


async def test_reconcile_takes_off_mounts_nobody_uses(env: Env) -> None:
    await env.manager.create("a1", options={"type": "tmpfs", "o": "size=1m"})
    await env.manager.create("b1", options={"type": "tmpfs", "o": "size=1m"})
    await env.manager.mount("a1", VolumeUse("c1", "/x"))
    await env.manager.mount("b1", VolumeUse("c2", "/x"))
    m = await env.restart()  # palletd died; c1 still runs, c2 exited meanwhile
    await m.reconcile({"a1": {"c1"}})
    assert set(env.mounts.table) == {str(m.data_dir("a1"))}
    with pytest.raises(FailedPrecondition, match="in use"):
        await m.remove("a1")
    # c2's run is over: its unmount is announced once, now; c1's is still to come.
    unmounts = [e for e in await env.journal() if e.action == "unmount"]
    assert [(e.actor_id, e.attributes["container"]) for e in unmounts] == [("b1", "c2")]
    m = await env.restart()  # and again: nothing is announced twice
    await m.reconcile({"a1": {"c1"}})
    await m.unmount("a1", "c1")
    unmounts = [e for e in await env.journal() if e.action == "unmount"]
    assert [(e.actor_id, e.attributes["container"]) for e in unmounts] == [("b1", "c2"), ("a1", "c1")]
    assert env.mounts.table == {}


async def test_a_volume_in_use_is_not_removed_even_with_force(env: Env) -> None:
    await env.manager.create("db")
    (env.manager.data_dir("db") / "table").write_text("rows")
    env.users["db"] = [("c" * 64, "postgres")]
    for force in (False, True):
        with pytest.raises(FailedPrecondition, match="in use by container postgres"):
            await env.manager.remove("db", force)
    assert (env.manager.data_dir("db") / "table").read_text() == "rows"
    env.users.clear()
    assert await env.manager.remove("db")
    assert not (env.root / "volumes" / "db").exists()
    with pytest.raises(NotFound, match="no such volume: db"):
        await env.manager.remove("db")
    assert not await env.manager.remove("db", force=True)
    assert await env.actions() == ["create db", "destroy db"]


async def test_a_create_while_the_same_name_is_being_removed_says_try_again(env: Env) -> None:
    await env.manager.create("busy")
    entered, go = threading.Event(), threading.Event()
    env.mounts.gate = (entered, go)
    removing = asyncio.create_task(env.manager.remove("busy"))
    try:
        assert await asyncio.to_thread(entered.wait, 10)  # the data is being deleted
        with pytest.raises(Conflict, match="volume busy is being removed: try again"):
            await env.manager.create("busy")
    finally:
        go.set()
        await removing
    env.mounts.gate = None
    await env.manager.create("busy")
    assert await env.actions() == ["create busy", "destroy busy", "create busy"]


async def test_a_volume_a_create_holds_is_neither_pruned_nor_removed(env: Env) -> None:
    # A create between resolving its mounts (volumes made or found) and writing its
    # record: the container manager's view has no such container yet.
    def find(ref: str) -> Container:
        raise NotFound(ref)

    made: list[str] = []
    await env.manager.create("data")
    host = await resolve_mounts(HostConfig(binds=("data:/data", "/anon")), ["/img"], find,
                                env.manager, made, "c1")
    assert len(made) == 2 and {m.source for m in host.mounts} == {"data", *made}
    removed, _ = await env.manager.prune(True)
    assert removed == []
    for name in ("data", *made):
        with pytest.raises(FailedPrecondition, match="in use by a container being created"):
            await env.manager.remove(name, force=True)
    # Recorded: its record holds them now (the users), and it lets go of the rest.
    env.users.update({name: [("c1", "web")] for name in ("data", *made)})
    env.manager.release_pending("c1")
    assert (await env.manager.prune(True))[0] == []
    env.users.clear()  # removed: nothing holds them
    assert sorted((await env.manager.prune(True))[0]) == sorted(["data", *made])


async def test_a_failed_create_lets_go_of_what_it_held(env: Env) -> None:
    await env.manager.ensure("data", False, holder="c1")
    await env.manager.ensure("data", False, holder="c2")
    env.manager.release_pending("c1")
    assert (await env.manager.prune(True))[0] == []  # c2 still holds it
    env.manager.release_pending("c2")
    env.manager.release_pending("c2")  # twice is nothing
    assert (await env.manager.prune(True))[0] == ["data"]


async def test_prune_takes_anonymous_ones_unless_all(env: Env) -> None:
    anon = await env.manager.create(anonymous=True)
    assert anon.anonymous and LABEL_ANONYMOUS in anon.labels and len(anon.name) == 64
    await env.manager.create("named", labels={"keep": "no"})
    await env.manager.create("kept", labels={"keep": "yes"})
    used = await env.manager.create(anonymous=True)
    env.users[used.name] = [("c1", "web")]
    (env.manager.data_dir(anon.name) / "f").write_bytes(b"12345")
    removed, reclaimed = await env.manager.prune(False)
    assert removed == [anon.name] and reclaimed == 5
    removed, _ = await env.manager.prune(True, lambda v: v.labels.get("keep") != "yes")
    assert removed == ["named"]
    assert [v.name for v in env.manager.volumes()] == sorted(["kept", used.name])


async def test_a_boot_finishes_or_undoes_what_was_cut_short_never_through_a_mount(env: Env) -> None:
    await env.manager.create("real")
    (env.manager.data_dir("real") / "f").write_text("kept")
    await env.manager.create("done")
    await env.manager.create("half-gone")
    vols = env.root / "volumes"
    # A create cut short before its record, with its trial mount still in place.
    half = vols / ".creating-half" / "_data"
    half.mkdir(parents=True)
    env.mounts.table[str(half)] = LocalMount("", "/srv", MS_BIND, "")
    # A create cut short after its record, before its rename.
    os.rename(vols / "done", vols / ".creating-done")
    # Removes cut short after the rename: with the record gone, and with it still there.
    (vols / ".removing-gone-0123abcd" / "_data").mkdir(parents=True)
    os.rename(vols / "half-gone", vols / ".removing-half-gone-89abcdef")
    (vols / "real" / ".fill-1234").mkdir()  # a fill cut short
    m = await env.restart()
    assert sorted(p.name for p in vols.iterdir()) == ["done", "real"]
    assert env.mounts.table == {}  # unmounted before anything was deleted
    assert [v.name for v in m.volumes()] == ["done", "real"]
    assert m.data_dir("done").is_dir()
    assert sorted(p.name for p in (vols / "real").iterdir()) == ["_data", "volume.json"]
    assert (m.data_dir("real") / "f").read_text() == "kept"
    assert (await env.actions())[-1] == "destroy half-gone"
    m = await env.restart()  # and nothing more the next time
    assert [v.name for v in m.volumes()] == ["done", "real"]
    assert (await env.actions())[-1] == "destroy half-gone"


async def test_directories_no_record_names_are_adopted_never_deleted(env: Env, tmp_path: Path) -> None:
    await env.manager.create("labelled", labels={"a": "b"})
    (env.manager.data_dir("labelled") / "f").write_text("rows")
    await env.manager.create("fast", options={"type": "tmpfs", "device": "tmpfs", "o": "size=8m"})
    await env.manager.create("odd")
    (env.root / "volumes" / "odd" / "volume.json").write_text('{"driver": "local", "options": [1]}')
    vols = env.root / "volumes"
    orphan = vols / "orphan" / "_data"
    orphan.mkdir(parents=True)
    (orphan / "g").write_text("mine")
    env.mounts.table[str(orphan)] = LocalMount("", "/srv", MS_BIND, "")
    os.utime(vols / "orphan", ns=(5_000_000_000, 7_000_000_000))
    (vols / "no-data").mkdir()
    (vols / ".not-a-volume").mkdir()
    (vols / "stray-file").write_text("x")
    # The database is lost (a new pallet.db): every volume directory is adopted.
    await env.db.aclose()
    env.db = Database(tmp_path / "other.db")
    await env.db.start()
    await env.events.aclose()
    env.events = EventBus(env.db, RetentionPolicy(1000, 3600, 1 << 20))
    await env.events.start()
    m = await env.restart()
    assert [v.name for v in m.volumes()] == ["fast", "labelled", "no-data", "odd", "orphan"]
    assert m.get("orphan").created_ns == 7_000_000_000
    # What create wrote beside _data comes back: a tmpfs volume stays one.
    assert m.get("labelled").labels == {"a": "b"} and m.get("labelled").options == {}
    assert m.get("fast").options == {"type": "tmpfs", "device": "tmpfs", "o": "size=8m"}
    assert m.get("odd").options == {} and m.get("orphan").options == {}
    assert (m.data_dir("labelled") / "f").read_text() == "rows"
    assert (m.data_dir("orphan") / "g").read_text() == "mine"
    assert m.data_dir("no-data").is_dir()
    assert env.mounts.table == {}
    assert sorted(p.name for p in vols.iterdir()) == [
        ".not-a-volume", "fast", "labelled", "no-data", "odd", "orphan", "stray-file"]
    assert sorted(await env.actions()) == [
        "create fast", "create labelled", "create no-data", "create odd", "create orphan"]
    m = await env.restart()  # recorded now: adopted once
    assert len(await env.actions()) == 5


async def test_fill_only_an_unused_plain_volume(env: Env, tmp_path: Path) -> None:
    src = _image_tree(tmp_path)
    await env.manager.create("plain")
    await env.manager.create("fast", options={"type": "tmpfs"})
    assert await env.manager.fill("plain", src)
    assert (env.manager.data_dir("plain") / "file").read_text() == "hello"
    assert not await env.manager.fill("fast", src)
    await env.manager.create("busy")
    await env.manager.mount("busy", VolumeUse("c1", "/x"))
    assert not await env.manager.fill("busy", src)


async def test_a_long_fill_holds_up_its_own_volume_only(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _image_tree(tmp_path)
    await env.manager.create("big")
    await env.manager.create("other", options={"type": "tmpfs"})
    copying, go = threading.Event(), threading.Event()
    real_fill = copyup.fill

    def slow_fill(source: Path, data: Path, copied: object) -> bool:
        copying.set()
        assert go.wait(10)
        return real_fill(source, data)

    monkeypatch.setattr(copyup, "fill", slow_fill)
    filling = asyncio.create_task(env.manager.fill("big", src))
    big_mount = None
    try:
        assert await asyncio.to_thread(copying.wait, 10)
        # Another volume's start and exit go on while "big" is being copied into.
        await asyncio.wait_for(env.manager.mount("other", VolumeUse("c2", "/x")), 10)
        await asyncio.wait_for(env.manager.unmount("other", "c2"), 10)
        await asyncio.wait_for(env.manager.create("new"), 10)
        # "big"'s own mount waits for its fill.
        big_mount = asyncio.create_task(env.manager.mount("big", VolumeUse("c1", "/y")))
        await asyncio.sleep(0)
        assert not big_mount.done()
    finally:
        go.set()
        assert await filling
    assert big_mount is not None
    await big_mount
    assert (env.manager.data_dir("big") / "file").read_text() == "hello"


async def test_the_kernels_filesystems_are_read_once_at_start(env: Env) -> None:
    reads = []

    def filesystems() -> frozenset[str]:
        reads.append(1)
        return FILESYSTEMS

    m = VolumeManager(VolumeRecords(env.db), env.events, env.root, env.mounts,
                      filesystems=filesystems)
    await m.start()
    await m.create("fast", options={"type": "tmpfs", "o": "size=1m"})
    await m.mount("fast", VolumeUse("c1", "/x"))
    await m.unmount("fast", "c1")
    with pytest.raises(InvalidArgument, match="no such filesystem"):
        await m.create("odd", options={"type": "btrfs", "device": "/dev/x"})
    assert reads == [1]


async def test_a_create_and_a_start_read_the_disk_off_the_loop(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.current_thread()
    on_loop: list[str] = []
    real_exists, real_scandir = os.path.exists, os.scandir

    def exists(path: object) -> bool:
        if threading.current_thread() is loop_thread:
            on_loop.append(f"exists {path}")
        return real_exists(path)  # type: ignore[arg-type]

    def scandir(path: object) -> object:
        if threading.current_thread() is loop_thread:
            on_loop.append(f"scandir {path}")
        return real_scandir(path)  # type: ignore[call-overload]

    def may_have(path: str) -> bool:
        if threading.current_thread() is loop_thread:
            on_loop.append(f"may_have {path}")
        return False

    def find(ref: str) -> Container:
        raise NotFound(ref)

    await env.manager.create("v1")
    monkeypatch.setattr(os.path, "exists", exists)
    monkeypatch.setattr(os, "scandir", scandir)
    host = await resolve_mounts(
        HostConfig(binds=("v1:/data",), mount_requests=(
            MountSpec(MOUNT_BIND, "/srv", str(tmp_path)),)),
        [], find, env.manager, [], "c1")
    env.manager.release_pending("c1")
    c = Container(id="c1", name="web", image_id="i", config=Config(image="busybox"),
                  state=ContainerState(), created_ns=1, state_dir=str(tmp_path),
                  host_config=host)
    assert [m.type for m in host.mounts] == [MOUNT_VOLUME, MOUNT_BIND]
    mounts = ContainerMounts(c, env.manager, view=lambda: contextlib.nullcontext(tmp_path),
                             may_have=may_have)
    await mounts.mount()
    await mounts.release()
    assert on_loop == []


async def test_each_mount_says_how_it_was_asked_and_whether_the_image_has_a_volume_there(
    env: Env,
) -> None:
    def find(ref: str) -> Container:
        raise NotFound(ref)

    host = await resolve_mounts(
        HostConfig(binds=("named:/data", "/anon"), tmpfs=("/t",),
                   mount_requests=(MountSpec(MOUNT_VOLUME, "/m"),)),
        ["/data", "/img", "bad"], find, env.manager, [], "c1")
    env.manager.release_pending("c1")
    got = {m.target: (m.origin, m.anonymous, m.image_volume) for m in host.mounts}
    assert got == {
        "/data": ("v", False, True), "/anon": ("v", True, False), "/t": ("tmpfs", False, False),
        "/m": ("mount", True, False), "/img": ("image", True, True),
    }
