"""The stdio plan: the child gets its ends, the shim keeps its own, nothing leaks."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from pallet.shim.api import wire
from pallet.shim.stdio import StdioPlan

SHIMS = Path(__file__).resolve().parents[2] / "shims"


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def test_the_child_closes_every_end_of_the_shim() -> None:
    plan = StdioPlan(stdin=True, start_gate=True)
    stdio = plan.child_stdio(close_also=[99])
    parent = {plan.stdout_r, plan.stderr_r, plan.stdin_w, plan.status_r, plan.cgroup_w, plan.start_w}
    child = {stdio.stdin, stdio.stdout, stdio.stderr, stdio.status_w, stdio.cgroup_r, stdio.start_r}
    assert set(stdio.close_in_child) == parent | {99}
    assert not parent & child and len(child) == 6
    plan.close()
    assert not any(_is_open(fd) for fd in parent | child)


def test_after_the_fork_the_shim_keeps_only_its_ends() -> None:
    plan = StdioPlan(stdin=False)
    assert plan.stdin_w == -1 and plan.start_w == -1 and plan.start_r == -1
    stdio = plan.child_stdio()
    pid = os.fork()
    if pid == 0:  # the child: what fork_init/fork_exec do with ChildStdio, in short
        try:
            for fd in stdio.close_in_child:
                os.close(fd)
            os.write(stdio.stdout, b"out")
            os.write(stdio.stderr, b"err")
        finally:
            os._exit(0)
    plan.forked()
    assert not any(_is_open(fd) for fd in (stdio.stdin, stdio.stdout, stdio.stderr, stdio.status_w))
    outputs = plan.outputs()
    assert outputs == {plan.stdout_r: wire.STDOUT, plan.stderr_r: wire.STDERR}
    os.waitpid(pid, 0)
    for fd, expected in ((plan.stdout_r, b"out"), (plan.stderr_r, b"err")):
        assert os.read(fd, 10) == expected
        # EOF: no write end is left open anywhere, the shim's copies included.
        assert os.read(fd, 10) == b""
        os.close(fd)
    os.close(plan.status_r)
    os.close(plan.cgroup_w)


def test_a_plan_that_cannot_open_every_pipe_closes_the_ones_it_opened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[int] = []
    real_pipe = os.pipe

    def pipe() -> tuple[int, int]:
        if len(opened) >= 6:
            raise OSError(24, "Too many open files")
        r, w = real_pipe()
        opened.extend((r, w))
        return r, w

    monkeypatch.setattr(os, "pipe", pipe)
    with pytest.raises(OSError, match="Too many open files"):
        StdioPlan(stdin=True, start_gate=True)
    assert opened and not any(_is_open(fd) for fd in opened)


@pytest.mark.parametrize("module", ["children.py", "states.py"])
def test_the_shims_model_modules_depend_on_nothing_else_in_the_package(module: str) -> None:
    tree = ast.parse((SHIMS / module).read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    ours = {m for m in imported if m.startswith("pallet.shim") and not m.startswith("pallet.shim.api")}
    assert ours == set()


def test_a_terminal_plan_takes_the_master_the_child_sends() -> None:
    import socket

    from pallet.shim.tty import set_window_size, window_size

    plan = StdioPlan(stdin=True, terminal=True)
    stdio = plan.child_stdio()
    assert stdio.console_w >= 0 and plan.console_r in stdio.close_in_child
    assert plan.stdout_r == plan.stderr_r == plan.stdin_w == -1  # until the master comes
    master, slave = os.openpty()
    pid = os.fork()
    if pid == 0:  # the child's half, as `pallet.shim.tty.open_console` sends it
        try:
            socket.send_fds(socket.socket(fileno=stdio.console_w), [b"t"], [master])
        finally:
            os._exit(0)
    plan.forked()
    os.waitpid(pid, 0)
    os.close(master)
    plan.take_console(timeout=5)
    assert plan.console >= 0 and plan.console_r == -1
    outputs = plan.outputs()
    assert list(outputs.values()) == [wire.STDOUT]  # one stream: a terminal's is stdout
    os.write(slave, b"x")
    (out,) = outputs
    assert os.read(out, 10) == b"x"
    os.write(plan.stdin_w, b"typed\n")
    assert os.read(slave, 100) == b"typed\n"
    set_window_size(plan.console, 33, 101)
    assert window_size(slave) == (33, 101)
    for fd in (out, plan.stdin_w, plan.console, slave, plan.status_r, plan.cgroup_w):
        os.close(fd)


def test_a_child_that_sends_no_master_leaves_no_output() -> None:
    plan = StdioPlan(stdin=False, terminal=True)
    stdio = plan.child_stdio()
    plan.forked()  # the child's end is closed here: as a child that died before sending
    del stdio
    plan.take_console(timeout=5)
    assert plan.console == -1 and plan.outputs() == {}
    os.close(plan.status_r)
    os.close(plan.cgroup_w)
