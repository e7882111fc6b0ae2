"""Fixtures for driving real shims through `ShimLauncherImpl` directly (no palletd).

Owns: a busybox rootfs unpacked once per module as the read-only lower dir, a short run
root (unix socket paths stay short), a cgroup parent unique to the module, a `Box` helper
that makes bundles and specs, and the teardown that proves nothing leaked: no shim
process, no mount, no cgroup, no socket. Must not: touch anything it did not create; the
launcher and any leftover shims are found by the run root in their command line and
killed by pid.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from pallet.daemon.containers import bundle
from pallet.daemon.containers.merge import merge_env
from pallet.daemon.shims.api import ShimClient, Stdio
from pallet.shim.api.spec import ExecSpec, ExitStatus, Linux, Log, Process, Root, ShimSpec, TaskStatus
from pallet.daemon.shims.client import ShimLauncherImpl

_PROCESS_FIELDS = {"args", "env", "cwd", "user", "capabilities", "no_new_privileges", "stdin"}
_LINUX_FIELDS = {"namespaces", "cgroups_path", "masked_paths", "readonly_paths", "devices", "sysctl"}


def _pids_mentioning(text: str) -> dict[int, str]:
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if text in cmdline and state not in ("Z", "X"):
            found[int(entry)] = cmdline
    return found


def mounts_mentioning(text: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if text in line]


def cgroup_roots() -> list[Path]:
    roots: dict[str, Path] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            if post.split()[0] in ("cgroup", "cgroup2"):
                roots.setdefault(pre.split()[2], Path(pre.split()[4]))
    return list(roots.values())


def cgroup_leftovers(parent: str) -> list[Path]:
    return [p for root in cgroup_roots() for p in (root / parent).glob("*") if p.is_dir()]


@dataclass
class ShimWorld:
    """One module's worth of shims: rootfs, run root, cgroup parent."""

    base: Path
    lower: Path
    run_root: Path
    cgroup_parent: str
    specs: list[ShimSpec] = field(default_factory=list)

    def launcher(self, **kwargs: Any) -> ShimLauncherImpl:
        return ShimLauncherImpl(self.run_root, **kwargs)

    def bundle_dir(self, container_id: str) -> Path:
        """Where `spec` puts the bundle of `container_id` (upper and work dir, log file,
        exit.json): a test may mount a filesystem of its own there first."""
        return self.base / "containers" / container_id

    def spec(self, *args: str, **overrides: Any) -> ShimSpec:
        """A spec for a new container running `args` (a fresh id, bundle and upper dir).

        The daemon's defaults (`containers/bundle.py`), as `palletd` would send them;
        `overrides` name a field of the spec, its process, its linux part, or
        `readonly` (the root's).
        """
        cid = overrides.pop("container_id", None) or secrets.token_hex(8)
        bundle_dir = self.bundle_dir(cid)
        for sub in ("upper", "work", "rootfs"):
            (bundle_dir / sub).mkdir(parents=True)
        process = Process(
            args=args,
            env=("PATH=/usr/sbin:/usr/bin:/sbin:/bin",),
            cwd="/",
            user="",
            capabilities=bundle.DEFAULT_CAPABILITIES,
            no_new_privileges=True,
            stdin=False,
        )
        linux = Linux(
            namespaces=bundle.default_namespaces(),
            cgroups_path=f"{self.cgroup_parent}/{cid}",
            masked_paths=bundle.MASKED_PATHS,
            readonly_paths=bundle.READONLY_PATHS,
            devices=bundle.DEFAULT_DEVICES,
            sysctl={},
            rootfs_propagation=bundle.ROOTFS_PROPAGATION,
            seccomp="",
            device_cgroup=(),
        )
        root = Root(
            path=str(bundle_dir / "rootfs"),
            layers=(str(self.lower),),
            upper_dir=str(bundle_dir / "upper"),
            work_dir=str(bundle_dir / "work"),
            readonly=bool(overrides.pop("readonly", False)),
        )
        process = replace(process, **{k: overrides.pop(k) for k in _PROCESS_FIELDS & set(overrides)})
        linux = replace(linux, **{k: overrides.pop(k) for k in _LINUX_FIELDS & set(overrides)})
        spec = ShimSpec(
            container_id=cid,
            bundle_dir=str(bundle_dir),
            hostname="box",
            process=process,
            root=root,
            mounts=bundle.DEFAULT_MOUNTS,
            linux=linux,
            log=Log(path=str(bundle_dir / "container.log"), max_size=0, max_files=1),
        )
        spec = replace(spec, **overrides)
        self.specs.append(spec)
        return spec


def exec_spec(
    container: ShimSpec,
    exec_id: str,
    *args: str,
    env: tuple[str, ...] = (),
    cwd: str = "",
    user: str = "",
    stdin: bool = False,
) -> ExecSpec:
    """An exec in `container`, its process completed as the daemon completes it."""
    base = container.process
    return ExecSpec(
        exec_id,
        replace(
            base, args=args, env=merge_env(base.env, env), cwd=cwd or base.cwd,
            user=user or base.user, stdin=stdin,
        ),
    )


@pytest.fixture(scope="module")
def shim_world(busybox_tar: Path) -> Iterator[ShimWorld]:
    if os.geteuid() != 0:
        pytest.skip("shim integration tests need root")
    base = Path(tempfile.mkdtemp(prefix="plshim-", dir="/tmp"))
    lower = base / "lower"
    with tarfile.open(busybox_tar) as tar:
        tar.extractall(lower, filter="fully_trusted")
    run_root = base / "run"
    run_root.mkdir()
    world = ShimWorld(base, lower, run_root, f"pallet-shimtest-{secrets.token_hex(4)}")
    try:
        yield world
    finally:
        _teardown_world(world)


def _teardown_world(world: ShimWorld) -> None:
    problems = []
    launcher_pid = _read_pid(world.run_root / "shim-launcher.pid")
    # A shim answers shutdown just before it exits: give the last ones a moment.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        leftovers = _pids_mentioning(str(world.run_root))
        if not set(leftovers) - {launcher_pid}:
            break
        time.sleep(0.05)
    shims = {p: _describe(p) for p in leftovers if p != launcher_pid}
    if shims:
        problems.append(f"shim processes left running: {shims}")
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while _pids_mentioning(str(world.run_root)) and time.monotonic() < deadline:
        time.sleep(0.05)
    mounts = mounts_mentioning(str(world.base))
    if mounts:
        problems.append(f"mounts left on the host: {mounts}")
    for root in cgroup_roots():
        parent = root / world.cgroup_parent
        for child in sorted(parent.glob("*/"), reverse=True) if parent.is_dir() else []:
            if child.is_dir():
                problems.append(f"cgroup left: {child}")
                try:
                    child.rmdir()
                except OSError:
                    pass
        if parent.is_dir():
            parent.rmdir()
    shutil.rmtree(world.base, ignore_errors=True)
    assert not problems, "\n".join(problems)


def _describe(pid: int) -> str:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        fds = sorted(os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError as exc:
        return f"gone ({exc})"
    return f"{comm} fds={fds} children={children}"


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0


@pytest.fixture
async def launcher(shim_world: ShimWorld) -> AsyncIterator[ShimLauncherImpl]:
    """A daemon-side launcher; after the test, every container it made must be gone."""
    impl = shim_world.launcher()
    first = len(shim_world.specs)
    try:
        yield impl
    finally:
        await impl.aclose()
        leaked = []
        for spec in shim_world.specs[first:]:
            sock = shim_world.run_root / "shims" / f"{spec.container_id}.sock"
            if sock.exists():
                leaked.append(spec.container_id)
                await _force_remove(impl, spec)
        assert not leaked, f"test left shims running for {leaked}"


async def _force_remove(impl: ShimLauncherImpl, spec: ShimSpec) -> None:
    try:
        client = await impl.connect(spec.container_id, Path(spec.bundle_dir))
        state = await client.state()
        if state.status is TaskStatus.RUNNING:
            await client.kill(signal.SIGKILL, all_processes=True)
            await client.wait()
        await client.shutdown()
        await client.aclose()
    except Exception:  # noqa: BLE001 - best effort; the module teardown kills by pid
        pass


async def collect(stdio: Stdio) -> tuple[bytes, bytes]:
    """All stdout and stderr of an attached or exec'd process."""
    out, err = b"", b""
    async for chunk in stdio.output():
        if chunk.stream == 1:
            out += chunk.data
        else:
            err += chunk.data
    return out, err


async def run_to_end(
    launcher: ShimLauncherImpl, spec: ShimSpec
) -> tuple[bytes, bytes, ExitStatus]:
    """Spawn, attach, start, collect output, wait, shut the shim down."""
    client = await launcher.spawn(spec)
    try:
        stdio = await client.attach(stdin=False, stdout=True, stderr=True)
        await client.start()
        out, err = await collect(stdio)
        await stdio.aclose()
        status = await client.wait()
        await client.shutdown()
    finally:
        await client.aclose()
    return out, err, status


async def remove(client: ShimClient) -> ExitStatus:
    """Kill a running container, wait for it and shut its shim down."""
    state = await client.state()
    if state.status is not TaskStatus.STOPPED:
        await client.kill(signal.SIGKILL)
    status = await client.wait()
    await client.shutdown()
    await client.aclose()
    return status
