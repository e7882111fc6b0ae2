"""The identity of a process about to exec, and the exec itself.

Owns: the steps that give a container's init or an exec process its user and groups (as
the image's passwd and group files say), capabilities, no_new_privileges, parent-death
signal, resource limits, seccomp filter and working directory, exactly as its `Process`
(and the container's `linux.seccomp`) says (an init's missing working
directory is made, as docker does; an exec's fails it, as runc does); then finding the program
(Go's LookPath, what docker's runtime uses) and exec'ing it with docker's error wording.
Must not: fill in anything the `Process` leaves out but HOME (only the image's passwd
knows it, as in runc); every kernel call goes through `Syscalls`.
"""

from __future__ import annotations

import errno
import os
import signal
import stat

from pallet.shim import caps
from pallet.shim import syscalls as sc
from pallet.shim.api.spec import Process
from pallet.shim.steps import ExecFailed, Step
from pallet.shim.syscalls import Syscalls
from pallet.shim.users import ExecUser, resolve_groups, resolve_user

# <sys/resource.h>'s numbers for the names the spec's rlimits use.
RLIMITS: dict[str, int] = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4, "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
_RLIM_INFINITY = (1 << 64) - 1


class ProcessSetup:
    """Identity, privileges and working directory of a process about to exec.

    It does what `process` says and nothing more: no capabilities means none, and the
    environment is the daemon's, but for HOME, which only the image's passwd knows.
    `is_exec` says it is an exec process, not the container's init; `seccomp` is the
    container's filter (a BPF program; empty: none), the same for its init and execs.
    """

    def __init__(
        self, sys: Syscalls, process: Process, *, is_exec: bool, seccomp: bytes = b""
    ) -> None:
        self.sys = sys
        self.process = process
        self.seccomp = seccomp
        self.is_exec = is_exec
        self.cwd = process.cwd
        self.cap_mask = caps.mask_of(process.capabilities)
        self.env = list(process.env)
        self.user: ExecUser | None = None

    def steps(self) -> list[Step]:
        # As root, before the user switch: docker creates an init's missing working
        # directory; an exec's is not made (`docker exec -w /missing` fails, exit 126).
        make_workdir = [] if self.is_exec else [Step("make workdir", self.make_workdir)]
        rlimits = [Step("set rlimits", self.set_rlimits)] if self.process.rlimits else []
        seccomp = [Step("install seccomp", self.install_seccomp)] if self.seccomp else []
        nnp = self.process.no_new_privileges
        return [
            # Inside the container's root: the image's passwd, not the host's.
            Step("resolve user", self.resolve_user),
            *make_workdir,
            # As root, before the uid change: a raised hard limit needs CAP_SYS_RESOURCE.
            *rlimits,
            # Keep the permitted set across the uid change; capset below trims it.
            Step("keep caps", lambda: self.sys.prctl(sc.PR_SET_KEEPCAPS, 1)),
            # Needs CAP_SETPCAP in the effective set, so before capset lowers it.
            Step("drop bounding set", self.drop_bounding_set),
            # Without no_new_privs the kernel takes a filter only from a process with
            # CAP_SYS_ADMIN: so here, while still root with every effective capability
            # (as runc does); the calls below (setgroups, setresuid, capset, prctl, chdir,
            # execve) must then be ones the filter allows, as Docker's profile does.
            *([] if nnp else seccomp),
            # Groups before the uid: a non-root uid loses CAP_SETGID.
            Step("set groups", self.set_groups),
            Step("set gid", lambda: self.sys.setresgid(self._user.gid)),
            Step("set uid", lambda: self.sys.setresuid(self._user.uid)),
            # After setresuid, which clears the effective set of a non-root user.
            Step("set capabilities", self.set_capabilities),
            Step("clear ambient", lambda: self.sys.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)),
            Step("set no_new_privs", self.set_no_new_privs),
            # After the uid/gid change, which clears the parent-death signal: a shim killed
            # with -9 takes its container with it instead of leaving it unsupervised (an
            # init's death ends its pid namespace, so exec'd processes go too). A shim that
            # died before this point is seen as EOF on the start pipe, and the init exits.
            Step("die with the shim", lambda: self.sys.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)),
            # As the user, so a directory the user cannot enter fails like in docker.
            Step("enter workdir", self.enter_workdir),
            # With no_new_privs, last: as few of our own calls as possible run under it.
            *(seccomp if nnp else []),
        ]

    @property
    def _user(self) -> ExecUser:
        assert self.user is not None, "resolve user runs first"
        return self.user

    def resolve_user(self) -> None:
        self.user = resolve_user(
            self.process.user, _read_text("/etc/passwd"), _read_text("/etc/group")
        )
        # As runc does: the user's home from the image's passwd, unless the env has one.
        if not any(e.startswith("HOME=") for e in self.env):
            self.env.append(f"HOME={self.user.home}")

    def make_workdir(self) -> None:
        os.makedirs(self.cwd, mode=0o755, exist_ok=True)

    def enter_workdir(self) -> None:
        try:
            os.chdir(self.cwd)
        except OSError as exc:
            if not self.is_exec:
                raise  # the init's start fails, naming the step
            # runc's wording and docker's exit code for an exec that cannot start.
            reason = (exc.strerror or str(exc)).lower()
            raise ExecFailed(126, f'chdir to cwd ("{self.cwd}") failed: {reason}') from None

    def drop_bounding_set(self) -> None:
        for number in range(caps.last_cap() + 1):
            if not self.cap_mask & (1 << number):
                self.sys.prctl(sc.PR_CAPBSET_DROP, number)

    def set_groups(self) -> None:
        gids = list(self._user.additional_gids)
        if self.process.additional_groups:
            extra = resolve_groups(self.process.additional_groups, _read_text("/etc/group"))
            gids += [g for g in extra if g not in gids]
        self.sys.setgroups(gids)

    def set_rlimits(self) -> None:
        for limit in self.process.rlimits:
            soft = _RLIM_INFINITY if limit.soft < 0 else limit.soft
            hard = _RLIM_INFINITY if limit.hard < 0 else limit.hard
            try:
                self.sys.setrlimit(RLIMITS[limit.type], soft, hard)
            except (OSError, ValueError) as exc:
                raise OSError(
                    getattr(exc, "errno", None) or errno.EINVAL,
                    f"cannot set {limit.type} to {limit.soft}:{limit.hard}: {exc}",
                ) from None

    def install_seccomp(self) -> None:
        self.sys.seccomp_filter(self.seccomp)

    def set_capabilities(self) -> None:
        # Inheritable stays empty, as in Docker since CVE-2022-24769: otherwise a non-root
        # user could regain capabilities through a file with inheritable file caps.
        self.sys.capset(self.cap_mask, self.cap_mask, 0)

    def set_no_new_privs(self) -> None:
        if self.process.no_new_privileges:
            self.sys.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def find_executable(name: str, env: list[str]) -> str:
    """Look `name` up like Go's exec.LookPath (what docker's runtime uses)."""
    if "/" in name:
        try:
            st = os.stat(name)
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            raise ExecFailed(127, f'exec: "{name}": stat {name}: {reason}') from None
        if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
            raise ExecFailed(126, f'exec: "{name}": permission denied')
        return name
    # No PATH, no search (as Go's LookPath): the daemon puts docker's default PATH in env.
    path_value = next((e[5:] for e in reversed(env) if e.startswith("PATH=")), "")
    if not path_value:
        raise ExecFailed(127, f'exec: "{name}": executable file not found in $PATH')
    for directory in path_value.split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return candidate
    raise ExecFailed(127, f'exec: "{name}": executable file not found in $PATH')


def exec_process(args: tuple[str, ...], env: list[str]) -> None:
    """Replace this process with the container's program; raise ExecFailed if impossible."""
    if not args:
        raise ExecFailed(127, "exec: no command given")
    path = find_executable(args[0], env)
    # Python ignores these two; an ignored signal stays ignored across exec.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    os.umask(0o022)
    try:
        os.execve(path, list(args), dict(e.split("=", 1) for e in env if "=" in e))
    except OSError as exc:
        code = 127 if exc.errno == errno.ENOENT else 126
        raise ExecFailed(code, f'exec: "{args[0]}": {(exc.strerror or str(exc)).lower()}') from None
