"""The CLI's side of a terminal session: raw mode, window size, detach keys, signals.

Owns: putting our terminal in raw mode and restoring it on every way out (`RawTerminal`:
the verb's `finally`, and SIGTERM/SIGHUP/SIGQUIT, which restore before the CLI exits);
docker's detach keys (`parse_detach_keys`, "ctrl-p,ctrl-q" by default, and
`DetachScanner`, which holds back a prefix of them and says when they were typed);
sending our window size at the start and on every SIGWINCH (`WindowSize`); and, without
a terminal, forwarding the signals the CLI gets to the container (`SignalProxy`, docker's
--sig-proxy). Signal handlers only note what happened: the gRPC calls run on a thread of
their own (a handler runs between two bytecodes of the main thread, which may be inside
the transport). Must not: talk gRPC itself (it is handed callables) or print.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import termios
import threading
import tty
from collections.abc import Callable
from types import FrameType
from typing import Any

from pallet.v1.errors import InvalidArgument, PalletError

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
#: The input device check docker makes (its exact words; exit status 1).
NOT_A_TTY = "the input device is not a TTY"
_CTRL_SPECIALS = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
# Signals never forwarded (docker's ForwardAllSignals skips these too), or the CLI's own.
_NOT_PROXIED = {
    signal.SIGCHLD, signal.SIGPIPE, signal.SIGURG, signal.SIGWINCH, signal.SIGKILL,
    signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGCONT,
    signal.SIGPROF, signal.SIGVTALRM, signal.SIGALRM,
}


def parse_detach_keys(spec: str) -> bytes:
    """docker's --detach-keys: comma-separated single characters or ctrl-<a-z@[\\]^_>."""
    if not spec:
        spec = DEFAULT_DETACH_KEYS
    keys = bytearray()
    for key in spec.split(","):
        lowered = key.lower()
        if len(key) == 1:
            keys.append(ord(key) & 0xFF if ord(key) < 256 else _bad_keys(spec))
        elif lowered.startswith("ctrl-") and len(key) == 6:
            c = lowered[5]
            if "a" <= c <= "z":
                keys.append(ord(c) - ord("a") + 1)
            elif c in _CTRL_SPECIALS:
                keys.append(_CTRL_SPECIALS[c])
            else:
                _bad_keys(spec)
        else:
            _bad_keys(spec)
    return bytes(keys)


def _bad_keys(spec: str) -> int:
    raise InvalidArgument(
        f"Invalid detach keys ({spec}) provided: use a comma-separated list of single "
        "characters and ctrl-<a-z, @, [, \\, ], ^, _>, e.g. ctrl-p,ctrl-q"
    )


class DetachScanner:
    """Finds the detach keys in stdin as it is typed, as docker's escape proxy does.

    Bytes that may begin the sequence are held back until the next byte says whether
    they do; the ones that turn out not to are passed on with it.
    """

    def __init__(self, keys: bytes) -> None:
        self._keys = keys
        self._held = 0  # how many of keys[0:] the last bytes matched
        self.detached = False

    def feed(self, data: bytes) -> bytes:
        """What to forward of `data`; sets `detached` (and forwards nothing after it)."""
        if not self._keys:
            return data
        out = bytearray()
        for byte in data:
            if byte == self._keys[self._held]:
                self._held += 1
                if self._held == len(self._keys):
                    self.detached = True
                    self._held = 0
                    return bytes(out)
                continue
            if self._held:
                out += self._keys[: self._held]
                self._held = 0
                if byte == self._keys[0]:
                    self._held = 1
                    continue
            out.append(byte)
        return bytes(out)


class Signalled(BaseException):
    """A signal that ends the CLI (SIGTERM, SIGHUP, SIGQUIT) while the terminal is raw:
    raised in the main thread so every `finally` runs and the terminal is restored."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class RawTerminal:
    """Our terminal in raw mode for the length of a `with` block, restored on the way out."""

    _ENDING = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._saved: list[Any] | None = None
        self._old_handlers: dict[int, Any] = {}

    def __enter__(self) -> RawTerminal:
        self._saved = termios.tcgetattr(self.fd)
        for signum in self._ENDING:
            self._old_handlers[signum] = signal.signal(signum, self._on_signal)
        # cfmakeraw, as docker's MakeRaw: no echo, no line editing, no signals from keys
        # (Ctrl-C is a byte for the container's terminal), no output processing.
        tty.setraw(self.fd, termios.TCSANOW)
        return self

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.restore()
        raise Signalled(signum)

    def restore(self) -> None:
        saved, self._saved = self._saved, None
        if saved is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, saved)
            except (termios.error, OSError):
                pass  # the terminal is gone (hung up): nothing to restore

    def __exit__(self, *exc: object) -> None:
        self.restore()
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        self._old_handlers.clear()


def terminal_size(fds: tuple[int, ...] = (1, 0, 2)) -> tuple[int, int] | None:
    """(rows, columns) of the first of our stdio that is a terminal, as docker reads it."""
    for fd in fds:
        try:
            size = os.get_terminal_size(fd)
        except OSError:
            continue
        if size.lines and size.columns:
            return size.lines, size.columns
    return None


class WindowSize:
    """Sends our terminal's size now and after every SIGWINCH, from a thread of its own."""

    def __init__(self, resize: Callable[[int, int], None]) -> None:
        self._resize = resize
        self._wake = threading.Event()
        self._stopped = False
        self._old: Any = None
        self._thread = threading.Thread(target=self._run, name="pallet-winch", daemon=True)

    def start(self) -> None:
        self._old = signal.signal(signal.SIGWINCH, lambda signum, frame: self._wake.set())
        self._wake.set()  # the size at the start
        self._thread.start()

    def _run(self) -> None:
        last: tuple[int, int] | None = None
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopped:
                return
            size = terminal_size()
            if size is None or size == last:
                continue
            try:
                self._resize(*size)
            except PalletError:
                continue  # it ended meanwhile: the session's end says so
            last = size

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        if self._old is not None:
            signal.signal(signal.SIGWINCH, self._old)
            self._old = None


class SignalProxy:
    """docker's --sig-proxy: the signals we get go to the container (its Kill call)."""

    def __init__(self, kill: Callable[[int], None]) -> None:
        self._kill = kill
        self._queue: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._old: dict[int, Any] = {}
        self._thread = threading.Thread(target=self._run, name="pallet-sigproxy", daemon=True)

    def start(self) -> None:
        self._thread.start()
        for signum in signal.valid_signals():
            if signum in _NOT_PROXIED or not 0 < signum < signal.NSIG:
                continue
            if signum >= getattr(signal, "SIGRTMIN", 34):
                continue
            try:
                self._old[signum] = signal.signal(signum, self._on_signal)
            except (OSError, ValueError):
                continue

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._queue.put(signum)

    def _run(self) -> None:
        while True:
            signum = self._queue.get()
            if signum is None:
                return
            try:
                self._kill(signum)
            except PalletError:
                continue  # it exited meanwhile

    def stop(self) -> None:
        for signum, handler in self._old.items():
            try:
                signal.signal(signum, handler)
            except (OSError, ValueError):
                pass
        self._old.clear()
        self._queue.put(None)


def stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and os.isatty(sys.stdin.fileno())
    except (OSError, ValueError, AttributeError):
        return False
