"""Terminals end to end: `run -it`, resize, detach and attach, `exec -it`, signals.

Owns: driving the real `pallet` CLI on a real pseudo-terminal (pexpect) against a real
palletd and busybox containers, and checking what a person at that terminal sees: the
shell's echo, Ctrl-C ending `sleep`, `stty size` after a resize, the detach keys leaving
the container running, `attach` seeing its output again (two at once), the terminal's
modes as they were after the CLI exits, signals forwarded without a terminal, a palletd
restart under a terminal session, a large output whole and in order on the terminal and
in the log (also when it flows while palletd is dead), and every bad input's error.
Must not: time anything (bench/tty.py does).
"""

from __future__ import annotations

import fcntl
import os
import shlex
import signal
import subprocess
import struct
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pexpect.fdpexpect
import pytest

from pallet.shim.api.logs import read_records
from tests.integration.conftest import Palletd, wait_for

TIMEOUT = 30


class Terminal:
    """A program on a pseudo-terminal of its own, as a person's shell would run it.

    Started with subprocess (posix_spawn/vfork: no fork of this process, whose grpc
    threads must not run fork handlers in the child) under `setsid -c`, which makes the
    pty its controlling terminal; read and written through pexpect on the master.
    """

    def __init__(self, argv: list[str], rows: int = 24, cols: int = 80) -> None:
        master, slave = os.openpty()
        self.master = master
        self.setwinsize(rows, cols)
        env = {k: v for k, v in os.environ.items() if k != "PALLET_HOST"}
        env["TERM"] = "xterm"
        try:
            self.proc = subprocess.Popen(
                ["setsid", "-w", "-c", *argv], stdin=slave, stdout=slave, stderr=slave, env=env,
            )
        finally:
            os.close(slave)
        self.io = pexpect.fdpexpect.fdspawn(master, timeout=TIMEOUT)
        self.exitstatus: int | None = None

    def setwinsize(self, rows: int, cols: int) -> None:
        # The kernel sends SIGWINCH to the terminal's foreground process group.
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def sendline(self, text: str) -> None:
        self.send(text + "\r")

    def sendcontrol(self, char: str) -> None:
        self.send(chr(ord(char.lower()) - ord("a") + 1))

    def expect(self, pattern: Any) -> int:
        return int(self.io.expect(pattern))

    def expect_exact(self, pattern: Any) -> int:
        return int(self.io.expect_exact(pattern))

    @property
    def after(self) -> Any:
        return self.io.after

    def end(self) -> int:
        """Wait for the program's exit (reading what it still writes); its status."""
        try:
            self.io.expect(pexpect.EOF)
        except OSError:
            pass  # EIO: the slave is closed, as EOF
        self.exitstatus = self.proc.wait(TIMEOUT)
        return self.exitstatus

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)

    def close(self) -> None:
        self.kill()
        try:
            os.close(self.master)
        except OSError:
            pass


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    """Every CLI a test starts on a pty, killed (by its pid) after the test."""
    started: list[Terminal] = []
    yield started
    for term in started:
        term.close()


def _start(terminals: list[Terminal], palletd: Palletd, *args: str, **kw: Any) -> Terminal:
    term = Terminal(palletd.cli_args(*args), **kw)
    terminals.append(term)
    return term


def _shell(terminals: list[Terminal], script: str) -> Terminal:
    term = Terminal(["sh", "-c", script])
    terminals.append(term)
    return term


def _prompt(child: Terminal) -> None:
    # busybox sh as root prints "/ # " once it reads a line.
    child.expect_exact("# ")


def _state(palletd: Palletd, name: str) -> dict[str, Any]:
    return palletd.inspect(name)["State"]  # type: ignore[no-any-return]


def _wait_running(palletd: Palletd, name: str) -> None:
    palletd.wait_for(lambda: _state(palletd, name)["Running"], 20, what=f"{name} running")


def _end(child: Terminal) -> int:
    return child.end()


# -- run -it ------------------------------------------------------------------------------


def test_run_it_sh_echoes_and_has_its_terminal(palletd: Palletd, terminals: list[Terminal]) -> None:
    child = _start(terminals, palletd, "run", "-it", "--rm", "--name", "t1", "busybox", "sh")
    _prompt(child)
    child.sendline("echo hel''lo; tty; test -t 0 && echo stdin-is-a-tty")
    child.expect_exact("hello")
    child.expect_exact("/dev/pts/0")
    child.expect_exact("stdin-is-a-tty")
    _prompt(child)
    child.sendline("exit 3")
    assert _end(child) == 3


def test_ctrl_c_interrupts_sleep(palletd: Palletd, terminals: list[Terminal]) -> None:
    child = _start(terminals, palletd, "run", "-it", "--rm", "busybox", "sh")
    _prompt(child)
    child.sendline("sleep 60")
    time.sleep(0.5)  # let sleep start (an outcome is awaited below, not a time)
    child.sendcontrol("c")
    _prompt(child)
    # The shell abandons the line on SIGINT, as an interactive shell does; sleep got it.
    child.sendline("echo status-$?")
    child.expect_exact("status-130")
    _prompt(child)
    child.sendline("exit")
    assert _end(child) == 0


def test_raw_mode_is_restored_after_exit(palletd: Palletd, terminals: list[Terminal]) -> None:
    # The CLI runs under a shell on the pty; stty -g before and after, in that same shell.
    script = (
        'before=$(stty -g); '
        f'{shlex.join(palletd.cli_args("run", "-it", "--rm", "busybox", "sh", "-c", "echo inside"))}; '
        'after=$(stty -g); [ "$before" = "$after" ] && echo MODES-SAME || echo MODES-DIFFER'
    )
    child = _shell(terminals, script)
    child.expect_exact("inside")
    child.expect(["MODES-SAME", "MODES-DIFFER"])
    assert child.after == b"MODES-SAME"
    assert _end(child) == 0


def test_log_records_tty_output_as_stdout(palletd: Palletd) -> None:
    palletd.cli_ok("run", "-t", "--name", "tl", "busybox", "sh", "-c", "echo out; echo err >&2")
    logs = palletd.cli("logs", "tl")
    assert "out" in logs.stdout and "err" in logs.stdout
    assert logs.stderr == ""
    assert palletd.inspect("tl")["Config"]["Tty"] is True


def test_a_large_output_arrives_whole_and_in_order_on_the_terminal_and_in_the_log(
    palletd: Palletd, terminals: list[Terminal]
) -> None:
    # 2 MB: the shim sends a flowing terminal's output in batches, held a moment each.
    child = _start(terminals, palletd, "run", "-it", "--name", "big", "busybox", "seq", "1", "300000")
    assert _end(child) == 0
    # The container's terminal turns \n into \r\n; ours is raw (-i): as it arrived.
    expected = b"".join(b"%d\r\n" % i for i in range(1, 300001))
    assert child.io.before == expected
    logs = palletd.cli("logs", "big", text=False)
    assert logs.returncode == 0 and logs.stdout == expected
    palletd.cli_ok("rm", "big")


# -- resize ------------------------------------------------------------------------------


def test_resize_is_seen_by_stty_size(palletd: Palletd, terminals: list[Terminal]) -> None:
    child = _start(terminals, palletd, "run", "-it", "--rm", "busybox", "sh", rows=24, cols=80)
    _prompt(child)
    child.sendline("stty size")
    child.expect_exact("24 80")
    _prompt(child)
    child.setwinsize(41, 132)  # the pty's size changes and the CLI gets SIGWINCH
    deadline = time.monotonic() + 20
    while True:
        child.sendline("stty size")
        got = child.expect_exact(["41 132", "24 80"])
        _prompt(child)
        if got == 0:
            break
        assert time.monotonic() < deadline, "the resize never reached the container"
        time.sleep(0.2)
    child.sendline("exit")
    assert _end(child) == 0


# -- detach and attach -------------------------------------------------------------------


def test_detach_keys_leave_it_running_and_attach_gets_it_back(
    palletd: Palletd, terminals: list[Terminal]
) -> None:
    child = _start(terminals, palletd, "run", "-it", "--name", "dt", "busybox", "sh")
    _prompt(child)
    child.sendline("echo first-session")
    child.expect_exact("first-session")
    _prompt(child)
    child.sendcontrol("p")
    child.sendcontrol("q")
    assert _end(child) == 0
    assert _state(palletd, "dt")["Running"] is True

    again = _start(terminals, palletd, "attach", "dt")
    again.sendline("echo second-session")
    again.expect_exact("second-session")
    _prompt(again)
    again.sendline("exit 4")
    assert _end(again) == 4
    palletd.wait_for(lambda: not _state(palletd, "dt")["Running"], 20, what="dt exited")
    assert _state(palletd, "dt")["ExitCode"] == 4
    logs = palletd.cli_ok("logs", "dt")
    assert "first-session" in logs and "second-session" in logs


def test_custom_detach_keys(palletd: Palletd, terminals: list[Terminal]) -> None:
    child = _start(terminals, palletd, "run", "-it", "--detach-keys", "ctrl-x,x", "--name", "dk", "busybox", "sh")
    _prompt(child)
    child.sendcontrol("p")  # not the keys any more: only a byte for the shell
    child.sendcontrol("q")
    child.sendline("echo still-here")
    child.expect_exact("still-here")
    _prompt(child)
    child.sendcontrol("x")
    child.send("x")
    assert _end(child) == 0
    assert _state(palletd, "dk")["Running"] is True
    palletd.cli_ok("rm", "-f", "dk")


def test_two_attached_clients_both_see_the_output(palletd: Palletd, terminals: list[Terminal]) -> None:
    palletd.cli_ok("run", "-dit", "--name", "two", "busybox", "sh")
    _wait_running(palletd, "two")
    one = _start(terminals, palletd, "attach", "two")
    other = _start(terminals, palletd, "attach", "--no-stdin", "two")
    time.sleep(1.0)  # both attachments in place before the line is typed
    one.sendline("echo to-every-client")
    one.expect_exact("to-every-client")
    other.expect_exact("to-every-client")
    one.sendcontrol("p")
    one.sendcontrol("q")
    assert _end(one) == 0
    other.kill()  # --no-stdin: the detach keys are not read; it is ended here
    assert _state(palletd, "two")["Running"] is True
    palletd.cli_ok("rm", "-f", "two")


def test_start_attach_interactive(palletd: Palletd, terminals: list[Terminal]) -> None:
    palletd.cli_ok("create", "-it", "--name", "sa", "busybox", "sh")
    child = _start(terminals, palletd, "start", "-a", "-i", "sa")
    _prompt(child)
    child.sendline("echo started-attached")
    child.expect_exact("started-attached")
    _prompt(child)
    child.sendline("exit 5")
    assert _end(child) == 5


# -- exec -it ----------------------------------------------------------------------------


def test_exec_it_runs_a_shell_with_its_own_terminal(palletd: Palletd, terminals: list[Terminal]) -> None:
    palletd.cli_ok("run", "-d", "--name", "ex", "busybox", "sleep", "600")
    _wait_running(palletd, "ex")
    child = _start(terminals, palletd, "exec", "-it", "ex", "sh", rows=30, cols=100)
    _prompt(child)
    child.sendline("tty; stty size")
    child.expect(r"/dev/pts/\d+")
    child.expect_exact("30 100")
    _prompt(child)
    child.setwinsize(35, 90)
    deadline = time.monotonic() + 20
    while True:
        child.sendline("stty size")
        got = child.expect_exact(["35 90", "30 100"])
        _prompt(child)
        if got == 0:
            break
        assert time.monotonic() < deadline, "the exec's resize never arrived"
        time.sleep(0.2)
    child.sendline("sleep 60")
    time.sleep(0.5)
    child.sendcontrol("c")
    _prompt(child)
    child.sendline("exit 6")
    assert _end(child) == 6
    assert _state(palletd, "ex")["Running"] is True
    palletd.cli_ok("rm", "-f", "ex")


# -- signals without a terminal ------------------------------------------------------------


def test_sigterm_to_run_reaches_a_trap_in_the_container(palletd: Palletd) -> None:
    script = "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done"
    proc = palletd.cli_popen("run", "--name", "sp", "busybox", "sh", "-c", script)
    assert palletd.read_line(proc) == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert b"got-term" in out, err
    assert proc.returncode == 7


def test_sig_proxy_false_does_not_forward(palletd: Palletd) -> None:
    script = "trap 'echo got-term' TERM; echo ready; sleep 600"
    proc = palletd.cli_popen("run", "--sig-proxy=false", "--name", "np", "busybox", "sh", "-c", script)
    assert palletd.read_line(proc) == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode != 0
    assert b"got-term" not in out
    assert _state(palletd, "np")["Running"] is True
    palletd.cli_ok("rm", "-f", "np")


def test_sigterm_to_a_tty_session_restores_the_terminal(palletd: Palletd, terminals: list[Terminal]) -> None:
    script = (
        'before=$(stty -g); '
        f'{shlex.join(palletd.cli_args("run", "-it", "--name", "tt", "busybox", "sh"))} </dev/tty & pid=$!; '
        'sleep 3; kill -TERM $pid; wait $pid; echo "cli-exit-$?"; '
        'after=$(stty -g); [ "$before" = "$after" ] && echo MODES-SAME || echo MODES-DIFFER'
    )
    child = _shell(terminals, script)
    child.expect(r"cli-exit-\d+")
    child.expect(["MODES-SAME", "MODES-DIFFER"])
    assert child.after == b"MODES-SAME"
    _end(child)
    palletd.cli_ok("rm", "-f", "tt")


# -- palletd restart ---------------------------------------------------------------------


def test_palletd_restart_keeps_a_terminal_session_and_attach_works_again(
    palletd: Palletd, terminals: list[Terminal]
) -> None:
    child = _start(terminals, palletd, "run", "-it", "--name", "rs", "busybox", "sh")
    _prompt(child)
    child.sendline("echo before-restart")
    child.expect_exact("before-restart")
    _prompt(child)
    palletd.restart()
    child.end()  # the CLI's stream ended with its palletd
    assert _state(palletd, "rs")["Running"] is True
    again = _start(terminals, palletd, "attach", "rs")
    again.sendline("echo after-restart")
    again.expect_exact("after-restart")
    _prompt(again)
    again.sendline("exit 9")
    assert _end(again) == 9
    palletd.wait_for(lambda: not _state(palletd, "rs")["Running"], 20, what="rs exited")
    logs = palletd.cli_ok("logs", "rs")
    assert "before-restart" in logs and "after-restart" in logs


def test_a_terminal_flow_while_palletd_is_dead_is_all_in_the_log(palletd: Palletd, tmp_path: Path) -> None:
    # The shim holds a flowing terminal's output a moment before it writes it: its own
    # timer lets it go, whatever palletd does.
    gate = tmp_path / "gate"
    gate.mkdir()
    palletd.cli_ok("run", "-dt", "--name", "kf", "-v", f"{gate}:/gate", "busybox", "sh", "-c",
                   "while [ ! -e /gate/go ]; do sleep 0.1; done; seq 1 300000")
    log = palletd.root / "containers" / palletd.inspect("kf")["Id"] / "container.log"
    expected = b"".join(b"%d\r\n" % i for i in range(1, 300001))
    assert palletd.proc is not None
    palletd.proc.send_signal(signal.SIGKILL)
    palletd.proc.wait(10)
    (gate / "go").touch()  # the whole flow while palletd is dead
    wait_for(lambda: b"".join(r.data for r in read_records(str(log))) == expected, 30,
             what="the whole output in the log")
    palletd.start()
    palletd.wait_for(lambda: not _state(palletd, "kf")["Running"], 20, what="kf exited")
    logs = palletd.cli("logs", "kf", text=False)
    assert logs.returncode == 0 and logs.stdout == expected
    palletd.cli_ok("rm", "kf")


# -- bad input ---------------------------------------------------------------------------


def test_tty_with_stdin_not_a_terminal(palletd: Palletd) -> None:
    result = palletd.cli("run", "-it", "--name", "nt", "busybox", "true", input="")
    assert result.returncode == 1
    assert result.stderr.strip() == "the input device is not a TTY"
    assert palletd.cli("inspect", "nt").returncode != 0  # nothing was created
    palletd.cli_ok("run", "-d", "--name", "nt2", "busybox", "sleep", "600")
    result = palletd.cli("exec", "-it", "nt2", "true", input="")
    assert (result.returncode, result.stderr.strip()) == (1, "the input device is not a TTY")
    # -t alone, as docker: no stdin to check, the output is a terminal's.
    assert palletd.cli("run", "-t", "--rm", "busybox", "echo", "fine", input="").returncode == 0
    palletd.cli_ok("rm", "-f", "nt2")


@pytest.mark.parametrize("keys", ["ctrl-", "ctrl-1", "ab", "ctrl-p,,", "ctrl-ä"])
def test_invalid_detach_keys(palletd: Palletd, keys: str) -> None:
    result = palletd.cli("run", "-i", "--detach-keys", keys, "--name", "bk", "busybox", "true", input="")
    assert result.returncode == 125
    assert f"Invalid detach keys ({keys}) provided" in result.stderr
    assert palletd.cli("inspect", "bk").returncode != 0  # nothing was created


def test_attach_to_a_stopped_container(palletd: Palletd) -> None:
    palletd.cli_ok("create", "--name", "st", "busybox", "true")
    result = palletd.cli("attach", "st")
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: You cannot attach to a stopped container, start it first"
    assert _state(palletd, "st")["Status"] == "created"


def _stub(palletd: Palletd) -> Any:
    return palletd._stubs()


def test_resize_bad_input_has_the_right_codes(palletd: Palletd) -> None:
    from pallet.client.api import PalletClient
    from pallet.v1.errors import FailedPrecondition, InvalidArgument, NotFound

    palletd.cli_ok("run", "-dit", "--name", "rz", "busybox", "sh")
    palletd.cli_ok("run", "-d", "--name", "rn", "busybox", "sleep", "600")
    _wait_running(palletd, "rz")
    _wait_running(palletd, "rn")
    with PalletClient(palletd.host) as client:
        client.resize("rz", 30, 90)  # fine
        with pytest.raises(InvalidArgument):
            client.resize("rz", 0, 80)
        with pytest.raises(InvalidArgument):
            client.resize("rz", 24, 70000)
        with pytest.raises(FailedPrecondition, match="no terminal"):
            client.resize("rn", 24, 80)
        with pytest.raises(NotFound):
            client.resize("rz", 24, 80, exec_id="0" * 64)
        session = client.exec("rz", ["true"], tty=True)
        with session:
            for _ in session:
                pass
        assert session.exit is not None and session.exit.exit_code == 0
        with pytest.raises((FailedPrecondition, NotFound)) as ended:
            client.resize("rz", 24, 80, exec_id=session.exec_id)
        assert "ended" in ended.value.message or "no exec" in ended.value.message
        with pytest.raises(NotFound):
            client.resize("nosuch", 24, 80)
        palletd.cli_ok("stop", "-t", "0", "rz")
        with pytest.raises(FailedPrecondition, match="not running"):
            client.resize("rz", 24, 80)
    palletd.cli_ok("rm", "-f", "rz", "rn")


def test_the_process_starts_with_our_window_size(palletd: Palletd, terminals: list[Terminal]) -> None:
    # Read at once, before any resize could arrive: the size is the terminal's from birth.
    child = _start(terminals, palletd, "run", "-it", "--rm", "busybox", "stty", "size", rows=33, cols=111)
    child.expect_exact("33 111")
    assert _end(child) == 0
    palletd.cli_ok("run", "-d", "--name", "ws", "busybox", "sleep", "600")
    _wait_running(palletd, "ws")
    child = _start(terminals, palletd, "exec", "-it", "ws", "stty", "size", rows=44, cols=99)
    child.expect_exact("44 99")
    assert _end(child) == 0
    palletd.cli_ok("rm", "-f", "ws")


def test_console_size_past_the_kernels_limit_is_refused(palletd: Palletd) -> None:
    from pallet.client.api import PalletClient
    from pallet.v1 import containers_pb2 as pb
    from pallet.v1.errors import InvalidArgument

    config = pb.ContainerConfig(image="busybox", name="big", tty=True, console_height=70000, console_width=80)
    with PalletClient(palletd.host) as client:
        with pytest.raises(InvalidArgument, match="console size"):
            client.create(config)
    assert palletd.cli("inspect", "big").returncode != 0  # nothing was created


def test_an_attach_client_that_goes_away_leaves_stdin_open(palletd: Palletd) -> None:
    # docker closes a container's stdin only for the client that started it (StdinOnce):
    # an `attach` that is killed leaves `cat` reading, for the next one.
    palletd.cli_ok("run", "-di", "--name", "ca", "busybox", "cat")
    _wait_running(palletd, "ca")
    proc = palletd.cli_popen("attach", "ca", stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(b"one\n")
    proc.stdin.flush()
    assert palletd.read_line(proc) == b"one\n"
    proc.kill()
    proc.communicate(timeout=TIMEOUT)
    time.sleep(1.0)  # what the daemon does with the gone client, it does by now
    assert _state(palletd, "ca")["Running"] is True
    again = palletd.cli_popen("attach", "ca", stdin=subprocess.PIPE)
    assert again.stdin is not None
    again.stdin.write(b"two\n")
    again.stdin.flush()
    assert palletd.read_line(again) == b"two\n"
    again.kill()
    again.communicate(timeout=TIMEOUT)
    palletd.cli_ok("rm", "-f", "ca")
