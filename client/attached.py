"""Being attached to a container or an exec: `run` and `exec` in the foreground, `attach`,
`start -a`.

Owns: one attached session from its opening to its end, whichever way it ends: our
terminal raw while a terminal session takes our stdin, the window size sent at the start
and on every resize, our stdin copied (the detach keys end only our side; the container
runs on), its output written, and without a terminal the signals we get forwarded to the
container (--sig-proxy). Also the `attach` verb, and the checks docker makes before it
opens one (`check_tty_input`). Must not: parse argv, or decide what a verb does after the
session (its exit code is the verb's).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

from pallet.client.api import DuplexSession, PalletClient
from pallet.client.stdio import StdinPump, write_chunks
from pallet.client.terminal import (
    NOT_A_TTY,
    DetachScanner,
    RawTerminal,
    SignalProxy,
    WindowSize,
    parse_detach_keys,
    stdin_is_terminal,
    terminal_size,
)

__all__ = ["NotATTY", "SessionOptions", "attach", "check_tty_input", "run_session", "terminal_size"]
from pallet.v1.errors import PalletError, Unavailable


class NotATTY(Exception):
    """`-t` with `-i` and a stdin that is no terminal: docker's words, exit status 1."""


def check_tty_input(interactive: bool, tty: bool) -> None:
    if interactive and tty and not stdin_is_terminal():
        raise NotATTY(NOT_A_TTY)


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """How to be attached (each verb fills it from its flags)."""

    stdin: bool  # our stdin is copied to the process
    tty: bool  # the process has a terminal
    detach_keys: bytes  # empty: no detaching
    sig_proxy: bool = True  # forward our signals (without a terminal only, as docker)


def run_session(
    session: DuplexSession,
    options: SessionOptions,
    *,
    resize: Callable[[int, int], None] | None = None,
    kill: Callable[[int], None] | None = None,
) -> bool:
    """Copy stdin and output until the process ends (False) or we detach (True)."""
    detached = False
    # Only with a terminal, as docker's copyEscapable: piped input is data, every byte.
    scanner = DetachScanner(options.detach_keys) if options.stdin and options.tty else None

    def on_detach() -> None:
        nonlocal detached
        detached = True
        session.cancel()  # ends our side only: the daemon leaves the container running

    raw = RawTerminal(0) if options.tty and options.stdin and stdin_is_terminal() else None
    window = WindowSize(resize) if options.tty and resize is not None else None
    proxy = SignalProxy(kill) if not options.tty and options.sig_proxy and kill else None
    try:
        if raw is not None:
            raw.__enter__()
        if window is not None:
            window.start()
        if proxy is not None:
            proxy.start()
        if options.stdin and session.exit is None:
            StdinPump(session, scanner, on_detach).start()
        try:
            write_chunks(session)
        except PalletError:
            if not detached:
                raise
    finally:
        if proxy is not None:
            proxy.stop()
        if window is not None:
            window.stop()
        if raw is not None:
            raw.__exit__(None, None, None)
    return detached


def detach_keys_of(args: argparse.Namespace) -> bytes:
    """--detach-keys as bytes (InvalidArgument, with docker's words, when it is bad)."""
    return parse_detach_keys(getattr(args, "detach_keys", None) or "")


def attach(args: argparse.Namespace) -> int:
    """`pallet attach [--no-stdin] [--sig-proxy] [--detach-keys] CTR`."""
    keys = detach_keys_of(args)
    with PalletClient(args.host, tls=args.tls) as client:
        c = client.inspect_container(args.container)
        stdin = not args.no_stdin and c.config.open_stdin
        tty = bool(c.config.tty)
        check_tty_input(stdin, tty)
        session = client.attach(c.id, stdin=stdin, running_only=True)
        with session:
            options = SessionOptions(stdin, tty, keys, bool(args.sig_proxy))
            detached = run_session(
                session, options,
                resize=lambda h, w: client.resize(c.id, h, w),
                kill=lambda signum: client.kill(c.id, str(signum)),
            )
        if detached:
            return 0
        if session.exit is not None:
            return int(session.exit.exit_code)
        try:
            return int(client.wait(c.id).exit_code)
        except PalletError:
            raise Unavailable(f"lost the attachment to {args.container} before it reported its exit code") from None


def print_not_a_tty(exc: NotATTY) -> int:
    sys.stdout.flush()
    print(str(exc), file=sys.stderr)
    return 1

