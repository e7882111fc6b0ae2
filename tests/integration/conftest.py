"""Harness for end-to-end tests: a real palletd per test module, driven through the real CLI.

Owns: checking the host can run containers (root, overlayfs, namespaces; skip otherwise,
fail under CI), starting palletd with its own temporary root, run root and cgroup parent,
running `pallet --host ...`, resetting the daemon between tests, and tearing everything down
(containers, daemon, shim launcher and shims, container processes, mounts, cgroups, temp
dirs), failing the test that leaked. Must not: touch anything it did not create; processes
are killed by pid only, and only when they belong to this daemon (its cgroup parent, or a
command line naming its run root).

The harness itself talks gRPC to the daemon (Ping, List, Remove, Import) so that cleanup does
not depend on the CLI under test.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

#: Software emulation (.ci/test-cgroup-v2's VM) is 10-30 times slower: it sets a longer one.
DAEMON_START_TIMEOUT = float(os.environ.get("PALLET_TEST_DAEMON_START_TIMEOUT", "30"))
DAEMON_STOP_TIMEOUT = 20.0
#: Leaks found while tearing down; shown in the terminal summary as well as failing the test.
LEAK_REPORTS: list[str] = []


# --------------------------------------------------------------------------- host checks


def _host_problem() -> str | None:
    """Why this host cannot run pallet's integration tests, or None when it can."""
    if os.geteuid() != 0:
        return "integration tests need root (they run palletd and real containers)"
    if sys.platform != "linux":
        return "integration tests need Linux"
    try:
        filesystems = Path("/proc/filesystems").read_text()
    except OSError as exc:
        return f"cannot read /proc/filesystems: {exc}"
    if "overlay" not in filesystems.split():
        subprocess.run(["modprobe", "overlay"], capture_output=True, check=False)
        if "overlay" not in Path("/proc/filesystems").read_text().split():
            return "overlayfs is not available (modprobe overlay)"
    for ns in ("mnt", "pid", "net", "uts", "ipc"):
        if not Path(f"/proc/self/ns/{ns}").exists():
            return f"the kernel has no {ns} namespaces"
    unshare = shutil.which("unshare")
    if unshare is not None:
        probe = subprocess.run(
            [unshare, "--mount", "--pid", "--net", "--uts", "--ipc", "--fork", "true"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        if probe.returncode != 0:
            return f"cannot create namespaces here: {probe.stderr.strip()}"
    if not _cgroup_mounts():
        return "no cgroup filesystem is mounted"
    return None


@pytest.fixture(scope="session", autouse=True)
def _integration_host() -> None:
    problem = _host_problem()
    if problem is None:
        return
    if os.environ.get("CI"):
        # CI runs as root on a capable host: a skip there would hide that nothing ran.
        pytest.fail(f"CI must run the integration tests, but {problem}")
    pytest.skip(problem)


# --------------------------------------------------------------------------- host state


def _unescape_mount_path(path: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and path[i + 1 : i + 4].isdigit():
            out.append(chr(int(path[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def _mountinfo() -> list[tuple[str, str, str]]:
    """(root, mount point, fs type) of every mount in this mount namespace."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        mounts.append(
            (_unescape_mount_path(fields[3]), _unescape_mount_path(fields[4]), right.split()[0])
        )
    return mounts


def _cgroup_mounts() -> list[Path]:
    """Mount points of every cgroup hierarchy (v1 and v2) whose root is the host root."""
    seen: dict[str, Path] = {}
    for root, mount_point, fstype in _mountinfo():
        if fstype in ("cgroup", "cgroup2") and root == "/":
            seen.setdefault(os.path.realpath(mount_point), Path(mount_point))
    return list(seen.values())


def mounts_under(base: Path) -> list[str]:
    prefix = str(base).rstrip("/") + "/"
    return [mp for _, mp, _ in _mountinfo() if mp == str(base) or mp.startswith(prefix)]


def cgroup_dirs(parent: str) -> list[Path]:
    """Every cgroup directory of `parent` (and below it) in every hierarchy, deepest first."""
    dirs: list[Path] = []
    for mount in _cgroup_mounts():
        top = mount / parent
        if top.is_dir():
            dirs.extend(p for p in top.rglob("*") if p.is_dir())
            dirs.append(top)
    return sorted(dirs, key=lambda p: len(p.parts), reverse=True)


def cgroup_pids(parent: str) -> set[int]:
    pids: set[int] = set()
    for directory in cgroup_dirs(parent):
        try:
            text = (directory / "cgroup.procs").read_text()
        except OSError:
            continue
        pids.update(int(x) for x in text.split())
    return pids


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace"
        )
    except OSError:
        return ""


def pids_mentioning(text: str) -> dict[int, str]:
    """Live processes whose command line contains `text` (never this test process)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        cmdline = _cmdline(int(entry.name))
        if text in cmdline and not _is_zombie(int(entry.name)):
            found[int(entry.name)] = cmdline
    return found


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def _start_time(pid: int) -> int:
    """Clock ticks since boot when `pid` started (field 22 of /proc/<pid>/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rpartition(")")[2].split()[19])


def pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and not _is_zombie(pid)


def _kill(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    alive = {p for p in pids if pid_alive(p)}
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = {p for p in alive if pid_alive(p)}
    return alive


_libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2


def _lazy_unmount(path: str) -> None:
    if _libc.umount2(path.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise OSError(err, f"umount2({path}): {os.strerror(err)}")


def wait_for(
    condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll until `condition()` is truthy and return it; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


# --------------------------------------------------------------------------- the daemon



def fetch_from_host(palletd: Any, url: str, tries: int = 40) -> str:
    """`url`'s body, fetched with busybox wget from palletd's namespace (the "host" of its
    containers), retried while the listener or its rules come up (bounded)."""
    last = None
    for _ in range(tries):
        last = palletd.host_run("busybox", "timeout", "5", "busybox", "wget", "-q", "-O", "-",
                                url, check=False)
        if last.returncode == 0:
            return str(last.stdout)
        time.sleep(0.25)
    raise AssertionError(f"wget {url} from the host failed: {last}")


def fetch_from(palletd: Any, container: str, url: str, tries: int = 40) -> str:
    """`url`'s body, fetched with wget inside `container` (retried, bounded)."""
    last = None
    for _ in range(tries):
        last = palletd.cli("exec", container, "timeout", "5", "wget", "-q", "-O", "-", url)
        if last.returncode == 0:
            return str(last.stdout)
        time.sleep(0.25)
    raise AssertionError(f"wget {url} from {container} failed: {last}")

def _console_script(name: str) -> list[str]:
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return [str(beside_python)]
    found = shutil.which(name)
    if found:
        return [found]
    module = {"pallet": "pallet.client.cli", "palletd": "pallet.daemon.main"}[name]
    return [sys.executable, "-m", module]


@dataclass
class Palletd:
    """One palletd with its own directories, driven through the `pallet` CLI."""

    base: Path  # temp dir holding root/, run/ and the daemon's log
    cgroup_parent: str
    # The throwaway network namespace palletd runs in (`ip netns add`): its bridges,
    # veths, nftables rules and ip_forward are that namespace's, never the host's.
    netns: str = ""
    proc: subprocess.Popen[bytes] | None = None
    popens: list[subprocess.Popen[Any]] = field(default_factory=list)
    base_image_id: str = ""
    _channel: Any = None
    #: Extra palletd flags and environment for the next start() (crash tests set these).
    extra_args: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def run_root(self) -> Path:
        return self.base / "run"

    @property
    def socket(self) -> Path:
        return self.run_root / "pallet.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log_path(self) -> Path:
        return self.base / "palletd.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "palletd is not running"
        return self.proc.pid

    #: Poll helper for tests: `palletd.wait_for(lambda: ..., timeout, what=...)`.
    wait_for = staticmethod(wait_for)

    @staticmethod
    def read_line(proc: subprocess.Popen[Any], timeout: float = 20.0) -> Any:
        """One line of a background CLI's stdout; fails (and kills it) after `timeout`."""
        assert proc.stdout is not None
        got: list[Any] = []
        reader = threading.Thread(target=lambda: got.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        if reader.is_alive():
            proc.kill()  # unblocks the reader with EOF
            reader.join(10)
            pytest.fail(f"no line from `{' '.join(map(str, proc.args))}` within {timeout}s")  # type: ignore[arg-type]
        return got[0]

    def container_cgroups(self, container_id: str = "") -> list[Path]:
        """Existing cgroup directories of one container (of every container when no id)."""
        found = []
        for mount in _cgroup_mounts():
            parent = mount / self.cgroup_parent
            if container_id:
                found += [parent / container_id] if (parent / container_id).is_dir() else []
            elif parent.is_dir():
                found += [p for p in parent.iterdir() if p.is_dir()]
        return found

    def in_netns(self) -> list[str]:
        """The argv prefix that runs a command in this daemon's network namespace."""
        return ["nsenter", f"--net=/run/netns/{self.netns}"] if self.netns else []

    def host_run(self, *args: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command on the daemon's "host": in its network namespace."""
        result = subprocess.run([*self.in_netns(), *args], capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"`{' '.join(args)}` in the daemon's namespace exited {result.returncode}:\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    def links(self) -> list[str]:
        """Link names in the daemon's network namespace."""
        out = self.host_run("ip", "-j", "link", "show").stdout
        return [link["ifname"] for link in json.loads(out or "[]")]

    def leases(self) -> list[tuple[str, str, str]]:
        """(network id, address, container id) of the leases in the daemon's database."""
        db = self.root / "pallet.db"
        if not db.exists():
            return []
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return [tuple(r) for r in conn.execute(
                "SELECT network_id, address, container_id FROM network_leases"
            ).fetchall()]
        except sqlite3.OperationalError:
            return []  # no table yet
        finally:
            conn.close()

    def nat_rules(self) -> list[str]:
        """pallet's DNAT rules ("tcp dport 8080 dnat to …") in the daemon's namespace."""
        out = self.host_run("nft", "list", "table", "ip", "pallet", check=False).stdout
        return [line.strip() for line in out.splitlines() if "dnat to" in line]

    def network_leaks(self) -> list[str]:
        """What no container explains: veths, leases, DNAT rules, netns files."""
        problems = []
        def veths() -> list[str]:
            return [x for x in self.links() if re.fullmatch(r"pl[0-9a-f]{10}", x)]
        # The kernel frees a namespace's veths after its unmount, in the background: on a
        # loaded two-core machine that has taken well over 10 s.
        deadline = time.monotonic() + 30
        while veths() and time.monotonic() < deadline:
            time.sleep(0.1)
        if veths():
            problems.append(f"veths left behind: {veths()}")
        if self.leases():
            problems.append(f"address leases left behind: {self.leases()}")
        deadline = time.monotonic() + 10
        while self.nat_rules() and time.monotonic() < deadline:
            time.sleep(0.05)  # a release's rebuild of the rules runs after it returns
        if self.nat_rules():
            problems.append(f"port rules left behind: {self.nat_rules()}")
        netns_dir = self.run_root / "netns"
        if netns_dir.is_dir() and any(netns_dir.iterdir()):
            problems.append(f"network namespaces left behind: {sorted(p.name for p in netns_dir.iterdir())}")
        return problems

    def mounts(self) -> list[str]:
        """Mount points under this daemon's directories (in the test's mount namespace)."""
        return mounts_under(self.base)

    # ---- process

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "palletd is already running"
        # root/ and run/ are not made here: palletd makes its own directories.
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [
                    *self.in_netns(),
                    *_console_script("palletd"),
                    "--root", str(self.root),
                    "--run-root", str(self.run_root),
                    "--host", self.host,
                    "--cgroup-parent", self.cgroup_parent,
                    "--log-level", "debug",
                    *self.extra_args,
                ],
                env={**os.environ, **self.extra_env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                # Its own session: a Ctrl-C of pytest must not reach it before teardown does.
                start_new_session=True,
            )
        finally:
            log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + DAEMON_START_TIMEOUT
        last_error = ""
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(
                    f"palletd exited with {self.proc.returncode} while starting:\n"
                    + self.log_tail()
                )
            if self.socket.exists():
                try:
                    self.ping(timeout=2)
                    return
                except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                    last_error = str(exc)
            time.sleep(0.1)
        pytest.fail(
            f"palletd did not answer on {self.host} within {DAEMON_START_TIMEOUT}s "
            f"({last_error}):\n" + self.log_tail()
        )

    def stop(self, timeout: float = DAEMON_STOP_TIMEOUT) -> int | None:
        """SIGTERM the daemon (SIGKILL after `timeout`); return its exit status."""
        self._close_channel()
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(
                f"palletd ignored SIGTERM for {timeout}s and was killed:\n" + self.log_tail()
            ) from None

    def restart(self) -> None:
        self.stop()
        self.start()

    @contextlib.contextmanager
    def crash_armed(self, point: str) -> Iterator[None]:
        """palletd restarted with `PALLET_CRASH_AT=point`; the body must make it reach that
        point (it SIGKILLs itself there). Afterwards it is started again, unarmed."""
        self.stop()
        self.extra_env = {"PALLET_CRASH_AT": point}
        try:
            self.start()
            yield
            assert self.proc is not None
            assert self.proc.wait(20) == -signal.SIGKILL, self.log_tail()
        finally:
            self.extra_env = {}
        assert f"crash point {point} reached" in self.log_tail(200)
        self._close_channel()
        self.start()

    def crash_during(self, point: str, *args: str) -> subprocess.CompletedProcess[Any]:
        """`pallet ARGS` run against a palletd armed to die at `point`; its result."""
        with self.crash_armed(point):
            result = self.cli(*args, timeout=60)
        return result

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no daemon log)"
        return "\n".join(text.splitlines()[-lines:])

    # ---- CLI

    def cli_args(self, *args: str) -> list[str]:
        return [*_console_script("pallet"), "--host", self.host, *args]

    def cli(
        self,
        *args: str,
        input: str | bytes | None = None,
        timeout: float = 60,
        text: bool = True,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[Any]:
        """Run `pallet --host <this daemon> ARGS...` and capture its output."""
        as_text = text and not isinstance(input, bytes)
        return subprocess.run(
            self.cli_args(*args),
            input=input,
            capture_output=True,
            text=as_text,
            # Non-UTF-8 output must not crash the harness; the test compares and fails.
            errors="backslashreplace" if as_text else None,
            timeout=timeout,
            env=_cli_env(env),
            stdin=subprocess.DEVNULL if input is None else None,
        )

    def cli_ok(self, *args: str, **kwargs: Any) -> str:
        """Run the CLI, fail the test unless it exits 0, return its stdout."""
        result = self.cli(*args, **kwargs)
        assert result.returncode == 0, (
            f"`pallet {' '.join(args)}` exited {result.returncode}\n"
            f"stdout: {result.stdout!r}\nstderr: {result.stderr!r}"
        )
        return str(result.stdout)

    def cli_popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[Any]:
        """Start the CLI in the background (follow modes); killed at the end of the test."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs["env"] = _cli_env(kwargs.get("env"))
        proc = subprocess.Popen(self.cli_args(*args), **kwargs)
        self.popens.append(proc)
        return proc

    def inspect(self, name: str) -> dict[str, Any]:
        """`pallet inspect NAME` parsed; fails the test unless exactly one object comes back."""
        import json

        data = json.loads(self.cli_ok("inspect", name))
        assert isinstance(data, list) and len(data) == 1, data
        return dict(data[0])

    # ---- Docker's API, driven by Docker's own clients

    @property
    def docker_socket(self) -> Path:
        return self.run_root / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.docker_socket}"

    def docker_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The docker CLI's environment: this daemon, and a config directory of its own
        (never the user's ~/.docker)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update({
            "DOCKER_HOST": self.docker_host,
            "DOCKER_CONFIG": str(self.base / "docker-config"),
            "DOCKER_CLI_HINTS": "false",
        })
        env.update(extra or {})
        return env

    def docker(
        self, *args: str, input: str | bytes | None = None, timeout: float = 60,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[Any]:
        """Run the real docker CLI against this daemon's Docker API socket."""
        as_text = not isinstance(input, bytes)
        return subprocess.run(
            [DOCKER_CLI, *args], input=input, capture_output=True, text=as_text,
            errors="backslashreplace" if as_text else None, timeout=timeout,
            env=self.docker_env(env), stdin=subprocess.DEVNULL if input is None else None,
        )

    def docker_ok(self, *args: str, **kwargs: Any) -> str:
        """The docker CLI, failing the test unless it exits 0; its stdout."""
        result = self.docker(*args, **kwargs)
        assert result.returncode == 0, (
            f"`docker {' '.join(args)}` exited {result.returncode}\n"
            f"stdout: {result.stdout!r}\nstderr: {result.stderr!r}"
        )
        return str(result.stdout)

    def docker_popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[Any]:
        """The docker CLI in the background; killed at the end of the test."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs["env"] = self.docker_env(kwargs.get("env"))
        proc = subprocess.Popen([DOCKER_CLI, *args], **kwargs)
        self.popens.append(proc)
        return proc

    def docker_client(self) -> Any:
        """A docker-py client of this daemon (the caller closes it)."""
        import docker

        return docker.DockerClient(base_url=self.docker_host, timeout=60)

    # ---- gRPC (the harness's own view, independent of the CLI)

    def _stubs(self) -> Any:
        import grpc

        import pallet.v1.containers_pb2_grpc as containers_pb2_grpc
        import pallet.v1.images_pb2_grpc as images_pb2_grpc
        import pallet.v1.system_pb2_grpc as system_pb2_grpc

        if self._channel is None:
            self._channel = grpc.insecure_channel(self.host)

        class Stubs:
            system = system_pb2_grpc.SystemServiceStub(self._channel)
            containers = containers_pb2_grpc.ContainersServiceStub(self._channel)
            images = images_pb2_grpc.ImagesServiceStub(self._channel)

        return Stubs

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def ping(self, timeout: float = 5) -> None:
        import pallet.v1.system_pb2 as system_pb2

        self._stubs().system.Ping(system_pb2.PingRequest(), timeout=timeout)

    def container_ids(self) -> list[str]:
        import pallet.v1.containers_pb2 as containers_pb2

        response = self._stubs().containers.List(
            containers_pb2.ListContainersRequest(all=True), timeout=30
        )
        return [c.id for c in response.containers]

    def remove_all_containers(self) -> list[str]:
        """`rm -f` every container; return the errors."""
        import pallet.v1.containers_pb2 as containers_pb2

        errors = []
        for cid in self.container_ids():
            try:
                self._stubs().containers.Remove(
                    containers_pb2.RemoveContainerRequest(container=cid, force=True), timeout=60
                )
            except Exception as exc:  # noqa: BLE001 - reported, then teardown goes on
                if _grpc_code(exc) == "NOT_FOUND":
                    continue  # gone meanwhile (an auto-removed container): nothing to do
                errors.append(f"rm -f {cid}: {exc}")
        return errors

    def images(self) -> list[Any]:
        import pallet.v1.images_pb2 as images_pb2

        return list(
            self._stubs().images.List(images_pb2.ListImagesRequest(all=True), timeout=30).images
        )

    def import_image(self, tar: Path, reference: str, changes: tuple[str, ...] = ()) -> str:
        import pallet.v1.images_pb2 as images_pb2

        def requests() -> Iterator[Any]:
            yield images_pb2.ImportRequest(
                header=images_pb2.ImportHeader(reference=reference, changes=list(changes))
            )
            with open(tar, "rb") as f:
                while chunk := f.read(1 << 20):
                    yield images_pb2.ImportRequest(chunk=chunk)
            yield images_pb2.ImportRequest(end=images_pb2.UploadEnd(size=tar.stat().st_size))

        response = self._stubs().images.Import(requests(), timeout=120)
        return str(response.image.id)

    def remove_image(self, image: str, force: bool = True) -> None:
        import pallet.v1.images_pb2 as images_pb2

        self._stubs().images.Remove(
            images_pb2.RemoveImageRequest(image=image, force=force), timeout=60
        )

    # ---- between tests and at the end

    def lingering_shims(self, timeout: float = 5.0) -> dict[int, str]:
        """Processes of this daemon's shim launcher beyond the launcher itself.

        Shims are forked by the launcher (so they share its command line); with every
        container removed only the launcher, the oldest of them, may be left.
        """
        daemon_pid = self.proc.pid if self.proc is not None else -1

        def extra() -> dict[int, str]:
            procs = {
                p: c for p, c in pids_mentioning(str(self.base)).items()
                if p != daemon_pid and RESOLVER_MODULE not in c
            }
            if not procs:
                return {}
            launcher = min(procs, key=lambda p: (_start_time(p), p))
            return {p: c for p, c in procs.items() if p != launcher}

        deadline = time.monotonic() + timeout
        while (found := extra()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return found

    def kill_popens(self) -> None:
        for proc in self.popens:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)
        self.popens.clear()

    def reset(self, busybox_tar: Path | None) -> list[str]:
        """Back to "busybox:latest and nothing else"; return what leaked."""
        self.kill_popens()
        problems = self.remove_all_containers()
        left = self.container_ids()
        if left:
            problems.append(f"containers still listed after rm -f: {left}")
        # Every container was removed, so nothing may still run in its cgroups.
        stray = cgroup_pids(self.cgroup_parent)
        if stray:
            problems.append(
                "processes still in the containers' cgroups after rm -f: "
                + ", ".join(f"{p} ({_cmdline(p)!r})" for p in sorted(stray))
            )
        shims = self.lingering_shims()
        if shims:
            problems.append(
                "shims still running after their containers were removed: "
                + ", ".join(f"{p} ({c!r})" for p, c in sorted(shims.items()))
            )
        for img in self.images():
            if img.id != self.base_image_id:
                try:
                    self.remove_image(img.id)
                except Exception as exc:  # noqa: BLE001
                    # Gone already: an rmi before it took it (a build's intermediate
                    # images go with the image built on them, as with docker).
                    if "NOT_FOUND" not in str(exc):
                        problems.append(f"rmi -f {img.id}: {exc}")
            elif "busybox:latest" not in img.repo_tags and busybox_tar is not None:
                self.remove_image(img.id)
            else:
                for tag in img.repo_tags:
                    if tag != "busybox:latest":
                        self.remove_image(tag, force=False)  # only untags: busybox:latest still names it
        for net in self.user_networks():
            try:
                self.cli_ok("network", "rm", net)
            except AssertionError as exc:
                problems.append(f"network rm {net}: {exc}")
        if self.netns:
            problems += self.network_leaks()
        problems += self.remove_volumes()
        if busybox_tar is not None and not any(
            "busybox:latest" in img.repo_tags for img in self.images()
        ):
            self.base_image_id = self.import_image(busybox_tar, "busybox:latest", BASE_CHANGES)
        return problems

    def remove_volumes(self) -> list[str]:
        """Remove every volume; what is still mounted under the volumes then leaked."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        problems = []
        for name in self.cli_ok("volume", "ls", "-q").split():
            result = self.cli("volume", "rm", name)
            if result.returncode != 0:
                problems.append(f"volume rm {name}: {result.stderr.strip()}")
        mounted = mounts_under(self.root / "volumes")
        if mounted:
            problems.append(f"volume mounts left with no container running: {mounted}")
        return problems

    def user_networks(self) -> list[str]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        try:
            out = self.cli_ok("network", "ls", "--filter", "type=custom", "-q")
        except AssertionError:
            return []
        return out.split()

    def teardown(self) -> list[str]:
        """Remove everything this daemon and its containers made; return what leaked."""
        problems: list[str] = []
        self.kill_popens()
        if self.proc is not None and self.proc.poll() is None:
            try:
                problems += self.remove_all_containers()
            except Exception as exc:  # noqa: BLE001
                problems.append(f"could not list containers to remove them: {exc}")
            for net in self.user_networks():
                if self.cli("network", "rm", net).returncode != 0:
                    problems.append(f"cannot remove network {net}")
            problems += self.remove_volumes()
            if self.netns:
                problems += self.network_leaks()
            try:
                self.stop()
            except AssertionError as exc:
                problems.append(str(exc))
        self._close_channel()

        # Container processes: whatever is still in this daemon's cgroups.
        stray = cgroup_pids(self.cgroup_parent)
        if stray:
            problems.append(
                "container processes left running: "
                + ", ".join(f"{p} ({_cmdline(p)!r})" for p in sorted(stray))
            )
        # The shim launcher outlives the daemon by design; shims of removed containers don't.
        shims = self.lingering_shims(timeout=2.0)
        helpers = pids_mentioning(str(self.base))
        if shims:
            problems.append(
                "shims left running after their containers were removed: "
                + ", ".join(f"{p} ({c!r})" for p, c in sorted(shims.items()))
            )
        for pid in stray | set(helpers):
            _kill(pid)
        left = _wait_gone(stray | set(helpers), 10)
        if left:
            problems.append(f"could not kill {sorted(left)}")

        mounted = mounts_under(self.base)
        if mounted:
            problems.append(f"mounts left behind: {mounted}")
        # Deepest first, so a mount on top of another comes off before the one below it.
        for mount_point in sorted(mounted, key=len, reverse=True):
            _lazy_unmount(mount_point)

        for directory in cgroup_dirs(self.cgroup_parent):
            freezer = directory / "freezer.state"
            if freezer.exists():
                try:
                    freezer.write_text("THAWED")
                except OSError:
                    pass
            for attempt in range(50):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if attempt == 49:
                        problems.append(f"cannot remove cgroup {directory}: {exc}")
                    time.sleep(0.1)
        shutil.rmtree(self.base, ignore_errors=True)
        if self.base.exists():
            problems.append(f"cannot remove {self.base}")
        if self.netns:
            # Its bridges, veths and rules go with it.
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, timeout=30)
        return problems


#: The embedded DNS resolver's process (one per daemon, outlives it by design).
RESOLVER_MODULE = "pallet.daemon.networks.resolver"

#: Config changes the test image is imported with (docker's `import -c` form).
BASE_CHANGES = ('CMD ["sh"]',)


def _grpc_code(exc: BaseException) -> str:
    """The gRPC status code name of an RPC error, "" for anything else."""
    code = getattr(exc, "code", None)
    if not callable(code):
        return ""
    try:
        return str(code().name)
    except Exception:  # noqa: BLE001 - not an RPC error after all
        return ""


#: The real Docker CLI (28.x here), the client the Docker API tests drive.
DOCKER_CLI = shutil.which("docker") or "/usr/local/bin/docker"


def _cli_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PALLET_HOST"}
    env.update(extra or {})
    return env


def new_palletd(host_loopback: bool = False) -> Palletd:
    """A daemon in a throwaway network namespace of its own; with `host_loopback` (tests
    that talk to registries on the host's 127.0.0.1) in the host's, with --bridge none, so
    it makes no bridge, rule or sysctl there."""
    # Short paths under /tmp: a unix socket path must stay under 108 bytes.
    base = Path(tempfile.mkdtemp(prefix="plt-", dir="/tmp"))
    tag = secrets.token_hex(4)
    if host_loopback:
        return Palletd(base=base, cgroup_parent=f"pallet-test-{tag}",
                       extra_args=["--bridge", "none"])
    netns = f"plt-{tag}"
    subprocess.run(["ip", "netns", "add", netns], check=True, timeout=30)
    # Loopback up, as on any host: published ports on 127.0.0.1 are reached through it.
    subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True, timeout=30)
    return Palletd(base=base, cgroup_parent=f"pallet-test-{tag}", netns=netns)


def _finish(daemon: Palletd) -> None:
    problems = daemon.teardown()
    if problems:
        LEAK_REPORTS.extend(f"{daemon.base}: {p}" for p in problems)
        pytest.fail("teardown found leaks:\n  " + "\n  ".join(problems), pytrace=False)


# --------------------------------------------------------------------------- fixtures


def _host_loopback(request: pytest.FixtureRequest) -> bool:
    """A test module that reaches servers on the host's loopback says so."""
    return bool(getattr(request.module, "PALLETD_ON_HOST_LOOPBACK", False))


@pytest.fixture(scope="module")
def module_palletd(busybox_tar: Path, request: pytest.FixtureRequest) -> Iterator[Palletd]:
    """One daemon (with busybox:latest imported) shared by the tests of a module."""
    daemon = new_palletd(_host_loopback(request))
    try:
        daemon.start()
        daemon.base_image_id = daemon.import_image(busybox_tar, "busybox:latest", BASE_CHANGES)
        yield daemon
    finally:
        _finish(daemon)


@pytest.fixture
def palletd(module_palletd: Palletd, busybox_tar: Path, request: pytest.FixtureRequest) -> Iterator[Palletd]:
    """The module's daemon, reset after the test: its containers and images removed."""
    request.node.palletd_under_test = module_palletd
    if module_palletd.proc is None or module_palletd.proc.poll() is not None:
        module_palletd.start()
    yield module_palletd
    if module_palletd.proc is None or module_palletd.proc.poll() is not None:
        module_palletd.start()  # a test stopped it; the next test needs it back
    problems = module_palletd.reset(busybox_tar)
    if problems:
        LEAK_REPORTS.extend(f"{request.node.nodeid}: {p}" for p in problems)
        pytest.fail("test left things behind:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture
def image(palletd: Palletd) -> str:
    """`busybox:latest`, imported from the busybox rootfs tar into the test's daemon."""
    assert palletd.base_image_id
    return "busybox:latest"


@pytest.fixture(scope="module")
def registry() -> Iterator[Any]:
    """A real registry (Debian's docker-registry) on loopback, for the module's tests."""
    from registry_harness import start_registry

    reg = start_registry()
    yield reg
    reg.stop()


@pytest.fixture
def fresh_palletd(busybox_tar: Path, request: pytest.FixtureRequest) -> Iterator[Palletd]:
    """A daemon of the test's own (for tests that stop or restart it), with busybox:latest."""
    daemon = new_palletd(_host_loopback(request))
    request.node.palletd_under_test = daemon
    try:
        daemon.start()
        daemon.base_image_id = daemon.import_image(busybox_tar, "busybox:latest", BASE_CHANGES)
        yield daemon
    finally:
        _finish(daemon)


@pytest.fixture
def palletd_factory(
    busybox_tar: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[], Palletd]]:
    """Make started daemons (with busybox:latest) whose teardown the test drives itself;
    any the test did not tear down are torn down (and their leaks reported) afterwards."""
    made: list[Palletd] = []

    def make() -> Palletd:
        daemon = new_palletd(_host_loopback(request))
        made.append(daemon)
        daemon.start()
        daemon.base_image_id = daemon.import_image(busybox_tar, "busybox:latest", BASE_CHANGES)
        return daemon

    yield make
    problems = [p for daemon in made if daemon.base.exists() for p in daemon.teardown()]
    if problems:
        pytest.fail("teardown found leaks:\n  " + "\n  ".join(problems), pytrace=False)


# --------------------------------------------------------------------------- reporting


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None]:
    report: Any = yield
    daemon = getattr(item, "palletd_under_test", None)
    if report.failed and daemon is not None:
        report.sections.append(("palletd log (last lines)", daemon.log_tail(40)))
    return report  # type: ignore[no-any-return]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if LEAK_REPORTS:
        terminalreporter.section("LEAKS found by the integration harness", sep="!", red=True)
        for line in LEAK_REPORTS:
            terminalreporter.line(line, red=True)


# ---- processes, as the host sees them


def parent_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no PPid for {pid}")


def container_cgroup_pids(palletd: Any, cid: str) -> set[int]:
    """The pids in the container's cgroups (every hierarchy)."""
    pids: set[int] = set()
    for directory in palletd.container_cgroups(cid):
        try:
            pids.update(int(x) for x in (directory / "cgroup.procs").read_text().split())
        except OSError:
            pass
    return pids


def gone(pid: int) -> bool:
    """Whether `pid` has exited (gone, or a zombie nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")
