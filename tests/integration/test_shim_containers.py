"""Real containers run by real shims through ShimLauncherImpl (no palletd in between)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest

from pallet.daemon.containers import bundle
from pallet.v1.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from pallet.shim.api.spec import Mount, Namespace, ShimSpec, TaskStatus
from pallet.daemon.shims.client import ShimLauncherImpl
from pallet.shim.api.logs import read_records
from shim_harness import (  # noqa: F401 - fixtures
    ShimWorld,
    cgroup_leftovers,
    collect,
    exec_spec,
    launcher,
    mounts_mentioning,
    remove,
    run_to_end,
    shim_world,
)

pytestmark = pytest.mark.integration

DOCKER_DEFAULT_CAPS = "00000000a80425fb"


async def test_output_exit_code_and_log_file(shim_world: ShimWorld, launcher: ShimLauncherImpl) -> None:
    spec = shim_world.spec("sh", "-c", "echo out; echo err >&2; exit 3")
    out, err, status = await run_to_end(launcher, spec)
    assert (out, err, status.exit_code) == (b"out\n", b"err\n", 3)
    on_disk = json.loads((Path(spec.bundle_dir) / "exit.json").read_text())
    assert on_disk["exit_code"] == 3
    assert launcher.exit_status_on_disk(Path(spec.bundle_dir)) == status
    records = [(r.stream, r.data) for r in read_records(spec.log.path)]
    assert sorted(records) == [(1, b"out\n"), (2, b"err\n")]


async def test_pid_1_hostname_and_loopback(shim_world: ShimWorld, launcher: ShimLauncherImpl) -> None:
    spec = shim_world.spec(
        "sh", "-c", "echo $$; hostname; ls /sys/class/net; cat /sys/class/net/lo/flags"
    )
    out, _, status = await run_to_end(launcher, spec)
    assert status.exit_code == 0
    assert out.decode().split() == ["1", "box", "lo", "0x9"]  # IFF_UP | IFF_LOOPBACK


async def test_docker_default_capabilities_and_no_new_privs(
    shim_world: ShimWorld, launcher: ShimLauncherImpl
) -> None:
    spec = shim_world.spec("sh", "-c", "grep -E '^(Cap|NoNewPrivs)' /proc/1/status")
    out, _, _ = await run_to_end(launcher, spec)
    fields = dict(line.split(":\t") for line in out.decode().splitlines())
    assert fields["CapEff"] == DOCKER_DEFAULT_CAPS
    assert fields["CapPrm"] == DOCKER_DEFAULT_CAPS
    assert fields["CapBnd"] == DOCKER_DEFAULT_CAPS
    assert fields["CapInh"] == "0000000000000000"
    assert fields["NoNewPrivs"] == "1"


async def test_explicit_capabilities_replace_the_default(
    shim_world: ShimWorld, launcher: ShimLauncherImpl
) -> None:
    spec = shim_world.spec(
        "sh", "-c", "grep CapBnd /proc/1/status", capabilities=("CAP_CHOWN", "CAP_KILL"),
        no_new_privileges=False,
    )
    out, _, _ = await run_to_end(launcher, spec)
    assert out.decode().split() == ["CapBnd:", "0000000000000021"]


async def test_no_capabilities_means_none(shim_world: ShimWorld, launcher: ShimLauncherImpl) -> None:
    """capabilities=() is how --cap-drop ALL reaches the shim: root keeps nothing."""
    spec = shim_world.spec(
        "sh", "-c", "grep -E '^Cap' /proc/1/status; chown 1 /tmp && echo chowned || echo refused",
        capabilities=(),
    )
    out, _, status = await run_to_end(launcher, spec)
    assert status.exit_code == 0
    lines = out.decode().splitlines()
    fields = dict(line.split(":\t") for line in lines[:-1])
    zero = "0000000000000000"
    assert fields == {"CapInh": zero, "CapPrm": zero, "CapEff": zero, "CapBnd": zero, "CapAmb": zero}
    assert lines[-1] == "refused"


def _without(spec: ShimSpec, ns_type: str) -> tuple[Namespace, ...]:
    return tuple(ns for ns in spec.linux.namespaces if ns.type != ns_type)


async def test_a_namespace_missing_from_the_spec_is_the_hosts(
    shim_world: ShimWorld, launcher: ShimLauncherImpl
) -> None:
    """--network host and --pid host: no entry, no namespace of its own; an exec too."""
    base = shim_world.spec("true")
    spec = shim_world.spec(
        "sh", "-c", "readlink /proc/self/ns/net; echo $$; sleep 1000",
        namespaces=tuple(ns for ns in _without(base, "network") if ns.type != "pid"),
    )
    host_net = os.readlink("/proc/self/ns/net")
    client = await launcher.spawn(spec)
    try:
        stdio = await client.attach(stdin=False, stdout=True, stderr=False)
        init_pid = await client.start()
        session = await client.exec(exec_spec(spec, "e1", "readlink", "/proc/self/ns/net"))
        exec_out, _ = await collect(session)
        await session.aclose()
        first = b""
        async for chunk in stdio.output():
            first += chunk.data
            if first.count(b"\n") >= 2:
                break
        await stdio.aclose()
        net, pid = first.decode().split()
        assert net == host_net and exec_out.decode().strip() == host_net
        assert int(pid) == init_pid  # the host's pid namespace: its pid is its host pid
        # The namespaces it does list are its own.
        assert os.readlink(f"/proc/{init_pid}/ns/uts") != os.readlink("/proc/self/ns/uts")
    finally:
        await remove(client)


async def test_shutdown_without_a_pid_namespace_kills_what_the_init_left(
    shim_world: ShimWorld, launcher: ShimLauncherImpl
) -> None:
    """The host's pid namespace: the init's children outlive it; the shutdown kills them
    (they used to keep running, and the cgroup stayed: EBUSY)."""
    base = shim_world.spec("true")
    spec = shim_world.spec(
        "sh", "-c", "sleep 1000 >/dev/null 2>&1 & echo $!",
        namespaces=_without(base, "pid"),
    )
    out, _, status = await run_to_end(launcher, spec)
    left = int(out.decode().strip())
    try:
        assert status.exit_code == 0
        for _ in range(100):
            if _gone(left):
                break
            await asyncio.sleep(0.05)
        assert _gone(left), "the init's background child outlived the shim's shutdown"
        assert not [p for p in cgroup_leftovers(shim_world.cgroup_parent)
                    if p.name == spec.container_id]
    finally:
        if not _gone(left):
            os.kill(left, signal.SIGKILL)


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


async def test_listed_sysctls_are_set_in_the_containers_namespaces(
    shim_world: ShimWorld, launcher: ShimLauncherImpl
) -> None:
    host_port = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()
    host_shm = Path("/proc/sys/kernel/shmmax").read_text()
    spec = shim_world.spec(
        "sh", "-c", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shmmax",
        sysctl={"net.ipv4.ip_unprivileged_port_start": "80", "kernel.shmmax": "65536"},
    )
    out, _, status = await run_to_end(launcher, spec)
    assert (status.exit_code, out.decode().split()) == (0, ["80", "65536"])
    assert Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text() == host_port
    assert Path("/proc/sys/kernel/shmmax").read_text() == host_shm


async def test_a_read_only_root_refuses_writes(shim_world: ShimWorld, launcher: ShimLauncherImpl) -> None:
    script = (
        "exec 2>&1; touch /new; echo x > /etc/passwd;"
        "echo ok > /dev/shm/f && cat /dev/shm/f; grep -c ' / .*\\bro\\b' /proc/self/mounts"
    )
    spec = shim_world.spec("sh", "-c", script, readonly=True)
    out, _, status = await run_to_end(launcher, spec)
    lines = out.decode().splitlines()
    assert "Read-only file system" in lines[0] and "Read-only file system" in lines[1]
    assert lines[2:] == ["ok", "1"]  # its own tmpfs mounts stay writable
    assert not (Path(spec.root.upper_dir) / "new").exists()
    writable = shim_world.spec("sh", "-c", "touch /new && echo made")
    assert (await run_to_end(launcher, writable))[0] == b"made\n"


async def test_masked_and_read_only_paths(shim_world: ShimWorld, launcher: ShimLauncherImpl) -> None:
    script = (
        "wc -c < /proc/timer_list; ls /sys/firmware | wc -l;"
        "echo x > /proc/sys/kernel/domainname 2>/dev/null && echo writable || echo readonly;"
        "touch /proc/sysrq-trigger 2>/dev/null && echo writable || echo readonly;"
        "ls /dev | sort | tr '\\n' ' '"
    )
    out, _, _ = await run_to_end(launcher, shim_world.spec("sh", "-c", script))
    lines = out.decode().splitlines()
    assert os.path.getsize("/proc/timer_list") == 0 and Path("/proc/timer_list").read_bytes()
    assert lines[:4] == ["0", "0", "readonly", "readonly"]
    assert set(lines[4].split()) >= {
        "null", "zero", "full", "random", "urandom", "tty", "fd", "stdin", "stdout",
        "stderr", "ptmx", "pts", "shm", "mqueue",
    }


async def test_user_switch_from_passwd(shim_world: ShimWorld, launcher: ShimLauncherImpl) -> None:
    spec = shim_world.spec(
        "sh", "-c", "id; echo $HOME; grep CapEff /proc/self/status; pwd",
        user="app", cwd="/work/dir",
    )
    out, _, status = await run_to_end(launcher, spec)
    lines = out.decode().splitlines()
    assert status.exit_code == 0
    assert lines[0].startswith("uid=1000(app) gid=1000(app)") and "50(staff)" in lines[0]
    assert lines[1:] == ["/home/app", "CapEff:\t0000000000000000", "/work/dir"]


async def test_numeric_user_and_group(shim_world: ShimWorld, launcher: ShimLauncherImpl) -> None:
    out, _, _ = await run_to_end(launcher, shim_world.spec("id", user="4242:4343"))
    assert out.decode().startswith("uid=4242 gid=4343")


async def test_unknown_user_fails_and_leaves_nothing(
    shim_world: ShimWorld, launcher: ShimLauncherImpl
) -> None:
    spec = shim_world.spec("true", user="foo")
    with pytest.raises(FailedPrecondition, match="unable to find user foo: no matching entries in passwd file"):
        await launcher.spawn(spec)
    assert not (shim_world.run_root / "shims" / f"{spec.container_id}.sock").exists()
    assert not any(spec.container_id in str(p) for p in cgroup_leftovers(shim_world.cgroup_parent))
    assert not mounts_mentioning(spec.bundle_dir)


async def test_missing_command_is_127_with_docker_message(
    shim_world: ShimWorld, launcher: ShimLauncherImpl
) -> None:
    spec = shim_world.spec("nosuch")
    client = await launcher.spawn(spec)
    with pytest.raises(FailedPrecondition, match=r'exec: "nosuch": executable file not found in \$PATH'):
        await client.start()
    status = await client.wait()
    assert status.exit_code == 127 and "executable file not found" in status.error
    assert launcher.exit_status_on_disk(Path(spec.bundle_dir)) == status
    await client.shutdown()
    await client.aclose()


async def test_not_executable_is_126(shim_world: ShimWorld, launcher: ShimLauncherImpl) -> None:
    client = await launcher.spawn(shim_world.spec("/etc/passwd"))
    with pytest.raises(FailedPrecondition, match="permission denied"):
        await client.start()
    assert (await client.wait()).exit_code == 126
    await client.shutdown()
    await client.aclose()


async def test_kill_with_signal_is_128_plus_n(shim_world: ShimWorld, launcher: ShimLauncherImpl) -> None:
    client = await launcher.spawn(shim_world.spec("sleep", "1000"))
    pid = await client.start()
    state = await client.state()
    assert (state.status, state.pid) == (TaskStatus.RUNNING, pid)
    await client.kill(signal.SIGKILL)
    status = await client.wait()
    assert status.exit_code == 128 + signal.SIGKILL
    assert (await client.state()).status is TaskStatus.STOPPED
    with pytest.raises(FailedPrecondition, match="is not running"):
        await client.kill(signal.SIGTERM)
    await client.shutdown()
    await client.aclose()


async def test_exec_joins_the_container(shim_world: ShimWorld, launcher: ShimLauncherImpl) -> None:
    client = await launcher.spawn(shim_world.spec("sleep", "1000", env=("PATH=/bin", "A=container")))
    init_pid = await client.start()
    session = await client.exec(
        exec_spec(
            shim_world.specs[-1], "e1",
            "sh", "-c", "hostname; echo $A $B; readlink /proc/self/ns/pid; "
            "grep CapEff /proc/self/status; echo oops >&2; exit 7",
            env=("B=exec",),
        )
    )
    out, err = await collect(session)
    status = await session.wait()
    await session.aclose()
    lines = out.decode().splitlines()
    assert lines[:3] == ["box", "container exec", os.readlink(f"/proc/{init_pid}/ns/pid")]
    assert lines[3] == f"CapEff:\t{DOCKER_DEFAULT_CAPS}"
    assert (err, status.exit_code) == (b"oops\n", 7)
    assert list(read_records(shim_world.specs[-1].log.path)) == []  # exec output is not the log's
    await remove(client)


async def test_exec_exit_outlives_its_connection(
    shim_world: ShimWorld, launcher: ShimLauncherImpl
) -> None:
    client = await launcher.spawn(shim_world.spec("sleep", "1000"))
    await client.start()
    spec = shim_world.specs[-1]
    session = await client.exec(exec_spec(spec, "w1", "sh", "-c", "read x; exit 9", stdin=True))
    # Asked on another connection while it runs: the answer comes when it ends.
    waiting = asyncio.ensure_future(client.wait_exec("w1"))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await session.write_stdin(b"go\n")
    assert (await asyncio.wait_for(waiting, 10)).exit_code == 9
    await session.aclose()
    # Recorded on disk before it was reported, and asked again later, once it is over.
    on_disk = launcher.exec_exit_on_disk(Path(spec.bundle_dir), "w1")
    assert on_disk is not None and on_disk.exit_code == 9
    assert (await client.wait_exec("w1")).exit_code == 9
    launcher.discard_exec_exit(Path(spec.bundle_dir), "w1")
    assert launcher.exec_exit_on_disk(Path(spec.bundle_dir), "w1") is None
    with pytest.raises(NotFound, match="no exec w1"):
        await client.wait_exec("w1")
    with pytest.raises(InvalidArgument, match="invalid exec id"):
        await client.wait_exec("../exit")
    with pytest.raises(InvalidArgument, match="invalid exec id"):
        await client.exec(exec_spec(shim_world.specs[-1], "../../x", "true"))
    await remove(client)


async def test_exec_missing_binary_is_127(shim_world: ShimWorld, launcher: ShimLauncherImpl) -> None:
    client = await launcher.spawn(shim_world.spec("sleep", "1000"))
    await client.start()
    session = await client.exec(exec_spec(shim_world.specs[-1], "e2", "nosuch"))
    out, err = await collect(session)
    status = await session.wait()
    await session.aclose()
    assert status.exit_code == 127
    # Said once, in the exit status (the CLI prints it), not mixed into the output.
    assert status.error == 'exec: "nosuch": executable file not found in $PATH'
    assert err == b""
    await remove(client)


async def test_exec_as_user_with_stdin(shim_world: ShimWorld, launcher: ShimLauncherImpl) -> None:
    client = await launcher.spawn(shim_world.spec("sleep", "1000"))
    await client.start()
    session = await client.exec(exec_spec(shim_world.specs[-1], "e3", "sh", "-c", "id -u; cat", cwd="/tmp", user="app", stdin=True))
    await session.write_stdin(b"piped\n")
    await session.close_stdin()
    out, _ = await collect(session)
    assert out == b"1000\npiped\n"
    assert (await session.wait()).exit_code == 0
    await session.aclose()
    await remove(client)


async def test_stdin_through_attach(shim_world: ShimWorld, launcher: ShimLauncherImpl) -> None:
    client = await launcher.spawn(shim_world.spec("sh", "-c", "read line; echo got $line; cat", stdin=True))
    stdio = await client.attach(stdin=True, stdout=True, stderr=True)
    await client.start()
    await stdio.write_stdin(b"hello\nmore\n")
    await stdio.close_stdin()
    out, _ = await collect(stdio)
    assert out == b"got hello\nmore\n"
    assert (await client.wait()).exit_code == 0
    await stdio.aclose()
    await client.shutdown()
    await client.aclose()


async def test_spec_mounts_and_workdir(shim_world: ShimWorld, launcher: ShimLauncherImpl) -> None:
    hosts = shim_world.base / "hosts-file"
    hosts.write_text("127.0.0.1 localhost box\n")
    spec = shim_world.spec(
        "sh", "-c", "cat /etc/hosts; echo x > /etc/hosts 2>/dev/null || echo ro; df -k /scratch | tail -1",
        mounts=(
            *bundle.DEFAULT_MOUNTS,
            Mount("/etc/hosts", "bind", str(hosts), ("rbind", "ro")),
            Mount("/scratch", "tmpfs", "tmpfs", ("size=1024k", "nosuid")),
        ),
    )
    out, _, _ = await run_to_end(launcher, spec)
    lines = out.decode().splitlines()
    assert lines[:2] == ["127.0.0.1 localhost box", "ro"]
    assert lines[2].split()[1] == "1024"
    assert hosts.read_text() == "127.0.0.1 localhost box\n"


async def test_the_standard_mounts_are_the_specs(
    shim_world: ShimWorld, launcher: ShimLauncherImpl
) -> None:
    """/dev/shm's size and /sys's read-only flag come from the spec (--shm-size,
    --privileged), not from the shim."""
    script = "df -k /dev/shm | tail -1; grep -E ' /(sys|dev/shm) ' /proc/mounts"
    default = shim_world.spec("sh", "-c", script)
    out, _, status = await run_to_end(launcher, default)
    assert status.exit_code == 0, out
    lines = out.decode().splitlines()
    assert lines[0].split()[1] == "65536"  # Docker's 64 MiB
    mounts = {line.split()[1]: line.split()[3].split(",") for line in lines[1:]}
    assert "ro" in mounts["/sys"] and "rw" in mounts["/dev/shm"]

    changed = tuple(
        Mount(m.destination, m.type, m.source, tuple(
            "size=2048k" if o.startswith("size=") and m.destination == "/dev/shm"
            else "rw" if o == "ro" and m.destination == "/sys" else o
            for o in m.options
        ))
        for m in bundle.DEFAULT_MOUNTS
    )
    spec = shim_world.spec("sh", "-c", script, mounts=changed)
    out, _, status = await run_to_end(launcher, spec)
    assert status.exit_code == 0, out
    lines = out.decode().splitlines()
    assert lines[0].split()[1] == "2048"
    mounts = {line.split()[1]: line.split()[3].split(",") for line in lines[1:]}
    assert "rw" in mounts["/sys"] and "ro" not in mounts["/sys"]


async def test_no_spec_mounts_means_no_proc(shim_world: ShimWorld, launcher: ShimLauncherImpl) -> None:
    """The shim mounts nothing of its own accord: without the daemon's mounts there is
    no /proc in the container."""
    spec = shim_world.spec("sh", "-c", "test -e /proc/self/status && echo proc || echo none", mounts=())
    out, _, _ = await run_to_end(launcher, spec)
    assert out == b"none\n"


async def test_shim_survives_the_daemon_and_is_readopted(shim_world: ShimWorld) -> None:
    spec = shim_world.spec("sh", "-c", "echo started; sleep 0.5; echo finished; exit 4")
    first = shim_world.launcher()
    client = await first.spawn(spec)
    shim_pid = client.shim_pid
    await client.start()
    # The "daemon" goes away: every connection closes. The container keeps running.
    await client.aclose()
    await first.aclose()
    await asyncio.sleep(1.0)
    second = shim_world.launcher()
    again = await second.connect(spec.container_id, Path(spec.bundle_dir))
    assert again.shim_pid == shim_pid
    state = await again.state()
    assert state.status is TaskStatus.STOPPED and state.exit is not None and state.exit.exit_code == 4
    assert (await again.wait()).exit_code == 4
    assert [r.data for r in read_records(spec.log.path)] == [b"started\n", b"finished\n"]
    await again.shutdown()
    await again.aclose()
    with pytest.raises(Unavailable):
        await second.connect(spec.container_id, Path(spec.bundle_dir))
    assert second.exit_status_on_disk(Path(spec.bundle_dir)).exit_code == 4  # type: ignore[union-attr]


async def test_shutdown_removes_socket_cgroup_and_mounts(
    shim_world: ShimWorld, launcher: ShimLauncherImpl
) -> None:
    spec = shim_world.spec("sleep", "1000")
    client = await launcher.spawn(spec)
    await client.start()
    cgroups = [p for p in cgroup_leftovers(shim_world.cgroup_parent) if p.name == spec.container_id]
    assert cgroups, "the container has a cgroup while it runs"
    with pytest.raises(FailedPrecondition, match="is running"):
        await client.shutdown()
    shim_pid = client.shim_pid
    await remove(client)
    for _ in range(100):
        if not Path(f"/proc/{shim_pid}").exists():
            break
        await asyncio.sleep(0.02)
    assert not Path(f"/proc/{shim_pid}").exists()
    assert not (shim_world.run_root / "shims" / f"{spec.container_id}.sock").exists()
    assert not [p for p in cgroup_leftovers(shim_world.cgroup_parent) if p.name == spec.container_id]
    assert not mounts_mentioning(spec.bundle_dir)


async def test_created_container_can_be_removed_without_start(
    shim_world: ShimWorld, launcher: ShimLauncherImpl
) -> None:
    spec = shim_world.spec("echo", "never")
    client = await launcher.spawn(spec)
    assert (await client.state()).status is TaskStatus.CREATED
    await client.shutdown()
    await client.aclose()
    assert not (shim_world.run_root / "shims" / f"{spec.container_id}.sock").exists()
    assert list(read_records(spec.log.path)) == []


async def test_connect_to_unknown_container_is_unavailable(
    shim_world: ShimWorld, launcher: ShimLauncherImpl
) -> None:
    with pytest.raises(Unavailable):
        await launcher.connect("nosuchcontainer", shim_world.base / "nosuch")


async def test_large_stdin_and_output_stream_through(shim_world: ShimWorld, launcher: ShimLauncherImpl) -> None:
    spec = shim_world.spec("sh", "-c", "wc -c; head -c 5000000 /dev/zero", stdin=True)
    client = await launcher.spawn(spec)
    stdio = await client.attach(stdin=True, stdout=True, stderr=True)
    await client.start()
    reader = asyncio.create_task(collect(stdio))
    chunk = b"x" * 65536
    for _ in range(48):  # 3 MiB: more than the shim buffers, so it must pause and resume us
        await stdio.write_stdin(chunk)
    await stdio.close_stdin()
    out, _ = await reader
    assert out[:8] == b"3145728\n" and len(out) == 8 + 5_000_000
    assert (await client.wait()).exit_code == 0
    assert sum(len(r.data) for r in read_records(spec.log.path)) == 8 + 5_000_000
    await stdio.aclose()
    await client.shutdown()
    await client.aclose()
