"""docker's -v, --mount, --tmpfs and --volumes-from spellings, and how they combine."""

from __future__ import annotations

from pathlib import Path

import pytest

from pallet.daemon.containers.model import MountSpec
from pallet.daemon.containers.mountspec import (
    check_mount,
    combine,
    inherited,
    parse_bind,
    parse_tmpfs,
    parse_volumes_from,
)
from pallet.v1.errors import InvalidArgument


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("/data", MountSpec("volume", "/data", anonymous=True)),
        ("/data:ro", MountSpec("volume", "/data", read_only=True, anonymous=True)),
        ("db:/var/lib/db", MountSpec("volume", "/var/lib/db", "db")),
        ("db:/var/lib/db:ro,nocopy", MountSpec("volume", "/var/lib/db", "db", True, no_copy=True)),
        ("/srv/site:/usr/share/html", MountSpec("bind", "/usr/share/html", "/srv/site", create_host_path=True)),
        ("/srv//site/:/x/../y:rw,rshared,Z",
         MountSpec("bind", "/y", "/srv/site", False, "rshared", create_host_path=True)),
    ],
)
def test_v_as_docker_reads_it(spec: str, expected: MountSpec) -> None:
    assert parse_bind(spec) == expected


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("", "container path is empty"),
        ("data", "not absolute"),
        ("db:data", "not absolute"),
        ("./src:/src", "invalid characters for a local volume name"),
        ("src/x:/src", "use an absolute path"),
        ("/a:/", "over the container's / itself"),
        ("db:/x:banana", "unknown mode 'banana'"),
        ("db:/x:ro,rw", "ro or rw once"),
        ("db:/x:rshared", "for host paths only"),
        ("/h:/x:nocopy", "nocopy is for volumes"),
        ("a:b:c:d", r"use \[SOURCE:\]"),
    ],
)
def test_bad_v_says_what_is_wrong(spec: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        parse_bind(spec)


def test_tmpfs_options() -> None:
    assert parse_tmpfs("/run") == MountSpec("tmpfs", "/run")
    m = parse_tmpfs("/run:size=64m,mode=1777,ro,exec")
    assert m.read_only and m.tmpfs_options == ("size=64m", "mode=1777", "exec")
    assert not parse_tmpfs("/run:ro,rw").read_only
    for bad, words in (("run", "not absolute"), ("/run:size", "unknown tmpfs option"),
                       ("/run:bind", "unknown tmpfs option"), ("/run:size=", "unknown tmpfs option")):
        with pytest.raises(InvalidArgument, match=words):
            parse_tmpfs(bad)


def test_structured_mounts_are_checked() -> None:
    assert check_mount(MountSpec("volume", "/data/")) == MountSpec("volume", "/data", anonymous=True)
    assert check_mount(MountSpec("bind", "/x", "/srv/", propagation="rslave")).source == "/srv"
    assert check_mount(MountSpec("tmpfs", "/t", tmpfs_options=("size=1m",))).type == "tmpfs"
    for m, words in (
        (MountSpec("nfs", "/x"), "unknown type 'nfs'"),
        (MountSpec("bind", "/x"), "needs a source"),
        (MountSpec("bind", "/x", "rel"), "absolute host path"),
        (MountSpec("volume", "/x", "bad/name"), "invalid characters"),
        (MountSpec("volume", "/x", "v1", propagation="shared"), "bind-propagation is for type=bind"),
        (MountSpec("bind", "/x", "/h", propagation="sideways"), "unknown bind-propagation"),
        (MountSpec("bind", "/x", "/h", no_copy=True), "volume-nocopy is for type=volume"),
        (MountSpec("volume", "/x", tmpfs_options=("size=1m",)), "tmpfs options are for type=tmpfs"),
        (MountSpec("tmpfs", "/x", "src"), "a tmpfs has no source"),
        (MountSpec("volume", "x"), "not absolute"),
    ):
        with pytest.raises(InvalidArgument, match=words):
            check_mount(m)


def test_volumes_from_modes() -> None:
    assert parse_volumes_from("db") == ("db", None)
    assert parse_volumes_from("db:ro") == ("db", True)
    assert parse_volumes_from("db:rw") == ("db", False)
    for bad in ("", ":ro", "db:rx"):
        with pytest.raises(InvalidArgument):
            parse_volumes_from(bad)
    theirs = [MountSpec("volume", "/d", "abc", anonymous=True), MountSpec("tmpfs", "/t"),
              MountSpec("bind", "/h", "/srv", create_host_path=True)]
    got = inherited(theirs, True)
    assert [(m.target, m.read_only, m.anonymous, m.create_host_path) for m in got] == [
        ("/d", True, False, False), ("/h", True, False, False)]


def test_combine_one_per_target_parents_first() -> None:
    explicit = [MountSpec("volume", "/a/b", "v2"), MountSpec("bind", "/a", "/srv")]
    others = [MountSpec("volume", "/a", "theirs"), MountSpec("volume", "/c", "c1")]
    got = combine(explicit, others, ["/c", "/img", "relative"])
    assert [(m.target, m.source) for m in got] == [
        ("/a", "/srv"), ("/c", "c1"), ("/img", ""), ("/a/b", "v2")]
    assert got[2].anonymous
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /a"):
        combine([MountSpec("volume", "/a", "x1"), MountSpec("tmpfs", "/a")], [], [])


def test_may_have_path_is_false_only_when_no_layer_can_have_it(tmp_path: Path) -> None:
    from pallet.daemon.containers.mounting import may_have_path

    upper, low = tmp_path / "upper", tmp_path / "low"
    (low / "var" / "lib").mkdir(parents=True)
    (low / "etc").mkdir()
    (low / "etc" / "file").write_text("x")
    upper.mkdir()
    (upper / "data").symlink_to("/var/lib")  # could lead anywhere: look
    layers = [str(upper), str(low)]
    assert may_have_path(layers, "/var/lib")
    assert not may_have_path(layers, "/var/lib/db")  # nothing there in any layer
    assert not may_have_path(layers, "/v0")
    assert not may_have_path(layers, "/etc/file/below")  # a file on the way
    assert may_have_path(layers, "/data/x")
    assert may_have_path(layers, "/a/../var")


@pytest.mark.parametrize("target", ["/proc", "/proc/", "/proc/sys", "/proc/1/root", "/x/../proc/self",
                                    "/dev", "/dev/"])
def test_targets_in_proc_and_dev_itself_are_refused(target: str) -> None:
    for parse in (lambda t: parse_bind(f"/srv:{t}"), lambda t: parse_tmpfs(t),
                  lambda t: check_mount(MountSpec("volume", t, "db"))):
        with pytest.raises(InvalidArgument, match="inside /proc|/dev itself"):
            parse(target)


def test_what_runc_lets_a_mount_cover_in_proc_and_below_dev_is_allowed() -> None:
    assert parse_bind("/var/lib/lxcfs/proc/meminfo:/proc/meminfo:ro").target == "/proc/meminfo"
    assert parse_bind("/srv/x:/proc/sys/kernel/ns_last_pid").target == "/proc/sys/kernel/ns_last_pid"
    assert parse_tmpfs("/dev/shm").target == "/dev/shm"
    assert parse_bind("/srv/x:/procfs").target == "/procfs"
    assert parse_bind("/srv/x:/devices").target == "/devices"


def test_tmpfs_takes_the_words_the_volumes_tmpfs_takes() -> None:
    m = parse_tmpfs("/t:size=1m,inode64,noswap,norelatime,nostrictatime")
    assert m.tmpfs_options == ("size=1m", "inode64", "noswap", "norelatime", "nostrictatime")
    for bad in ("/t:bind", "/t:rbind", "/t:remount", "/t:inode64=1"):
        with pytest.raises(InvalidArgument, match="unknown tmpfs option"):
            parse_tmpfs(bad)


def test_what_tmpfs_and_tmpfs_volumes_take_the_shim_takes_too() -> None:
    from pallet.daemon.containers.mounting import spec_mount
    from pallet.shim.api import files

    m = parse_tmpfs("/t:size=1m,huge=always,mpol=default,inode64,noswap,norelatime,exec")
    files._validate_mount(spec_mount(m, ""))  # the shim refused huge, mpol and inode64


def test_v_refuses_a_volume_name_no_directory_could_have() -> None:
    # One rule for volume names, the volume manager's: -v says so before anything is made.
    with pytest.raises(InvalidArgument, match="invalid characters for a local volume name"):
        parse_bind("v" * 256 + ":/data")
    assert parse_bind("v" * 255 + ":/data").source == "v" * 255
