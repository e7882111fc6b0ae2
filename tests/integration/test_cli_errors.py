"""Bad input through the CLI: a clear message naming the object, the right exit code, and
nothing half-made afterwards (checked with ps -a and images)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def nothing_made(palletd: Any) -> None:
    assert palletd.cli_ok("ps", "-a", "-q") == "", "a container was left behind"
    assert {i.id for i in palletd.images()} == {palletd.base_image_id}
    assert palletd.container_cgroups() == []
    containers_dir = palletd.root / "containers"
    assert not containers_dir.exists() or list(containers_dir.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [
        ("start", "nosuch"),
        ("stop", "nosuch"),
        ("kill", "nosuch"),
        ("restart", "nosuch"),
        ("rm", "nosuch"),
        ("rm", "-f", "nosuch"),
        ("wait", "nosuch"),
        ("logs", "nosuch"),
        ("exec", "nosuch", "true"),
        ("inspect", "--type", "container", "nosuch"),
    ],
    ids=lambda args: " ".join(args),
)
def test_unknown_container(palletd: Any, image: str, args: tuple[str, ...]) -> None:
    result = palletd.cli(*args)
    assert result.returncode == 1
    assert result.stderr == "Error: No such container: nosuch\n"
    assert result.stdout == ""


def test_unknown_object_for_inspect(palletd: Any, image: str) -> None:
    result = palletd.cli("inspect", "nosuch")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and "nosuch" in result.stderr
    assert result.stdout.strip() in ("", "[]")


def test_errors_on_one_argument_do_not_stop_the_others(palletd: Any, image: str) -> None:
    palletd.cli_ok("create", "--name", "real", image, "true")
    result = palletd.cli("rm", "nosuch", "real", "alsonot")
    assert result.returncode == 1
    assert result.stdout == "real\n"
    assert "No such container: nosuch" in result.stderr
    assert "No such container: alsonot" in result.stderr
    nothing_made(palletd)


@pytest.mark.parametrize("verb", ["run", "create"])
def test_unknown_image(palletd: Any, image: str, verb: str) -> None:
    result = palletd.cli(verb, "nosuchimage", "true")
    assert result.returncode == 125
    assert result.stderr.startswith("Error: ")
    assert "nosuchimage" in result.stderr
    assert "no such image" in result.stderr.lower()
    nothing_made(palletd)


@pytest.mark.parametrize(
    "args",
    [("image", "inspect", "nosuch"), ("rmi", "nosuch"), ("tag", "nosuch", "x:1"),
     ("inspect", "--type", "image", "nosuch")],
    ids=lambda args: " ".join(args),
)
def test_unknown_image_elsewhere(palletd: Any, image: str, args: tuple[str, ...]) -> None:
    result = palletd.cli(*args)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ")
    assert "No such image: nosuch" in result.stderr
    nothing_made(palletd)


def test_ambiguous_id_prefix(palletd: Any, image: str) -> None:
    by_first: dict[str, list[str]] = {}
    for _ in range(17):  # 16 hex digits: by the 17th, two ids share a first character
        cid = palletd.cli_ok("create", image, "true").strip()
        by_first.setdefault(cid[0], []).append(cid)
        if len(by_first[cid[0]]) == 2:
            break
    [(prefix, pair)] = [(k, v) for k, v in by_first.items() if len(v) == 2]
    count = len(palletd.cli_ok("ps", "-a", "-q").split())
    for verb in (("inspect",), ("rm", "-f"), ("start",)):
        result = palletd.cli(*verb, prefix)
        assert result.returncode == 1, verb
        assert result.stderr.startswith("Error: ")
        assert prefix in result.stderr
        assert re.search(r"ambiguous|more than one|multiple", result.stderr, re.I), result.stderr
    assert len(palletd.cli_ok("ps", "-a", "-q").split()) == count, "an ambiguous rm removed one"
    assert {palletd.inspect(cid)["State"]["Status"] for cid in pair} == {"created"}
    # A longer, unique prefix names one.
    assert palletd.inspect(pair[0][:12])["Id"] == pair[0]


def test_duplicate_name(palletd: Any, image: str) -> None:
    first = palletd.cli_ok("run", "-d", "--name", "dup", image, "sleep", "300").strip()
    for verb in ("create", "run"):
        result = palletd.cli(verb, "--name", "dup", image, "true")
        assert result.returncode == 125, verb
        assert result.stderr.startswith("Error: ")
        assert "dup" in result.stderr
        assert re.search(r"already (in use|exists)", result.stderr), result.stderr
    assert palletd.cli_ok("ps", "-a", "-q", "--no-trunc") == first + "\n"
    assert palletd.container_cgroups() == palletd.container_cgroups(first)


@pytest.mark.parametrize("name", ["bad name", "-dash", "slash/y", ".dot", "é"])
def test_invalid_name(palletd: Any, image: str, name: str) -> None:
    result = palletd.cli("create", "--name", name, image, "true")
    assert result.returncode == 125
    assert result.stderr.startswith("Error: ")
    assert "name" in result.stderr.lower()
    nothing_made(palletd)


@pytest.mark.parametrize("reference", ["Bad:Ref!", "UPPER:case", "a:b:c", "x@sha256:123"])
def test_invalid_reference(palletd: Any, image: str, reference: str) -> None:
    result = palletd.cli("run", reference)
    assert result.returncode == 125
    assert result.stderr.startswith("Error: ")
    assert reference in result.stderr
    assert "invalid reference" in result.stderr.lower()
    nothing_made(palletd)


def test_invalid_tag_target(palletd: Any, image: str) -> None:
    result = palletd.cli("tag", "busybox", "Bad:Ref!")
    assert result.returncode == 1
    assert "Bad:Ref!" in result.stderr
    assert "invalid reference" in result.stderr.lower()
    [img] = palletd.images()
    assert list(img.repo_tags) == ["busybox:latest"]


def test_rm_of_a_running_container_needs_force(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "alive", image, "sleep", "300")
    result = palletd.cli("rm", "alive")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ")
    assert "alive" in result.stderr
    assert "running" in result.stderr and "force" in result.stderr
    assert result.stdout == ""
    assert palletd.inspect("alive")["State"]["Running"] is True


def test_start_of_a_container_whose_image_was_removed(
    palletd: Any, image: str, busybox_tar: Path
) -> None:
    palletd.cli_ok("import", str(busybox_tar), "ephemeral:1")
    palletd.cli_ok("create", "--name", "orphan", "ephemeral:1", "echo", "hi")
    palletd.cli_ok("rmi", "-f", "ephemeral:1")
    result = palletd.cli("start", "orphan")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ")
    assert "orphan" in result.stderr and "ephemeral:1" in result.stderr, result.stderr
    state = palletd.inspect("orphan")["State"]
    assert state["Running"] is False and state["Pid"] == 0
    assert not any((d / "cgroup.procs").read_text().strip() for d in palletd.container_cgroups())
    assert palletd.cli_ok("rm", "orphan") == "orphan\n"


def test_kill_with_an_unknown_signal(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "sig", image, "sleep", "300")
    result = palletd.cli("kill", "-s", "NOSUCHSIG", "sig")
    assert result.returncode == 1
    assert "NOSUCHSIG" in result.stderr
    assert palletd.inspect("sig")["State"]["Running"] is True


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("ps", "--no-such-flag"), 2),
        (("stop", "-t", "soon", "x"), 2),
        (("create",), 2),
        (("nosuchverb",), 2),
        (("run", "--no-such-flag", "busybox"), 125),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else str(v),
)
def test_bad_usage(palletd: Any, image: str, args: tuple[str, ...], code: int) -> None:
    result = palletd.cli(*args)
    assert result.returncode == code
    assert "usage:" in result.stderr.lower()
    assert result.stdout == ""
    nothing_made(palletd)


def _pallet(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "pallet"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pallet.client.cli"]
    env = {k: v for k, v in os.environ.items() if k != "PALLET_HOST"}
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize(
    ("verb", "code"), [("version", 1), ("ps", 1), ("rm", 1), ("run", 125), ("create", 125)]
)
def test_no_daemon(tmp_path: Path, verb: str, code: int) -> None:
    host = f"unix://{tmp_path}/nobody.sock"
    args = (verb, "busybox") if verb in ("run", "create", "rm") else (verb,)
    result = _pallet("--host", host, *args)
    assert result.returncode == code
    assert f"Error: daemon unavailable: cannot connect to palletd at {host}: is it running?" in result.stderr


@pytest.mark.parametrize(
    ("flags", "named"),
    [(("-w", "relative/dir"), "relative/dir"), (("-e", "=nokey"), "=nokey")],
    ids=["relative workdir", "env without a key"],
)
def test_bad_run_flags(palletd: Any, image: str, flags: tuple[str, ...], named: str) -> None:
    result = palletd.cli("run", "--rm", *flags, image, "true")
    assert result.returncode == 125
    assert result.stderr.startswith("Error: ")
    assert named in result.stderr
    nothing_made(palletd)
