"""diff, commit and export of real containers through the CLI (issue 11).

diff reads a container's writable layer as it is (running or not); commit makes an image
of its image plus that layer, frozen while it is read; export of a running container reads
its own root, without the content of its volumes.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

CHANGES = (
    "echo new > /tmp/made; echo more >> /etc/passwd; rm /etc/group; "
    "rm -rf /home; mkdir /home; echo mine > /home/only; mkdir -p /added/deep"
)


def events(palletd: Any, kind: str = "container") -> list[str]:
    out = palletd.cli_ok("events", "--since-seq", "0", "--until", "0s", "--filter", f"type={kind}",
                         "--format", "{{.Action}}", timeout=30)
    return out.splitlines()


def blobs(palletd: Any) -> list[str]:
    found = palletd.root / "content" / "blobs" / "sha256"
    return sorted(p.name for p in found.iterdir())


def test_diff_lists_adds_changes_deletes_and_an_opaque_directory(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "--name", "d1", image, "sh", "-c", CHANGES)
    lines = palletd.cli_ok("diff", "d1").splitlines()
    assert lines == [
        "A /added",
        "A /added/deep",
        "C /etc",
        "D /etc/group",
        "C /etc/passwd",
        "C /home",  # deleted and made again (opaque): what it had is gone
        *[f"D /home/{name}" for name in sorted(_image_names(palletd, "/home"))],
        "A /home/only",
        "C /tmp",
        "A /tmp/made",
    ]
    # The runtime's mount points (/etc/hosts, resolv.conf, hostname) are not changes.
    assert not any(line.endswith(("/etc/hosts", "/etc/resolv.conf", "/etc/hostname")) for line in lines)
    assert palletd.mounts() == []  # diff mounts nothing


def _image_names(palletd: Any, path: str) -> list[str]:
    out = palletd.cli_ok("run", "--rm", "busybox:latest", "ls", "-A", path)
    return out.split()


def test_diff_of_a_running_container_and_of_an_unchanged_one(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "live", image, "sh", "-c", "echo up > /up; exec sleep 1000")
    palletd.wait_for(lambda: "A /up" in palletd.cli_ok("diff", "live"), 20, what="the running container's write")
    palletd.cli_ok("create", "--name", "idle", image, "true")
    assert palletd.cli_ok("diff", "idle") == ""
    missing = palletd.cli("diff", "nope")
    assert missing.returncode == 1 and "No such container: nope" in missing.stderr


def test_commit_round_trip_with_changes_save_and_load(palletd: Any, image: str, tmp_path: Path) -> None:
    palletd.cli_ok("run", "--name", "c1", "-e", "KEEP=1", "-v", "/data", image, "sh", "-c", CHANGES)
    before, image_events = len(events(palletd)), len(events(palletd, "image"))
    out = palletd.cli_ok(
        "commit", "-m", "my message", "-a", "Jane <jane@example.com>",
        "-c", 'CMD ["cat", "/tmp/made"]', "-c", "ENV MODE=committed", "-c", "LABEL team=infra",
        "c1", "committed/img:v1",
    )
    image_id = out.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    assert events(palletd)[before:] == ["commit"]  # a stopped container: nothing to freeze
    assert events(palletd, "image")[image_events:] == ["tag"]
    info = palletd.inspect("committed/img:v1")
    assert info["Id"] == image_id
    config = info["Config"]
    assert config["Cmd"] == ["cat", "/tmp/made"]
    assert "MODE=committed" in config["Env"] and "KEEP=1" in config["Env"]
    assert not any(e.startswith("HOSTNAME=") for e in config["Env"])
    assert config["Labels"]["team"] == "infra"
    assert "/data" in config["Volumes"]  # the container's anonymous volume, as docker keeps it
    assert (info["Comment"], info["Author"]) == ("my message", "Jane <jane@example.com>")
    base_layers = palletd.inspect("busybox:latest")["RootFS"]["Layers"]
    assert info["RootFS"]["Layers"][:-1] == base_layers and len(info["RootFS"]["Layers"]) == len(base_layers) + 1

    # The new image runs with the change, and what was deleted stays deleted.
    assert palletd.cli_ok("run", "--rm", "committed/img:v1") == "new\n"
    check = "test ! -e /etc/group && tail -n1 /etc/passwd && cat /home/only && ls -A /home"
    assert palletd.cli_ok("run", "--rm", "committed/img:v1", "sh", "-c", check) == "more\nmine\nonly\n"
    assert image_id[7:19] in palletd.cli_ok("images")
    history = palletd.cli_ok("history", "--no-trunc", "committed/img:v1").splitlines()
    assert image_id in history[1] and "my message" in history[1]

    # save and load it back whole.
    archive = tmp_path / "committed.tar"
    palletd.cli_ok("save", "-o", str(archive), "committed/img:v1")
    palletd.cli_ok("rmi", "committed/img:v1")
    assert palletd.cli_ok("load", "-i", str(archive)) == "Loaded image: committed/img:v1\n"
    assert palletd.inspect("committed/img:v1")["Id"] == image_id
    assert palletd.cli_ok("run", "--rm", "committed/img:v1", "sh", "-c", check) == "more\nmine\nonly\n"


def test_commit_of_an_unchanged_container_adds_no_layer(palletd: Any, image: str) -> None:
    palletd.cli_ok("create", "--name", "same", image, "true")
    image_id = palletd.cli_ok("commit", "same").strip()
    info = palletd.inspect(image_id)
    assert info["RootFS"]["Layers"] == palletd.inspect("busybox:latest")["RootFS"]["Layers"]
    assert info["RepoTags"] == []
    history = palletd.cli_ok("history", "-q", image_id).splitlines()
    assert history[0] == image_id[7:19]


def test_commit_of_a_running_container_freezes_it_and_it_runs_on(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "busy", image, "sh", "-c",
                   "echo ready > /ready; while true; do echo tick >> /ticks; sleep 0.05; done")
    palletd.wait_for(lambda: "A /ready" in palletd.cli_ok("diff", "busy"), 20, what="the container's first write")
    before = len(events(palletd))
    image_id = palletd.cli_ok("commit", "busy", "live/snap:1").strip()
    # Frozen while its layer was read, thawed after: docker's pause, commit, unpause.
    assert events(palletd)[before:] == ["pause", "commit", "unpause"]
    assert palletd.inspect("busy")["State"]["Running"] is True
    size = palletd.cli_ok("exec", "busy", "sh", "-c", "wc -l < /ticks").strip()
    palletd.wait_for(
        lambda: palletd.cli_ok("exec", "busy", "sh", "-c", "wc -l < /ticks").strip() != size,
        20, what="the container to go on writing after the commit",
    )
    assert palletd.cli_ok("run", "--rm", image_id, "cat", "/ready") == "ready\n"

    # --pause=false: no freeze, no pause events.
    before = len(events(palletd))
    palletd.cli_ok("commit", "--pause=false", "busy", "live/snap:2")
    assert events(palletd)[before:] == ["commit"]


def test_commit_refuses_bad_input_and_makes_nothing(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "target", image, "sleep", "1000")
    images_before = palletd.cli_ok("images", "-q", "--no-trunc")
    blobs_before, events_before = blobs(palletd), events(palletd)
    missing = palletd.cli("commit", "nope", "x/y:1")
    assert missing.returncode == 1 and "No such container: nope" in missing.stderr
    bad = palletd.cli("commit", "-c", "RUN echo no", "target", "x/y:1")
    assert bad.returncode == 1 and "unknown change instruction 'RUN'" in bad.stderr
    bad_env = palletd.cli("commit", "-c", "ENV", "target")
    assert bad_env.returncode == 1 and "ENV" in bad_env.stderr
    bad_ref = palletd.cli("commit", "target", "no spaces/in names:1")
    assert bad_ref.returncode == 1
    assert palletd.cli_ok("images", "-q", "--no-trunc") == images_before
    assert blobs(palletd) == blobs_before
    assert events(palletd) == events_before  # not even frozen
    assert palletd.inspect("target")["State"]["Running"] is True


def test_export_of_a_running_container_has_its_writes_and_no_volume_content(
    palletd: Any, image: str, tmp_path: Path
) -> None:
    palletd.cli_ok("volume", "create", "exported-vol")
    palletd.cli_ok("run", "-d", "--name", "exp-live", "-v", "exported-vol:/vol", image, "sh", "-c",
                   "echo secret > /vol/in-volume; echo mine > /tmp/written; rm /etc/group; exec sleep 1000")
    palletd.wait_for(lambda: "A /tmp/written" in palletd.cli_ok("diff", "exp-live"), 20, what="the write")
    out = tmp_path / "live.tar"
    palletd.cli_ok("export", "-o", str(out), "exp-live")
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        assert tar.extractfile("tmp/written").read() == b"mine\n"  # type: ignore[union-attr]
        vol = tar.getmember("vol")
    assert vol.isdir() and not any(n.startswith("vol/") for n in names)  # the mount point only
    assert "etc/group" not in names and "bin/busybox" in names
    assert not any(n.startswith(("proc/", "sys/", "dev/")) for n in names)
    # No second overlay was stacked on the live one (a stopped one's view is view-*).
    assert [m for m in palletd.mounts() if "/view-" in m or m.endswith("/rootfs")] == []
    palletd.cli_ok("rm", "-f", "exp-live")


def test_system_df_counts_local_volumes(palletd: Any, image: str) -> None:
    palletd.cli_ok("volume", "create", "used-vol")
    palletd.cli_ok("volume", "create", "idle-vol")
    palletd.cli_ok("run", "--name", "writer", "-v", "used-vol:/v", image, "sh", "-c", "head -c 5000 /dev/zero > /v/f")
    rows = {line.split("  ")[0]: line.split() for line in palletd.cli_ok("system", "df").splitlines()}
    volumes = rows["Local Volumes"]
    assert volumes[2:4] == ["2", "1"]  # TOTAL, ACTIVE (in use: by a stopped container too)
    assert volumes[4] == "5kB"


def test_commit_inspect_shows_container_config_for_docker_users(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "--name", "ep", "--entrypoint", "/bin/echo", "-w", "/tmp", "-u", "nobody",
                   "--expose", "8080", image, "hello")
    info = palletd.inspect(palletd.cli_ok("commit", "ep").strip())
    config = info["Config"]
    assert config["Entrypoint"] == ["/bin/echo"] and config["Cmd"] == ["hello"]
    assert config["WorkingDir"] == "/tmp" and config["User"] == "nobody"
    assert "8080/tcp" in config["ExposedPorts"]
    assert json.dumps(config)  # serialisable as docker's inspect
