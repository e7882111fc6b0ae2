"""Pseudo-terminals for the container's processes (docker's `run -t`, `exec -t`).

Owns: both halves of how a process gets its terminal, as runc does it. In the child,
once it is inside the container's mount namespace (the init: after pivot_root; an exec:
after its setns), `open_console` opens a pty of the container's own devpts instance
(/dev/ptmx -> pts/ptmx, so `tty` in the container says /dev/pts/0 and the host's ptys
stay invisible), sends the master to the shim over the console socket (SCM_RIGHTS),
binds the slave over /dev/console (the init only, as runc does), makes the slave its
stdin, stdout and stderr and its controlling terminal (TIOCSCTTY: the child is a session
leader already, see `pallet.shim.processes`). In the shim, `receive_console` takes the
master and `set_window_size` resizes it (TIOCSWINSZ: the kernel sends SIGWINCH to the
terminal's foreground process group). Must not: read or write the terminal's data
(`pallet.shim.output` does, as it does pipes) or keep any fd open in the child past its
exec but the slave on 0-2.
"""

from __future__ import annotations

import array
import errno
import fcntl
import os
import socket
import struct
import termios

from pallet.v1.errors import FailedPrecondition, InvalidArgument
from pallet.shim import syscalls as sc
from pallet.shim.syscalls import Syscalls

# How long the shim waits for an exec's master: the exec only enters a few namespaces
# first; a child that dies on the way closes its end, so this is for a hung setns only.
RECEIVE_TIMEOUT = 10.0
CONSOLE = "/dev/console"
MAX_SIZE = 65535  # a window's rows and columns are unsigned shorts


def console_socketpair() -> tuple[int, int]:
    """(the shim's end, the child's end) of the socket the master fd is sent over."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return parent.detach(), child.detach()  # close-on-exec both, like os.pipe's


# -- in the child, between fork and exec ------------------------------------------------


def open_console(
    console_fd: int, sys: Syscalls, *, mount_console: bool, size: tuple[int, int] = (0, 0)
) -> None:
    """Make a pty of the container's devpts this process's terminal; hand the master over."""
    # openpty opens /dev/ptmx and the slave by the path it names, both looked up in the
    # mount namespace and root we are in now: the container's.
    master, slave = os.openpty()
    if all(size):
        # Before the program runs: what it reads first is the client's window.
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    try:
        sock = socket.socket(fileno=console_fd)
        try:
            socket.send_fds(sock, [b"t"], [master])
        finally:
            sock.close()
    finally:
        os.close(master)
    if mount_console:
        # docker's containers have the init's terminal at /dev/console too (runc binds it).
        slave_path = os.ttyname(slave)
        fd = os.open(CONSOLE, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        os.close(fd)
        sys.mount(slave_path, CONSOLE, "", sc.MS_BIND, "")
    for target in (0, 1, 2):
        os.dup2(slave, target)
    os.close(slave)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


# -- in the shim ------------------------------------------------------------------------


def receive_console(console_fd: int, timeout: float = RECEIVE_TIMEOUT) -> int:
    """The master a child sent on `console_fd` (closed here); -1 when the child ended
    before sending one (its failure is reported on its status pipe)."""
    sock = socket.socket(fileno=console_fd)
    try:
        sock.settimeout(timeout)
        try:
            _, fds, _, _ = socket.recv_fds(sock, 16, 4)
        except (TimeoutError, OSError):
            return -1
    finally:
        sock.close()
    for extra in fds[1:]:
        os.close(extra)
    if not fds:
        return -1
    os.set_inheritable(fds[0], False)
    return fds[0]


def check_size(height: int, width: int) -> None:
    for name, value in (("height", height), ("width", width)):
        if not 0 < value <= MAX_SIZE:
            raise InvalidArgument(f"invalid terminal {name} {value}: use 1 to {MAX_SIZE}")


def set_window_size(master: int, height: int, width: int) -> None:
    check_size(height, width)
    try:
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
    except OSError as exc:
        if exc.errno in (errno.EBADF, errno.EIO, errno.ENOTTY):
            raise FailedPrecondition("the terminal is closed: its process has ended") from None
        raise


def window_size(master: int) -> tuple[int, int]:
    """(rows, columns) of a terminal."""
    buf = array.array("H", [0, 0, 0, 0])
    fcntl.ioctl(master, termios.TIOCGWINSZ, buf)
    return buf[0], buf[1]
