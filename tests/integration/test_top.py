"""`top`: the host's ps, cut to the processes in the container's cgroup, with docker's
default (-ef), other ps options, and docker's refusals."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import container_cgroup_pids

pytestmark = pytest.mark.integration

TWO_SLEEPS = "sleep 1001 & exec sleep 1002"


def table(out: str) -> tuple[list[str], list[list[str]]]:
    lines = out.rstrip("\n").split("\n")
    return lines[0].split(), [line.split() for line in lines[1:]]


def test_top_lists_the_container_s_processes_and_no_others(palletd: Any) -> None:
    cid = palletd.cli_ok("run", "-d", "--name", "two", "busybox", "sh", "-c", TWO_SLEEPS).strip()
    palletd.cli_ok("run", "-d", "--name", "other", "busybox", "sleep", "1003")
    pids = palletd.wait_for(lambda: len(container_cgroup_pids(palletd, cid)) == 2 and
                            container_cgroup_pids(palletd, cid), 20, what="both sleeps")
    out = palletd.cli_ok("top", "two")
    titles, rows = table(out)
    assert titles == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert {int(r[1]) for r in rows} == pids
    commands = sorted(" ".join(r[7:]) for r in rows)
    assert commands == ["sleep 1001", "sleep 1002"]
    assert "1003" not in out and "palletd" not in out
    # docker's layout: tabwriter columns at least 20 wide.
    assert out.startswith("UID" + " " * 17 + "PID")

    # ps options, as docker passes them.
    titles, rows = table(palletd.cli_ok("top", "two", "-o", "pid,comm"))
    assert titles == ["PID", "COMMAND"]
    assert sorted(r[1] for r in rows) == ["sleep", "sleep"]
    titles, rows = table(palletd.cli_ok("top", "two", "aux"))
    assert titles[:3] == ["USER", "PID", "%CPU"] and len(rows) == 2
    # A paused container's processes are listed too.
    palletd.cli_ok("pause", "two")
    assert len(table(palletd.cli_ok("top", "two"))[1]) == 2
    palletd.cli_ok("unpause", "two")
    actions = palletd.cli_ok("events", "--since-seq", "0", "--until", "0s", "--filter",
                             f"container={cid}", "--format", "{{.Action}}")
    assert actions.split().count("top") == 4
    palletd.cli_ok("rm", "-f", "two", "other")


def test_top_errors(palletd: Any) -> None:
    palletd.cli_ok("run", "--name", "done", "busybox", "true")
    stopped = palletd.cli("top", "done")
    assert stopped.returncode == 1
    assert stopped.stderr == "Error: container done is not running\n"
    missing = palletd.cli("top", "nosuch")
    assert missing.returncode == 1 and "No such container: nosuch" in missing.stderr
    palletd.cli_ok("run", "-d", "--name", "up", "busybox", "sleep", "1000")
    headless = palletd.cli("top", "up", "-o", "pid", "--no-headers")
    assert headless.returncode == 1
    assert "option --no-headers is not allowed" in headless.stderr
    renamed = palletd.cli("top", "up", "-o", "user=PID")
    assert renamed.returncode == 1 and 'specifying "user=PID" is not allowed' in renamed.stderr
    bad = palletd.cli("top", "up", "--nosuchoption")
    assert bad.returncode == 1 and bad.stderr.startswith("Error: ps: ")
    palletd.cli_ok("rm", "-f", "done", "up")
