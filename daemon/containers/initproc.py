"""`--init`: a small init (tini) as the container's PID 1, running the user's command.

Owns: finding the init binary on the host (palletd's `--init-path`, else `tini-static` or
`docker-init`, as docker's `LookupInitPath` looks for docker-init), the read-only bind
mount that puts it in the container at /sbin/docker-init (docker's path), and the argv
that runs it: `/sbin/docker-init -- <the container's command>`. Must not: change what
inspect shows as Path and Args (the user's command, as docker shows it), or run anything.

What --init adds, given that pallet-shim is already a subreaper (PR_SET_CHILD_SUBREAPER):

- The shim sits *outside* the container's pid namespace. Inside it, the kernel re-parents
  an orphan (a process whose parent exited: `sh -c 'sleep 1 &'`, a daemon that
  double-forks, a worker whose supervisor died) to the namespace's PID 1, never to the
  shim. The shim only inherits what is left when PID 1 itself dies (the kernel then kills
  the namespace). So while the container runs, orphans' exit statuses are the business of
  its PID 1 alone, and a plain `sh`, a JVM or a Python app as PID 1 never calls wait() for
  children it did not start: each one stays a zombie, holding a pid (and a slot of
  --pids-limit) until the container ends. tini reaps every child, its own or adopted.
- PID 1 of a pid namespace gets no default signal actions: a signal it has no handler for
  is dropped (SIGKILL and SIGSTOP from the outside excepted). An app that installs no
  SIGTERM handler ignores `pallet stop` as PID 1 and is SIGKILLed after the timeout
  (exit 137, and no chance to clean up). tini is PID 1 instead: it forwards every signal
  it gets (SIGTERM, SIGINT, SIGHUP, SIGUSR1, ...) to the command, which is then an ordinary
  process with the default actions, so SIGTERM ends it at once (exit 143, which tini
  passes on as its own exit code).

A missing init binary is refused at create (FAILED_PRECONDITION, saying how to get one),
and again at each start (the binary may have gone since).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pallet.shim.api.spec import Mount
from pallet.v1.errors import FailedPrecondition

#: Where the init is in the container (docker's: /sbin/ + its DefaultInitBinary).
IN_CONTAINER_PATH = "/sbin/docker-init"
#: Names looked for when palletd has no --init-path: Debian's `tini` package's static build
#: (a container's image has none of the host's libraries), then docker's own copy of tini.
DEFAULT_NAMES = ("tini-static", "docker-init")
#: Where docker's packages put docker-init (FHS libexec directories), before $PATH.
_LIBEXEC = ("/usr/local/libexec/docker", "/usr/libexec/docker", "/usr/local/lib/docker",
            "/usr/lib/docker")


def find_init(init_path: str = "") -> Path:
    """The init binary on the host: `init_path` (a path, or a name looked up as the
    defaults are), else the first of DEFAULT_NAMES found. FailedPrecondition when none is."""
    names = (init_path,) if init_path else DEFAULT_NAMES
    for name in names:
        found = _lookup(name)
        if found is not None:
            return found
    if init_path:
        raise FailedPrecondition(
            f"--init: the init binary {init_path!r} (palletd --init-path) is not an "
            "executable file on the daemon's host: install it there, or start palletd "
            "with another --init-path"
        )
    raise FailedPrecondition(
        "--init needs an init binary on the daemon's host and there is none (looked for "
        f"{' and '.join(DEFAULT_NAMES)}): install tini there (Debian: apt-get install "
        "tini), or start palletd with --init-path pointing at a statically linked init"
    )


def _lookup(name: str) -> Path | None:
    if "/" in name:
        path = Path(name)
        return path.absolute() if _executable(path) else None
    for directory in _LIBEXEC:
        candidate = Path(directory, name)
        if _executable(candidate):
            return candidate
    found = shutil.which(name)
    return Path(found).absolute() if found else None


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def init_mount(binary: Path) -> Mount:
    """The host's init, read-only at IN_CONTAINER_PATH (made there if the image has no
    /sbin: the shim makes missing mount points)."""
    return Mount(destination=IN_CONTAINER_PATH, type="bind", source=str(binary),
                 options=("bind", "ro", "rprivate"))


def init_args(args: tuple[str, ...]) -> tuple[str, ...]:
    """The init's argv: it runs `args` as its child (`--`: none of them is its option)."""
    return (IN_CONTAINER_PATH, "--", *args)
