"""`stop --signal` / `restart --signal`, `rename` and `--init` against real containers."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

# Exits with a code that says which signal its trap heard.
TRAPPER = (
    "trap 'echo got INT; exit 3' INT; trap 'echo got USR1; exit 5' USR1; "
    "trap 'echo got TERM; exit 4' TERM; echo ready; while :; do sleep 0.1; done"
)


def _wait_logged(palletd: Any, name: str, text: str, count: int = 1) -> None:
    palletd.wait_for(
        lambda: palletd.cli("logs", name).stdout.count(text) >= count, 15,
        what=f"{name} to log {text!r}",
    )


def test_stop_and_restart_with_a_signal_reach_the_containers_trap(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "trapper", image, "sh", "-c", TRAPPER)
    _wait_logged(palletd, "trapper", "ready")
    assert palletd.cli_ok("stop", "--signal", "INT", "-t", "20", "trapper") == "trapper\n"
    assert palletd.cli_ok("wait", "trapper") == "3\n"
    assert palletd.cli_ok("logs", "trapper") == "ready\ngot INT\n"

    palletd.cli_ok("start", "trapper")
    _wait_logged(palletd, "trapper", "ready", 2)
    pid = palletd.inspect("trapper")["State"]["Pid"]
    # A bad signal: refused, exit 1, and the container runs on untouched.
    bad = palletd.cli("stop", "-s", "NOPE", "trapper")
    assert bad.returncode == 1
    assert bad.stderr == "Error: invalid signal NOPE: use a name such as SIGTERM or a number\n"
    bad = palletd.cli("restart", "--signal", "0", "trapper")
    assert bad.returncode == 1 and "invalid signal 0" in bad.stderr
    state = palletd.inspect("trapper")["State"]
    assert state["Running"] and state["Pid"] == pid

    assert palletd.cli_ok("restart", "-s", "SIGUSR1", "-t", "20", "trapper") == "trapper\n"
    _wait_logged(palletd, "trapper", "ready", 3)
    assert "got USR1\n" in palletd.cli_ok("logs", "trapper")
    state = palletd.inspect("trapper")["State"]
    assert state["Running"] and state["Pid"] != pid
    # Without --signal: the container's stop signal, SIGTERM.
    palletd.cli_ok("stop", "-t", "20", "trapper")
    assert palletd.cli_ok("wait", "trapper") == "4\n"


# ---- rename ------------------------------------------------------------------------------


def _lookup(palletd: Any, container: str, name: str) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = palletd.cli(
        "exec", container, "nslookup", name, timeout=30)
    return result


def _resolves(palletd: Any, container: str, name: str, address: str) -> None:
    """`name` comes to resolve to `address` from `container` (the resolver reloads its
    records on a SIGHUP, a moment after the rename returned)."""
    palletd.wait_for(lambda: address in _lookup(palletd, container, name).stdout, 15,
                     what=f"{name} to resolve to {address}")


def _unknown(palletd: Any, container: str, name: str) -> None:
    palletd.wait_for(lambda: _lookup(palletd, container, name).returncode != 0, 15,
                     what=f"{name} to stop resolving")


def _rename_events(palletd: Any, since: str, name: str) -> list[str]:
    out = palletd.cli_ok("events", "--since", since, "--until", "0s",
                         "--filter", f"container={name}", "--filter", "event=rename")
    return [line for line in out.splitlines() if line]


def test_rename_running_and_stopped_dns_follows_the_new_name(palletd: Any, image: str) -> None:
    since = str(int(time.time()) - 1)
    palletd.cli_ok("network", "create", "named")
    palletd.cli_ok("run", "-d", "--name", "old", "--network", "named", image, "sleep", "1000")
    palletd.cli_ok("run", "-d", "--name", "peer", "--network", "named", image, "sleep", "1000")
    before = palletd.inspect("old")
    address = before["NetworkSettings"]["Networks"]["named"]["IPAddress"]
    _resolves(palletd, "peer", "old", address)

    assert palletd.cli_ok("rename", "old", "new") == ""
    after = palletd.inspect("new")
    assert after["Id"] == before["Id"] and after["Name"] == "/new"
    assert after["State"]["Running"] and after["State"]["Pid"] == before["State"]["Pid"]
    _resolves(palletd, "peer", "new", address)
    _unknown(palletd, "peer", "old")
    # Its hostname (and /etc/hosts, which has it) stay: docker renames only the name.
    assert palletd.cli_ok("exec", "new", "hostname") == before["Id"][:12] + "\n"
    [event] = _rename_events(palletd, since, "new")
    assert f"container rename {before['Id']} " in event
    assert "name=new" in event and "oldName=/old" in event
    gone = palletd.cli("inspect", "old")
    assert gone.returncode == 1 and "No such" in gone.stderr

    # A stopped container; its next start is on the network under the new name.
    palletd.cli_ok("create", "--name", "idle", "--network", "named", image, "sleep", "1000")
    assert palletd.cli_ok("rename", "idle", "busy") == ""
    palletd.cli_ok("start", "busy")
    busy = palletd.inspect("busy")["NetworkSettings"]["Networks"]["named"]["IPAddress"]
    _resolves(palletd, "peer", "busy", busy)
    _unknown(palletd, "peer", "idle")
    names = palletd.cli_ok("ps", "-a", "--format", "{{.Names}}").split()
    assert sorted(names) == ["busy", "new", "peer"]


def test_rename_refusals_change_nothing(palletd: Any, image: str) -> None:
    since = str(int(time.time()) - 1)
    palletd.cli_ok("run", "-d", "--name", "web", image, "sleep", "1000")
    db = palletd.cli_ok("create", "--name", "db", image, "true").strip()
    taken = palletd.cli("rename", "web", "db")
    assert taken.returncode == 1
    assert taken.stderr == (
        'Error: Error when allocating new name: Conflict. The container name "/db" is '
        f'already in use by container "{db}". You have to remove (or rename) that '
        "container to be able to reuse that name.\n"
    )
    for bad, words in (("x", "invalid container name 'x'"),
                       ("web", "Renaming a container with the same name as its current name"),
                       ("", "Neither old nor new names may be empty")):
        result = palletd.cli("rename", "web", bad)
        assert result.returncode == 1 and words in result.stderr, result.stderr
    missing = palletd.cli("rename", "nosuch", "other")
    assert missing.returncode == 1 and "No such container: nosuch" in missing.stderr
    assert sorted(palletd.cli_ok("ps", "-a", "--format", "{{.Names}}").split()) == ["db", "web"]
    assert _rename_events(palletd, since, "web") == []


def test_rename_killed_after_its_record_has_one_name_and_dns_follows_at_boot(
    palletd: Any, image: str
) -> None:
    palletd.cli_ok("network", "create", "named")
    palletd.cli_ok("run", "-d", "--name", "before", "--network", "named", image, "sleep", "1000")
    palletd.cli_ok("run", "-d", "--name", "asker", "--network", "named", image, "sleep", "1000")
    address = palletd.inspect("before")["NetworkSettings"]["Networks"]["named"]["IPAddress"]
    _resolves(palletd, "asker", "before", address)
    # Killed once the new name is recorded, before the DNS records were rebuilt.
    result = palletd.crash_during("rename:recorded", "rename", "before", "after")
    assert result.returncode != 0
    names = palletd.cli_ok("ps", "-a", "--format", "{{.Names}}").split()
    assert sorted(names) == ["after", "asker"]
    assert palletd.inspect("after")["State"]["Running"]
    # The restarted palletd published the records from the container records.
    _resolves(palletd, "asker", "after", address)
    _unknown(palletd, "asker", "before")


# ---- --init ------------------------------------------------------------------------------

# Five orphans: each inner sh backgrounds a sleep and exits at once, so the kernel re-parents
# the sleep to the namespace's PID 1; then PID 1 becomes `sleep 1000`, which never wait()s.
ORPHAN_MAKER = 'for i in 1 2 3 4 5; do sh -c "sleep 1 &"; done; exec sleep 1000'


def _namespace_processes(init_pid: int) -> dict[int, tuple[str, str, int]]:
    """pid -> (command, state, parent pid) of every process in the container's pid
    namespace, from its own /proc (read from the host through its init's root)."""
    found = {}
    for entry in Path(f"/proc/{init_pid}/root/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        command = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat.rpartition(")")[2].split()[:2]
        found[int(entry.name)] = (command, state, int(ppid))
    return found


def _zombies(init_pid: int) -> list[int]:
    return [p for p, (_, state, _) in _namespace_processes(init_pid).items() if state == "Z"]


def test_init_reaps_the_orphans_that_pile_up_as_zombies_without_it(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "plain", image, "sh", "-c", ORPHAN_MAKER)
    palletd.cli_ok("run", "-d", "--init", "--name", "inited", image, "sh", "-c", ORPHAN_MAKER)
    plain, inited = palletd.inspect("plain"), palletd.inspect("inited")
    # Without --init: five zombies, each a child of PID 1 (the sleep that never waits).
    palletd.wait_for(lambda: len(_zombies(plain["State"]["Pid"])) == 5, 15,
                     what="the orphans to die and stay zombies")
    procs = _namespace_processes(plain["State"]["Pid"])
    assert procs[1][0] == "sleep"
    assert sorted(ppid for _, state, ppid in procs.values() if state == "Z") == [1] * 5
    # With it: PID 1 is the init, the command its child; the orphans came to the init and
    # were reaped: once they are over, nothing but those two is left.
    def settled() -> bool:
        procs = _namespace_processes(inited["State"]["Pid"])
        return sorted((c, s, pp) for c, s, pp in procs.values()) == [
            ("docker-init", "S", 0), ("sleep", "S", 1)]
    palletd.wait_for(settled, 15, what="the init to reap the orphans")
    assert _zombies(inited["State"]["Pid"]) == []
    # Inspect shows the user's command (as docker does) and HostConfig.Init.
    assert (inited["Path"], inited["Args"]) == ("sh", ["-c", ORPHAN_MAKER])
    assert inited["HostConfig"]["Init"] is True and "Init" not in plain["HostConfig"]
    top = palletd.cli_ok("top", "inited", "-o", "pid,args")
    assert "/sbin/docker-init -- sh -c" in top


def test_init_forwards_sigterm_to_a_command_that_has_no_handler(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--init", "--name", "app", image, "sleep", "1000")
    palletd.cli_ok("run", "-d", "--name", "bare", image, "sleep", "1000")
    # The init hands SIGTERM to sleep, which dies of it (143, passed on by the init); a
    # stop that had to SIGKILL after the 30 s would say 137.
    palletd.cli_ok("stop", "-t", "30", "app")
    assert palletd.inspect("app")["State"]["ExitCode"] == 143
    # Without it sleep is PID 1, which gets no default action for SIGTERM: ignored, and
    # killed once the timeout is over.
    palletd.cli_ok("stop", "-t", "1", "bare")
    assert palletd.inspect("bare")["State"]["ExitCode"] == 137
    # The init stays through a restart and a `kill -s INT` reaches the command too.
    palletd.cli_ok("start", "app")
    palletd.cli_ok("kill", "-s", "INT", "app")
    assert palletd.cli_ok("wait", "app") == "130\n"
