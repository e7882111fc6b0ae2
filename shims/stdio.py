"""The pipes between the shim and a child it forks, made one way for init and exec alike.

Owns: `StdioPlan`, which opens the child's stdio (pipes for stdout and stderr, a pipe or
/dev/null for stdin) and its control pipes (the status pipe, the cgroup go-ahead and, for
the container's init, the start go-ahead); hands the child its ends (`child_stdio`, with
every parent end on the list it closes); closes the child's ends in the shim once the
fork is done; and prepares the shim's output ends (non-blocking, 1 MiB). A terminal (a
pty instead of three pipes) is one more way to make these ends, here and nowhere else.
Must not: fork, read or write the pipes' data (`pallet.shim.output` and the status reader
of `pallet.shim.processes` do).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable

from pallet.shim import tty
from pallet.shim.api import wire
from pallet.shim.processes import ChildStdio

# Output pipes hold this much (the default is 64 KiB): a writer keeps going while the
# shim is busy, and each read takes more at once. 1 MiB is /proc/sys/fs/pipe-max-size's
# default, the most a process without CAP_SYS_RESOURCE may ask for.
OUTPUT_PIPE_SIZE = 1 << 20


class StdioPlan:
    """Every pipe one child needs, until the shim has forked it and taken its own ends.

    After `forked()` the shim owns the parent ends (`stdout_r`, `stderr_r`, `stdin_w`,
    `status_r`, `cgroup_w`, `start_w`); until then `close()` closes everything, so a
    failed fork leaves nothing open.
    """

    def __init__(self, *, stdin: bool, start_gate: bool = False, terminal: bool = False) -> None:
        self._child: list[int] = []  # the ends the child keeps (closed here after the fork)
        self._parent: list[int] = []  # the ends the shim keeps (closed in the child)
        self._stdin = stdin
        self.terminal = terminal
        # A terminal: the child sends its pty's master on this socket (`pallet.shim.tty`),
        # and until it opened the pty its stdio is /dev/null. `take_console` makes the
        # master the output end and, with stdin, the stdin end.
        self.console_r = self.console_w = -1
        self.console = -1
        try:
            self.status_r, self.status_w = self._pipe(child_reads=False)
            self.cgroup_r, self.cgroup_w = self._pipe(child_reads=True)
            self.start_r, self.start_w = self._pipe(child_reads=True) if start_gate else (-1, -1)
            if terminal:
                self.console_r, self.console_w = tty.console_socketpair()
                self._parent.append(self.console_r)
                self._child.append(self.console_w)
                self.stdout_r = self.stderr_r = self.stdin_w = -1
                self.stdin_r = self.stdout_w = self.stderr_w = self._devnull(os.O_RDWR)
            else:
                self.stdout_r, self.stdout_w = self._pipe(child_reads=False)
                self.stderr_r, self.stderr_w = self._pipe(child_reads=False)
                if stdin:
                    self.stdin_r, self.stdin_w = self._pipe(child_reads=True)
                else:
                    # Reads see EOF at once, as docker's containers without -i do.
                    self.stdin_r, self.stdin_w = self._devnull(os.O_RDONLY), -1
        except BaseException:
            self.close()
            raise

    def _devnull(self, flags: int) -> int:
        fd = os.open(os.devnull, flags | os.O_CLOEXEC)
        self._child.append(fd)
        return fd

    def _pipe(self, *, child_reads: bool) -> tuple[int, int]:
        r, w = os.pipe()  # close-on-exec both: the child's ends are dup2'd onto 0-2 or closed
        self._child.append(r if child_reads else w)
        self._parent.append(w if child_reads else r)
        return r, w

    def child_stdio(self, close_also: Iterable[int] = ()) -> ChildStdio:
        """The child's ends, and every other fd of ours it must close before anything else."""
        return ChildStdio(
            stdin=self.stdin_r,
            stdout=self.stdout_w,
            stderr=self.stderr_w,
            status_w=self.status_w,
            cgroup_r=self.cgroup_r,
            start_r=self.start_r,
            console_w=self.console_w,
            close_in_child=[*self._parent, *close_also],
        )

    def forked(self) -> None:
        """In the shim, after the fork: the child has its ends, close our copies."""
        for fd in self._child:
            os.close(fd)
        self._child.clear()
        self._parent.clear()  # the shim's now, closed with the process they belong to

    def close(self) -> None:
        """Close every end not yet handed over (the fork failed, or never happened)."""
        for fd in (*self._child, *self._parent):
            os.close(fd)
        self._child.clear()
        self._parent.clear()

    def take_console(self, timeout: float = tty.RECEIVE_TIMEOUT) -> None:
        """In the shim, after the fork: receive the terminal's master from the child.

        The output end reads a copy of it and stdin (with -i) writes another, so each
        closes on its own; `console` itself stays for resizes. A child that ended before
        it sent one leaves no output end at all (it reports why on its status pipe).
        """
        if self.console_r < 0:
            return
        fd, self.console_r = self.console_r, -1
        self.console = tty.receive_console(fd, timeout)
        if self.console < 0:
            return
        self.stdout_r = os.dup(self.console)
        if self._stdin:
            self.stdin_w = os.dup(self.console)

    def close_console(self) -> None:
        """A terminal's ends, before a `Process` owns them (the child failed)."""
        for name in ("console_r", "console", "stdout_r", "stdin_w"):
            fd = getattr(self, name)
            if fd >= 0 and self.terminal:
                os.close(fd)
                setattr(self, name, -1)

    def outputs(self) -> dict[int, int]:
        """The shim's output ends, by the stream each carries, ready for the selector."""
        if self.terminal:
            # A terminal has one stream: docker's logs show a tty's output as stdout.
            if self.stdout_r < 0:
                return {}
            os.set_blocking(self.stdout_r, False)
            return {self.stdout_r: wire.STDOUT}
        outputs = {self.stdout_r: wire.STDOUT, self.stderr_r: wire.STDERR}
        for fd in outputs:
            os.set_blocking(fd, False)
            _enlarge_pipe(fd)
        return outputs


def _enlarge_pipe(fd: int) -> None:
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, OUTPUT_PIPE_SIZE)
    except OSError:
        pass  # a lower pipe-max-size or the user's pipe quota: the default size works too
