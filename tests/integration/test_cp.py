"""`pallet cp` for real: every direction on running and stopped containers, through a
named volume and a bind, owners and modes with and without -a, symlinks with and without
-L, `-` both ways, a 100 MB file, docker's trailing-slash rules, bad input, a full disk,
a kill -9 of palletd mid-copy, and the escape attacks (CVE-2018-15664's swap included):
each escape test has a canary directory on the host that a successful escape would write
into, and checks it stays empty."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import parent_of, pids_mentioning

pytestmark = pytest.mark.integration


def run_d(palletd: Any, name: str, *args: str) -> None:
    palletd.cli_ok("run", "-d", "--name", name, *args, "busybox", "sleep", "300")


def sh(palletd: Any, name: str, script: str) -> str:
    return str(palletd.cli_ok("exec", name, "sh", "-c", script))


def fails(palletd: Any, *args: str, **kwargs: Any) -> str:
    result = palletd.cli(*args, **kwargs)
    assert result.returncode != 0, f"`pallet {' '.join(args)}` succeeded: {result.stdout!r}"
    return str(result.stderr)


def tar_bytes(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    return info


def read_back(palletd: Any, name: str, path: str, tmp_path: Path) -> bytes:
    """A file's bytes as cp brings them out (the way that works for stopped ones too)."""
    out = tmp_path / f"back-{time.monotonic_ns()}"
    palletd.cli_ok("cp", f"{name}:{path}", str(out))
    return out.read_bytes()


# ---- directions -------------------------------------------------------------------------------


@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
def test_files_and_trees_both_ways(palletd: Any, tmp_path: Path, running: bool) -> None:
    if running:
        run_d(palletd, "box")
    else:
        palletd.cli_ok("create", "--name", "box", "busybox", "sleep", "300")
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a\n")
    (src / "sub" / "b.txt").write_text("b\n")
    os.symlink("a.txt", src / "rel")
    os.link(src / "a.txt", src / "hard")
    palletd.cli_ok("cp", str(src), "box:/tmp/")
    palletd.cli_ok("cp", str(src / "a.txt"), "box:/tmp/renamed.txt")
    out = tmp_path / "out"
    palletd.cli_ok("cp", "box:/tmp/tree", str(out))  # a new name: the contents go there
    assert (out / "a.txt").read_text() == "a\n" and (out / "sub" / "b.txt").read_text() == "b\n"
    assert os.readlink(out / "rel") == "a.txt"
    assert os.stat(out / "hard").st_ino == os.stat(out / "a.txt").st_ino
    assert read_back(palletd, "box", "/tmp/renamed.txt", tmp_path) == b"a\n"
    if not running:  # what cp put in a created container is there when it runs
        palletd.cli_ok("start", "box")
    assert sh(palletd, "box", "cat /tmp/tree/sub/b.txt /tmp/renamed.txt") == "b\na\n"
    # No cp helper outlives its copy (a stopped container's mounts die with it).
    assert not [p for p in pids_mentioning("containers.cphelper") if parent_of(p) == palletd.pid]


def test_through_a_named_volume_and_a_bind(palletd: Any, tmp_path: Path) -> None:
    bind = tmp_path / "bind"
    bind.mkdir()
    run_d(palletd, "vols", "-v", "cpdata:/data", "-v", f"{bind}:/bind")
    f = tmp_path / "f.txt"
    f.write_text("to the volume\n")
    palletd.cli_ok("cp", str(f), "vols:/data/")
    palletd.cli_ok("cp", str(f), "vols:/bind/live.txt")
    volume_dir = palletd.root / "volumes" / "cpdata" / "_data"
    assert (volume_dir / "f.txt").read_text() == "to the volume\n"
    assert (bind / "live.txt").read_text() == "to the volume\n"
    palletd.cli_ok("stop", "-t", "0", "vols")
    # Stopped: the helper binds them where the container would see them.
    palletd.cli_ok("cp", str(f), "vols:/data/stopped.txt")
    palletd.cli_ok("cp", str(f), "vols:/bind/stopped.txt")
    assert (volume_dir / "stopped.txt").exists() and (bind / "stopped.txt").exists()
    (bind / "host.txt").write_text("from the host\n")
    assert read_back(palletd, "vols", "/bind/host.txt", tmp_path) == b"from the host\n"
    upper = palletd.root / "containers" / palletd.inspect("vols")["Id"] / "upper"
    assert upper.is_dir() and not (upper / "data" / "stopped.txt").exists()  # not the layer's


def test_a_read_only_volume_is_refused(palletd: Any, tmp_path: Path) -> None:
    run_d(palletd, "ro", "-v", "rodata:/ro:ro")
    f = tmp_path / "f"
    f.write_text("x")
    assert "read-only" in fails(palletd, "cp", str(f), "ro:/ro/")


def test_owners_and_modes_with_and_without_archive(palletd: Any, tmp_path: Path) -> None:
    run_d(palletd, "own")
    f = tmp_path / "owned"
    f.write_text("x")
    os.chown(f, 1234, 5678)
    os.chmod(f, 0o4751)
    palletd.cli_ok("cp", str(f), "own:/tmp/plain")
    palletd.cli_ok("cp", "-a", str(f), "own:/tmp/kept")
    assert sh(palletd, "own", "stat -c '%u:%g %a' /tmp/plain /tmp/kept").split("\n")[:2] == [
        "0:0 4751", "1234:5678 4751"]
    sh(palletd, "own", "echo y > /tmp/theirs; chown 42:43 /tmp/theirs; chmod 640 /tmp/theirs")
    palletd.cli_ok("cp", "own:/tmp/theirs", str(tmp_path / "mine"))
    palletd.cli_ok("cp", "-a", "own:/tmp/theirs", str(tmp_path / "kept"))
    mine, kept = os.stat(tmp_path / "mine"), os.stat(tmp_path / "kept")
    assert (mine.st_uid, mine.st_gid) == (os.getuid(), os.getgid())
    assert (kept.st_uid, kept.st_gid) == (42, 43)
    assert stat.S_IMODE(mine.st_mode) == stat.S_IMODE(kept.st_mode) == 0o640


def test_symlinks_with_and_without_follow(palletd: Any, tmp_path: Path) -> None:
    run_d(palletd, "links")
    sh(palletd, "links", "echo inside > /tmp/target; ln -s /tmp/target /tmp/abs; "
       "ln -s /etc/passwd /tmp/passwd; mkdir /tmp/dir; ln -s /tmp/dir /tmp/dirlink; echo d > /tmp/dir/f")
    palletd.cli_ok("cp", "links:/tmp/abs", str(tmp_path / "abs"))
    assert os.readlink(tmp_path / "abs") == "/tmp/target"  # the link, not followed
    palletd.cli_ok("cp", "-L", "links:/tmp/abs", str(tmp_path / "followed"))
    assert (tmp_path / "followed").read_text() == "inside\n"
    palletd.cli_ok("cp", "-L", "links:/tmp/passwd", str(tmp_path / "passwd"))
    # The container's /etc/passwd (the test image's), never the host's.
    assert (tmp_path / "passwd").read_text().startswith("root:x:0:0:root:/root:/bin/sh")
    assert "app:x:1000" in (tmp_path / "passwd").read_text()
    palletd.cli_ok("cp", "-L", "links:/tmp/dirlink", str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "f").read_text() == "d\n"
    # Into a container path that is a symlink to a directory: lands in the directory.
    f = tmp_path / "into"
    f.write_text("via link\n")
    palletd.cli_ok("cp", str(f), "links:/tmp/dirlink")
    assert sh(palletd, "links", "cat /tmp/dir/into") == "via link\n"


def test_dash_is_a_tar_on_stdin_and_stdout(palletd: Any, tmp_path: Path) -> None:
    run_d(palletd, "dash")
    out = palletd.cli("cp", "dash:/etc/passwd", "-", text=False)
    assert out.returncode == 0, out.stderr
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        assert tar.getnames() == ["passwd"]
        assert b"app:x:1000" in tar.extractfile("passwd").read()  # type: ignore[union-attr]
    data = tar_bytes((entry("piped/one.txt"), b"one\n"))
    palletd.cli_ok("cp", "-", "dash:/tmp", input=data)
    assert sh(palletd, "dash", "cat /tmp/piped/one.txt") == "one\n"
    assert "must be a directory" in fails(palletd, "cp", "-", "dash:/etc/passwd", input=data)
    # docker's events: one archive-path per copy out, one extract-to-dir per copy in.
    events = palletd.cli_ok("events", "--since-seq", "0", "--until", "0s", "--filter", "container=dash")
    actions = [line.split()[3] for line in events.splitlines()]
    assert actions.count("archive-path") == 1 and actions.count("extract-to-dir") == 1, actions


def test_a_100_mb_file_in_and_out(palletd: Any, tmp_path: Path) -> None:
    run_d(palletd, "big")
    big = tmp_path / "big.bin"
    block = hashlib.sha256(b"pallet").digest() * (1 << 15)  # 1 MiB
    with open(big, "wb") as f:
        for i in range(100):
            f.write(block[i:] + block[:i])
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    palletd.cli_ok("cp", str(big), "big:/tmp/big.bin", timeout=300)
    assert sh(palletd, "big", "sha256sum /tmp/big.bin").split()[0] == digest
    palletd.cli_ok("cp", "big:/tmp/big.bin", str(tmp_path / "back.bin"), timeout=300)
    assert hashlib.sha256((tmp_path / "back.bin").read_bytes()).hexdigest() == digest


# ---- docker's rules ---------------------------------------------------------------------------


def test_trailing_slash_rules_into_a_container(palletd: Any, tmp_path: Path) -> None:
    run_d(palletd, "rules")
    sh(palletd, "rules", "mkdir -p /t/dir /t/existing; echo old > /t/file")
    f = tmp_path / "f.txt"
    f.write_text("new\n")
    d = tmp_path / "d"
    (d / "inner").mkdir(parents=True)
    (d / "x").write_text("x\n")
    palletd.cli_ok("cp", str(f), "rules:/t/newname")  # file -> missing: that name
    palletd.cli_ok("cp", str(f), "rules:/t/file")  # file -> file: overwritten
    palletd.cli_ok("cp", str(f), "rules:/t/dir")  # file -> dir: into it
    assert "no such directory" in fails(palletd, "cp", str(f), "rules:/t/missing/")
    palletd.cli_ok("cp", str(d), "rules:/t/newdir")  # dir -> missing: the contents
    palletd.cli_ok("cp", str(d), "rules:/t/existing")  # dir -> dir: the dir into it
    palletd.cli_ok("cp", f"{d}/.", "rules:/t/dir")  # dir/. -> dir: the contents into it
    assert "cannot copy a directory to a file" in fails(palletd, "cp", str(d), "rules:/t/file")
    listing = sh(palletd, "rules", "cd /t && find . | sort; cat file newname dir/f.txt")
    assert listing.split("\n") == [
        ".", "./dir", "./dir/f.txt", "./dir/inner", "./dir/x", "./existing", "./existing/d",
        "./existing/d/inner", "./existing/d/x", "./file", "./newdir", "./newdir/inner",
        "./newdir/x", "./newname", "new", "new", "new", "",
    ]
    assert "not a directory" in fails(palletd, "cp", f"{f}/", "rules:/t/")


def test_trailing_slash_rules_out_of_a_container(palletd: Any, tmp_path: Path) -> None:
    run_d(palletd, "out")
    sh(palletd, "out", "mkdir -p /s/d/in; echo f > /s/f; echo x > /s/d/x")
    dest = tmp_path / "dest"
    (dest / "dir").mkdir(parents=True)
    (dest / "file").write_text("old\n")
    palletd.cli_ok("cp", "out:/s/f", str(dest / "newname"))
    palletd.cli_ok("cp", "out:/s/f", str(dest / "file"))
    palletd.cli_ok("cp", "out:/s/f", str(dest / "dir"))
    assert "no such directory" in fails(palletd, "cp", "out:/s/f", f"{dest}/missing/")
    palletd.cli_ok("cp", "out:/s/d", str(dest / "newdir"))
    palletd.cli_ok("cp", "out:/s/d", str(dest / "dir"))
    palletd.cli_ok("cp", "out:/s/d/.", str(dest / "dir"))
    assert "cannot copy a directory to a file" in fails(palletd, "cp", "out:/s/d", str(dest / "file"))
    assert "not a directory" in fails(palletd, "cp", "out:/s/f/", str(dest))
    found = sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))
    assert found == ["dir", "dir/d", "dir/d/in", "dir/d/x", "dir/f", "dir/in", "dir/x", "file",
                     "newdir", "newdir/in", "newdir/x", "newname"]
    assert (dest / "file").read_text() == "f\n"
    assert "directory" in fails(palletd, "cp", "out:/s/f", str(tmp_path / "no" / "such" / "dir"))


# ---- bad input --------------------------------------------------------------------------------


def test_bad_input_is_a_clear_error_and_changes_nothing(palletd: Any, tmp_path: Path) -> None:
    import grpc

    import pallet.v1.containers_pb2 as pb

    run_d(palletd, "bad")
    f = tmp_path / "f"
    f.write_text("x")
    assert "No such container: nope" in fails(palletd, "cp", str(f), "nope:/tmp")
    assert "Could not find the file /missing in container bad" in fails(palletd, "cp", "bad:/missing", str(tmp_path / "m"))
    assert "Could not find the file /no/such in container bad" in fails(palletd, "cp", str(f), "bad:/no/such/file")
    assert "must specify at least one container source" in fails(palletd, "cp", str(f), str(tmp_path / "g"))
    assert "between containers is not supported" in fails(palletd, "cp", "bad:/a", "bad:/b")
    assert fails(palletd, "cp", str(f)).strip()  # one argument: usage
    with pytest.raises(grpc.RpcError) as missing:
        palletd._stubs().containers.StatPath(pb.StatPathRequest(container="bad", path="/missing"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as not_dir:
        palletd._stubs().containers.PutArchive(iter([
            pb.PutArchiveRequest(header=pb.PutArchiveHeader(container="bad", path="/etc/passwd")),
        ]))
    assert not_dir.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "extraction point is not a directory" in str(not_dir.value.details())
    # An upload without its end message is cut short: nothing of it is kept.
    data = tar_bytes((entry("cut.txt"), b"partial"))
    with pytest.raises(grpc.RpcError) as cut:
        palletd._stubs().containers.PutArchive(iter([
            pb.PutArchiveRequest(header=pb.PutArchiveHeader(container="bad", path="/tmp")),
            pb.PutArchiveRequest(chunk=data),
        ]))
    assert cut.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert sh(palletd, "bad", "ls -a /tmp") == ".\n..\n"


def test_a_full_disk_is_resource_exhausted_and_leaves_nothing(palletd: Any, tmp_path: Path) -> None:
    palletd.cli_ok("run", "-d", "--name", "full", "--tmpfs", "/small:size=1m", "busybox", "sleep", "300")
    d = tmp_path / "d"
    d.mkdir()
    (d / "first.txt").write_text("fits\n")
    (d / "zbig.bin").write_bytes(b"\1" * (3 << 20))
    err = fails(palletd, "cp", str(d), "full:/small/")
    assert "no space left" in err
    assert sh(palletd, "full", "ls -a /small") == ".\n..\n"


# ---- escapes ----------------------------------------------------------------------------------


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A host directory an escape would write into (its absolute path is what the
    container's symlinks name)."""
    path = tmp_path / "canary"
    path.mkdir()
    return path


def test_symlinks_in_the_container_are_resolved_inside_it(palletd: Any, tmp_path: Path, canary: Path) -> None:
    run_d(palletd, "esc")
    sh(palletd, "esc", f"mkdir -p {canary}; ln -s {canary} /abs; ln -s ../../../../../../..{canary} /chain; "
       f"mkdir -p /deep/a/b; ln -s ../../../../../../../.. /deep/a/b/up")
    f = tmp_path / "payload"
    f.write_text("payload\n")
    palletd.cli_ok("cp", str(f), "esc:/abs/")
    palletd.cli_ok("cp", str(f), "esc:/chain/chained")
    palletd.cli_ok("cp", str(f), f"esc:/deep/a/b/up{canary}/up")
    assert list(canary.iterdir()) == []
    assert sh(palletd, "esc", f"ls {canary}").split() == ["chained", "payload", "up"]
    palletd.cli_ok("stop", "-t", "0", "esc")  # the same through the stopped container's view
    palletd.cli_ok("cp", str(f), "esc:/abs/stopped")
    assert list(canary.iterdir()) == []
    assert b"payload" in read_back(palletd, "esc", f"{canary}/stopped", tmp_path)


def test_cp_out_never_follows_a_container_symlink_on_the_host(palletd: Any, tmp_path: Path, canary: Path) -> None:
    run_d(palletd, "outesc")
    sh(palletd, "outesc", f"mkdir /t; ln -s {canary} /t/link; ln -s ../../../../../..{canary} /t/rel")
    dest = tmp_path / "dest"
    dest.mkdir()
    palletd.cli_ok("cp", "outesc:/t", str(dest))
    assert os.readlink(dest / "t" / "link") == str(canary)
    assert list(canary.iterdir()) == []
    # A hostile archive (as a bad daemon could send) cannot write through them either.
    os.symlink(str(canary), dest / "planted")
    result = palletd.cli("cp", "outesc:/t/.", str(dest))
    assert result.returncode == 0, result.stderr
    assert list(canary.iterdir()) == []


def test_a_container_swapping_a_directory_for_a_symlink_never_reaches_the_host(
    palletd: Any, tmp_path: Path, canary: Path
) -> None:
    # CVE-2018-15664: while cp runs, /w flips between a real directory (holding the
    # canary's path) and a symlink to "/"; resolved on the host, "/w/<canary>" is the
    # host's canary.
    target = f"/w{canary}"
    palletd.cli_ok(
        "run", "-d", "--name", "swap", "busybox", "sh", "-c",
        # Each state is held a little (usleep), so copies meet both and the flips between.
        f"mkdir -p {canary}; while :; do rm -rf /w; mkdir -p {target}; usleep 3000; rm -rf /w; "
        "ln -s / /w; usleep 3000; done",
    )
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(50):
        (tree / f"f{i}").write_text("x\n")
    copies = 0
    for _ in range(30):
        result = palletd.cli("cp", f"{tree}/.", f"swap:{target}/")
        copies += result.returncode == 0
        palletd.cli("cp", f"swap:{target}", str(tmp_path / "out"))
    assert list(canary.iterdir()) == []
    assert copies  # some copies went through (into the container's own paths)


def test_hostile_tars_stay_inside_the_container(palletd: Any, canary: Path) -> None:
    run_d(palletd, "hostile")
    sh(palletd, "hostile", "mkdir /in")
    dangling = tar_bytes((entry("l", tarfile.SYMTYPE, str(canary)), None), (entry("l/through"), b"x"))
    fails(palletd, "cp", "-", "hostile:/in", input=dangling)  # no such directory in there
    assert sh(palletd, "hostile", "ls -a /in") == ".\n..\n"  # the link it made is gone again
    sh(palletd, "hostile", f"mkdir -p {canary}")
    climb = tar_bytes((entry(f"../../../../../../..{canary}/climbed"), b"x"))
    assert "climbs out" in fails(palletd, "cp", "-", "hostile:/in", input=climb)
    absolute = tar_bytes((entry(f"{canary}/absolute"), b"x"))
    palletd.cli_ok("cp", "-", "hostile:/in", input=absolute)
    through = tar_bytes((entry("l", tarfile.SYMTYPE, str(canary)), None),
                        (entry("l/through"), b"x"))
    palletd.cli_ok("cp", "-", "hostile:/in", input=through)
    root_link = tar_bytes((entry("r", tarfile.SYMTYPE, "/"), None),
                          (entry(f"r{canary}/rooted"), b"x"))
    palletd.cli_ok("cp", "-", "hostile:/in", input=root_link)
    hard = tar_bytes((entry("h", tarfile.LNKTYPE, f"../../../../..{canary}/x"), None))
    assert "outside the extraction point" in fails(palletd, "cp", "-", "hostile:/in", input=hard)
    dev = entry("null", tarfile.CHRTYPE)
    dev.devmajor, dev.devminor = 1, 3
    assert "device node" in fails(palletd, "cp", "-", "hostile:/in", input=tar_bytes((dev, None)))
    assert list(canary.iterdir()) == []
    inside = sh(palletd, "hostile", f"ls /in{canary} {canary}").split()
    assert "absolute" in inside and "through" in inside and "rooted" in inside


# ---- crashes ----------------------------------------------------------------------------------


def test_kill_9_of_palletd_mid_copy_leaves_a_working_container(fresh_palletd: Any, tmp_path: Path) -> None:
    d = fresh_palletd
    run_d(d, "crash")
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(64 << 20)
    result = d.crash_during("cp:extracting", "cp", str(big), "crash:/tmp/big.bin")
    assert result.returncode != 0
    # The helper hears of palletd's end (SIGTERM) and removes what it had made.
    d.wait_for(lambda: sh(d, "crash", "ls -a /tmp") == ".\n..\n", 20, what="the partial copy removed")
    assert sh(d, "crash", "echo alive") == "alive\n"
    d.cli_ok("cp", str(tmp_path / "big.bin"), "crash:/tmp/again.bin", timeout=120)
    d.cli_ok("rm", "-f", "crash")


def test_kill_9_of_the_helper_mid_file_leaves_no_half_written_file(palletd: Any) -> None:
    run_d(palletd, "halfway")
    header = tarfile.TarInfo("big.bin")
    header.size, header.mode = 16 << 20, 0o644
    writer = palletd.cli_popen("cp", "-", "halfway:/tmp", stdin=subprocess.PIPE)
    writer.stdin.write(header.tobuf(tarfile.PAX_FORMAT) + b"\1" * (1 << 20))
    writer.stdin.flush()

    def writing_helper() -> int:
        for pid in pids_mentioning("containers.cphelper"):
            if parent_of(pid) != palletd.pid:
                continue
            try:
                links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            except OSError:
                continue
            if any("/tmp/" in link and ("#" in link or ".pallet-cp-" in link) for link in links):
                return pid
        return 0

    helper = palletd.wait_for(writing_helper, 30, what="the cp helper writing the file")
    os.kill(helper, 9)
    writer.communicate(timeout=60)
    palletd.popens.remove(writer)  # ended here: the teardown has nothing to reap
    assert writer.returncode != 0
    assert sh(palletd, "halfway", "ls -a /tmp") == ".\n..\n"  # neither big.bin nor a part of it
    assert sh(palletd, "halfway", "echo alive") == "alive\n"
