"""What containers mount, for real: named and anonymous volumes (copy-up from the image),
binds both ways, read-only (recursively), tmpfs, --volumes-from, an image's VOLUME, rm -v,
inspect's Mounts, and the volume manager's view of who uses what."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from conftest import mounts_under, wait_for

pytestmark = pytest.mark.integration


def run(palletd: Any, *args: str) -> str:
    return palletd.cli_ok("run", "--rm", *args, timeout=60)


def start_and_wait(palletd: Any, name: str) -> str:
    """Start a created (or exited) container, wait for it, and return this run's output."""
    before = len(palletd.cli_ok("logs", name).splitlines())
    palletd.cli_ok("start", name)
    palletd.cli_ok("wait", name, timeout=60)
    return "\n".join(palletd.cli_ok("logs", name).splitlines()[before:])


def volumes(palletd: Any) -> list[str]:
    return sorted(palletd.cli_ok("volume", "ls", "-q").split())


@pytest.fixture
def image_with_data(palletd: Any, tmp_path: Path, busybox_tar: Path) -> str:
    """busybox plus /data (owned 1234:5678, mode 0750, a file and a symlink) and a VOLUME
    at /data."""
    tar_path = tmp_path / "withdata.tar"
    with tarfile.open(busybox_tar) as base, tarfile.open(tar_path, "w") as out:
        for member in base.getmembers():
            out.addfile(member, base.extractfile(member) if member.isfile() else None)
        d = tarfile.TarInfo("data")
        d.type, d.mode, d.uid, d.gid = tarfile.DIRTYPE, 0o750, 1234, 5678
        out.addfile(d)
        f = tarfile.TarInfo("data/seed.txt")
        body = b"from the image\n"
        f.size, f.mode, f.uid, f.gid = len(body), 0o640, 1234, 5678
        import io
        out.addfile(f, io.BytesIO(body))
        link = tarfile.TarInfo("data/shadow")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
        out.addfile(link)
    palletd.import_image(tar_path, "withdata:latest", ('CMD ["sh"]', "VOLUME /data"))
    return "withdata:latest"


def test_a_named_volume_outlives_its_container(palletd: Any) -> None:
    palletd.cli_ok("run", "--name", "writer", "-v", "db:/var/lib/db", "busybox",
                   "sh", "-c", "echo rows > /var/lib/db/table", timeout=60)
    assert volumes(palletd) == ["db"]  # made by -v when missing
    result = palletd.cli("volume", "rm", "db")
    assert result.returncode != 0 and "in use by container writer" in result.stderr
    palletd.cli_ok("rm", "-v", "writer")  # -v takes anonymous volumes only
    assert volumes(palletd) == ["db"]
    assert run(palletd, "-v", "db:/x:ro", "busybox", "cat", "/x/table") == "rows\n"
    events = palletd.cli_ok("events", "--since-seq", "0", "--until", "0s", "--filter", "volume=db")
    acts = [line.split()[3] for line in events.splitlines()]
    assert acts[:3] == ["create", "mount", "unmount"] and acts.count("create") == 1
    assert mounts_under(palletd.root / "volumes") == []


def test_copy_up_fills_a_new_volume_with_owners_and_modes(palletd: Any, image_with_data: str) -> None:
    out = run(palletd, "-v", "filled:/data", image_with_data,
              "sh", "-c", "stat -c '%u:%g %a' /data /data/seed.txt; cat /data/seed.txt; readlink /data/shadow")
    assert out.splitlines() == ["1234:5678 750", "1234:5678 640", "from the image", "/etc/shadow"]
    data = palletd.root / "volumes" / "filled" / "_data"
    assert (data / "seed.txt").read_text() == "from the image\n"
    # A volume with content is not filled again; nocopy leaves a new one empty.
    (data / "seed.txt").write_text("changed\n")
    assert run(palletd, "-v", "filled:/data", image_with_data, "cat", "/data/seed.txt") == "changed\n"
    assert run(palletd, "-v", "bare:/data:nocopy", image_with_data, "ls", "-A", "/data") == ""


def test_the_images_volume_becomes_an_anonymous_volume_and_rm_v_removes_it(
    palletd: Any, image_with_data: str
) -> None:
    palletd.cli_ok("create", "--name", "holder", image_with_data, "true")
    doc = palletd.inspect("holder")
    [m] = doc["Mounts"]
    assert m["Type"] == "volume" and m["Destination"] == "/data" and m["RW"] is True
    assert len(m["Name"]) == 64 and Path(m["Source"]) == palletd.root / "volumes" / m["Name"] / "_data"
    assert volumes(palletd) == [m["Name"]]
    assert doc["Config"]["Volumes"] == {"/data": {}} and doc["HostConfig"]["Binds"] is None
    # Covered by a named volume, the image's VOLUME is still in Config.Volumes (docker's).
    palletd.cli_ok("create", "--name", "covered", "-v", "cover:/data", image_with_data, "true")
    covered = palletd.inspect("covered")
    assert covered["Config"]["Volumes"] == {"/data": {}}
    assert covered["HostConfig"]["Binds"] == ["cover:/data"]
    palletd.cli_ok("rm", "covered")
    palletd.cli_ok("volume", "rm", "cover")
    start_and_wait(palletd, "holder")
    assert (Path(m["Source"]) / "seed.txt").is_file()
    palletd.cli_ok("rm", "-v", "holder")
    assert volumes(palletd) == []
    # --rm takes its anonymous volumes along too, as docker does.
    run(palletd, "-v", "/scratch", "busybox", "true")
    assert volumes(palletd) == []


def test_binds_both_ways_and_read_only(palletd: Any, tmp_path: Path) -> None:
    host = tmp_path / "site"
    host.mkdir()
    (host / "index.html").write_text("hello from the host\n")
    out = run(palletd, "-v", f"{host}:/srv", "busybox",
              "sh", "-c", "cat /srv/index.html; echo made-inside > /srv/new")
    assert out == "hello from the host\n"
    assert (host / "new").read_text() == "made-inside\n"
    result = palletd.cli("run", "--rm", "-v", f"{host}:/srv:ro", "busybox",
                         "sh", "-c", "echo x > /srv/nope", timeout=60)
    assert result.returncode != 0 and "Read-only file system" in result.stderr
    assert not (host / "nope").exists()
    # -v makes a missing host directory; --mount refuses one, changing nothing.
    missing = tmp_path / "made-by-v"
    run(palletd, "-v", f"{missing}:/m", "busybox", "true")
    assert missing.is_dir()
    result = palletd.cli("create", "--mount", f"type=bind,source={tmp_path}/absent,target=/m", "busybox")
    assert result.returncode != 0 and "bind source path does not exist" in result.stderr
    assert not (tmp_path / "absent").exists()
    assert palletd.container_ids() == []


def test_a_read_only_bind_is_read_only_all_the_way_down(palletd: Any, tmp_path: Path) -> None:
    host = tmp_path / "outer"
    inner = host / "inner"
    inner.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(inner)], check=True)
    try:
        result = palletd.cli("run", "--rm", "--mount", f"type=bind,source={host},target=/o,readonly",
                             "busybox", "sh", "-c", "echo x > /o/inner/f", timeout=60)
        assert result.returncode != 0 and "Read-only file system" in result.stderr
        assert not (inner / "f").exists()
    finally:
        subprocess.run(["umount", "-l", str(inner)], check=False)


def test_tmpfs_is_empty_at_each_start_and_sized(palletd: Any) -> None:
    palletd.cli_ok("create", "--name", "tmp1", "--tmpfs", "/cache:size=2m,mode=1770", "busybox",
                   "sh", "-c", "ls -A /cache; df -k /cache | tail -1; stat -c %a /cache; touch /cache/x")
    first = start_and_wait(palletd, "tmp1").splitlines()
    second = start_and_wait(palletd, "tmp1").splitlines()
    for out in (first, second):  # nothing left from the run before
        assert out[0].split()[1] == "2048" and out[1] == "1770", out
    doc = palletd.inspect("tmp1")
    assert doc["HostConfig"]["Tmpfs"] == {"/cache": "size=2m,mode=1770"}
    assert doc["Mounts"] == []  # docker lists --tmpfs in HostConfig.Tmpfs only


def test_volumes_from_shares_the_volumes(palletd: Any) -> None:
    palletd.cli_ok("create", "--name", "data", "-v", "shared:/shared", "-v", "/anon", "busybox", "true")
    out = run(palletd, "--volumes-from", "data:ro", "busybox",
              "sh", "-c", "ls -d /shared /anon; touch /shared/x 2>&1 || true")
    assert "/shared" in out and "/anon" in out and "Read-only file system" in out
    result = palletd.cli("create", "--volumes-from", "ghost", "busybox")
    assert result.returncode != 0 and "no such container: ghost" in result.stderr


def test_inspect_shows_mounts_and_host_config(palletd: Any, tmp_path: Path) -> None:
    palletd.cli_ok("create", "--name", "insp", "-v", f"{tmp_path}:/h:ro", "-v", "named:/n",
                   "--mount", "type=volume,source=m2,target=/m2,volume-nocopy",
                   "--mount", "type=bind,src=/tmp,dst=/t,bind-propagation=rslave",
                   "-v", "/anon", "--tmpfs", "/scratch", "--mount", "type=tmpfs,dst=/mt", "busybox")
    doc = palletd.inspect("insp")
    # docker's places: -v with a source in Binds, a bare -v /path in Config.Volumes,
    # --tmpfs in HostConfig.Tmpfs only (not in Mounts), --mount type=tmpfs in Mounts.
    assert doc["HostConfig"]["Binds"] == [f"{tmp_path}:/h:ro", "named:/n"]
    assert doc["Config"]["Volumes"] == {"/anon": {}}
    assert doc["HostConfig"]["Tmpfs"] == {"/scratch": ""}
    assert sorted(m["Destination"] for m in doc["Mounts"]) == ["/anon", "/h", "/m2", "/mt", "/n", "/t"]
    assert doc["HostConfig"]["Mounts"] == [
        {"Type": "volume", "Source": "m2", "Target": "/m2", "VolumeOptions": {"NoCopy": True}},
        {"Type": "bind", "Source": "/tmp", "Target": "/t", "BindOptions": {"Propagation": "rslave"}},
        {"Type": "tmpfs", "Source": "", "Target": "/mt"},
    ]
    by_dest = {m["Destination"]: m for m in doc["Mounts"]}
    assert by_dest["/h"] == {"Type": "bind", "Source": str(tmp_path), "Destination": "/h",
                             "Mode": "ro", "RW": False, "Propagation": "rprivate"}
    assert by_dest["/t"]["Propagation"] == "rslave"
    assert by_dest["/n"]["Name"] == "named" and by_dest["/n"]["Driver"] == "local"
    assert palletd.cli_ok("volume", "ls", "--format", "{{.Links}}", "--filter", "name=named").strip() == "1"
    assert palletd.cli_ok("ps", "-a", "--format", "{{.LocalVolumes}}").strip() == "3"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["-v", "./rel:/x"], "use an absolute path"),
        (["-v", "db:"], "container path is empty"),
        (["-v", "db:rel"], "not absolute"),
        (["-v", "/a:/x", "-v", "b1:/x"], "Duplicate mount point: /x"),
        (["--mount", "type=nfs,target=/x"], "unknown type 'nfs'"),
        (["--mount", "type=volume,target=/x,colour=red"], "unexpected key 'colour'"),
        (["--tmpfs", "/t:size"], "unknown tmpfs option"),
        (["-v", "db:/x:wat"], "unknown mode 'wat'"),
    ],
)
def test_bad_mounts_are_refused_and_change_nothing(palletd: Any, args: list[str], words: str) -> None:
    result = palletd.cli("create", *args, "busybox")
    assert result.returncode != 0
    assert words in result.stderr
    assert palletd.container_ids() == [] and volumes(palletd) == []


def test_a_tmpfs_option_volume_is_mounted_while_used(palletd: Any) -> None:
    palletd.cli_ok("volume", "create", "-o", "type=tmpfs", "-o", "o=size=3m", "fast")
    palletd.cli_ok("run", "-d", "--name", "user1", "-v", "fast:/f", "busybox", "sleep", "1000")
    data = palletd.root / "volumes" / "fast" / "_data"
    assert os.path.ismount(data)
    assert palletd.cli_ok("exec", "user1", "sh", "-c", "df -k /f | tail -1").split()[1] == "3072"
    palletd.cli_ok("rm", "-f", "user1")
    assert not os.path.ismount(data)
    assert stat.S_ISDIR(os.stat(data).st_mode)


def test_volumes_through_a_kill_9_of_palletd(fresh_palletd: Any, tmp_path: Path) -> None:
    palletd = fresh_palletd
    palletd.cli_ok("volume", "create", "-o", "type=tmpfs", "-o", "o=size=4m", "fast")
    gate = tmp_path / "gate"
    gate.mkdir()
    # Both write while palletd is down; `short` exits then (its gate opens), `long` runs on.
    for name in ("long", "short"):
        palletd.cli_ok("run", "-d", "--name", name, "-v", f"data-{name}:/d", "-v", "fast:/f",
                       "-v", f"{gate}:/gate", "busybox", "sh", "-c",
                       f"while [ ! -e /gate/{name} ]; do sleep 0.1; done; echo {name} > /d/out; "
                       f"echo {name} > /f/{name}; [ {name} = long ] && exec sleep 1000; true")
    fast = palletd.root / "volumes" / "fast" / "_data"
    palletd.proc.send_signal(signal.SIGKILL)
    palletd.proc.wait(10)
    (gate / "short").touch()
    (gate / "long").touch()
    for name in ("long", "short"):
        data = palletd.root / "volumes" / f"data-{name}" / "_data" / "out"
        wait_for(lambda: data.exists() and data.read_text() == f"{name}\n", 20, what=f"{name} wrote")
    wait_for(lambda: (fast / "short").exists() and (fast / "long").exists(), 20, what="tmpfs writes")

    palletd.start()
    assert palletd.inspect("long")["State"]["Running"] is True
    assert palletd.inspect("short")["State"]["Status"] == "exited"
    # `long` still holds the tmpfs volume: mounted, its files there; `short`'s mount went,
    # announced once.
    assert os.path.ismount(fast) and (fast / "short").read_text() == "short\n"
    events = palletd.cli_ok("events", "--since-seq", "0", "--until", "0s", "--filter", "volume=fast")
    unmounted = [line for line in events.splitlines() if " unmount " in line]
    assert len(unmounted) == 1 and palletd.inspect("short")["Id"] in unmounted[0]
    palletd.cli_ok("rm", "-f", "long", "short")
    assert not os.path.ismount(fast)
    for name in ("long", "short"):
        out = palletd.root / "volumes" / f"data-{name}" / "_data" / "out"
        assert out.read_text() == f"{name}\n"


def test_kill_9_during_copy_up_and_rm_v(fresh_palletd: Any, tmp_path: Path, busybox_tar: Path) -> None:
    palletd = fresh_palletd
    with tarfile.open(busybox_tar) as base, tarfile.open(tmp_path / "img.tar", "w") as out:
        for member in base.getmembers():
            out.addfile(member, base.extractfile(member) if member.isfile() else None)
        import io
        f = tarfile.TarInfo("data/seed")
        f.size = 5
        out.addfile(f, io.BytesIO(b"seed\n"))
    palletd.import_image(tmp_path / "img.tar", "seeded:latest", ('CMD ["sh"]',))
    # Killed with the image's content copied aside, before it is renamed in: the volume is
    # empty afterwards (no half copy claims to be it), and the next start fills it whole.
    palletd.cli_ok("create", "--name", "filler", "-v", "seeded-vol:/data", "seeded:latest", "cat", "/data/seed")
    result = palletd.crash_during("volume-fill:copied", "start", "filler")
    assert result.returncode != 0
    vol = palletd.root / "volumes" / "seeded-vol"
    assert sorted(p.name for p in vol.iterdir()) == ["_data", "volume.json"]  # no .fill-* left
    assert list((vol / "_data").iterdir()) == []
    palletd.cli_ok("start", "filler")
    palletd.cli_ok("wait", "filler", timeout=60)
    assert palletd.cli_ok("logs", "filler") == "seed\n"

    # rm -v killed after the container's destroy, before its anonymous volume went: the
    # container is gone, the volume whole and unused (volume prune takes it).
    palletd.cli_ok("create", "--name", "anon", "-v", "/scratch", "busybox", "true")
    [anon] = [m["Name"] for m in palletd.inspect("anon")["Mounts"]]
    palletd.crash_during("remove:deleted", "rm", "-v", "anon")
    assert palletd.container_ids() == [palletd.inspect("filler")["Id"]]
    assert anon in volumes(palletd)
    assert anon in palletd.cli_ok("volume", "prune", "-f")
    assert anon not in volumes(palletd)


def test_a_container_sharing_a_volume_cannot_redirect_another_ones_mounts(
    palletd: Any, tmp_path: Path
) -> None:
    # `swapper` turns /srv/sub (in a shared volume) into a symlink to a host directory
    # and back, again and again; containers that mount something below /srv/sub keep
    # starting meanwhile. Resolving the mount point as a string, then making and mounting
    # it, follows the symlink onto the host between the two (runc's CVE-2021-30465): the
    # host's canary gets a `cache` directory. Opened inside the root by the kernel, the
    # mount point never leaves the container.
    canary = tmp_path / "canary"
    canary.mkdir()
    palletd.cli_ok("run", "-d", "--name", "swapper", "-v", "shared:/srv", "busybox", "sh", "-c",
                   f"while :; do rm -rf /srv/sub; ln -s {canary} /srv/sub; usleep 200; "
                   "rm -f /srv/sub; mkdir -p /srv/sub; usleep 200; done")
    for _ in range(40):
        palletd.cli("run", "--rm", "-v", "shared:/srv", "-v", "cache:/srv/sub/cache",
                    "busybox", "true", timeout=60)
    palletd.cli_ok("rm", "-f", "swapper")
    assert list(canary.iterdir()) == [], "a mount point was made on the host"
    assert mounts_under(canary) == []
