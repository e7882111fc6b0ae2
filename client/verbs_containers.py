"""Container verbs: run, create, start, stop, kill, restart, rm, ps, wait, inspect, logs, exec.
(`inspect` also finds images and networks; `port` is with the network verbs.)

Owns: what each verb asks the daemon and what it prints. Each function takes the parsed
namespace and returns the exit status; daemon errors propagate as PalletError for
`cli.main` to print (multi-argument verbs print their own per-argument errors and go on).
Must not: parse argv, map gRPC codes (the client does), or lay out tables (format does).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from pallet.client.api import DuplexSession, PalletClient
from pallet.client.options import env_list
from pallet.client.requests import container_config, logs_request, stop_seconds
from pallet.client.stdio import write_chunks
from pallet.client.verbs_common import each, inspect_each, print_error, unreachable
from pallet.v1.errors import Internal, InvalidArgument, NotFound, PalletError, Unavailable

# `run`, `create`, `start`... must start fast (20 `run -d` at once share two cores): the
# table and template modules (~30 ms of imports) are imported by ps, inspect and logs only.

_error = print_error
_each = each


# -- create / run ---------------------------------------------------------------------------


def create(args: argparse.Namespace) -> int:
    config = container_config(args, os.environ)
    with PalletClient(args.host, tls=args.tls) as client:
        created = _create(client, config)
    print(created.id)
    return 0


def _create(client: PalletClient, config: Any) -> Any:
    """Create; the daemon's warnings go to stderr as docker prints them."""
    created = client.create(config)
    for warning in created.warnings:
        print(f"WARNING: {warning}", file=sys.stderr, flush=True)
    return created


def run(args: argparse.Namespace) -> int:
    from pallet.client import attached

    if not args.detach:
        try:
            attached.check_tty_input(args.interactive, args.tty)
        except attached.NotATTY as exc:
            return attached.print_not_a_tty(exc)
        attached.detach_keys_of(args)  # a bad one is refused before anything is created
    config = container_config(args, os.environ)
    with PalletClient(args.host, tls=args.tls) as client:
        created = _create(client, config)
        try:
            if args.detach:
                _start_or_clean_up(client, created.id, args.rm)
                print(created.id)
                return 0
            return _run_attached(client, created.id, args)
        except _StartFailed as failed:
            _error(failed.error.message)
            return start_failure_exit_code(failed.error)


class _StartFailed(Exception):
    def __init__(self, error: PalletError) -> None:
        super().__init__(error.message)
        self.error = error


def start_failure_exit_code(error: PalletError) -> int:
    """docker's exit code when the command could not run: 127 not found, 126 not executable,
    125 for every other failure (the daemon's wording is the only signal, as in docker)."""
    text = error.message.lower()
    if isinstance(error, NotFound) and "no such container" in text:
        return 125
    if "executable file not found" in text or "no such file or directory" in text:
        return 127
    if "permission denied" in text or "not executable" in text:
        return 126
    return 125


def _start_or_clean_up(client: PalletClient, container_id: str, auto_remove: bool, future: Any = None) -> None:
    """Start; when that fails and --rm was asked, remove what create made (best effort)."""
    try:
        if future is None:
            client.start(container_id)
        else:
            client.start_result(future)
    except PalletError as exc:
        if unreachable(exc):
            raise
        if auto_remove:
            try:
                client.remove(container_id, force=True)
            except PalletError:
                pass
        raise _StartFailed(exc) from None


def _run_attached(client: PalletClient, container_id: str, args: argparse.Namespace) -> int:
    from pallet.client import attached

    session = client.attach(container_id, stdin=bool(args.interactive))
    with session:
        # Start while attached, so no output is missed; a failed start ends the attachment.
        future = client.start_async(container_id)
        future.add_done_callback(lambda f: _end_attach_if_failed(f, session))
        _start_or_clean_up(client, container_id, args.rm, future)
        options = attached.SessionOptions(
            bool(args.interactive), bool(args.tty), attached.detach_keys_of(args),
            bool(getattr(args, "sig_proxy", True)),
        )
        detached = attached.run_session(
            session, options,
            resize=lambda h, w: client.resize(container_id, h, w),
            kill=lambda signum: client.kill(container_id, str(signum)),
        )
    if detached:
        return 0
    code = _exit_code(client, container_id, session)
    _report_exec_failure(session)
    return code


def _report_exec_failure(session: DuplexSession) -> None:
    """Say why when the command itself could not run (126/127 with the daemon's reason)."""
    if session.exit is not None and session.exit.error and session.exit.exit_code in (126, 127):
        _error(session.exit.error)


def _end_attach_if_failed(future: Any, session: DuplexSession) -> None:
    """Start's done-callback (a grpc thread): a start that failed will never produce an exit."""
    if future.cancelled() or future.exception() is not None:
        session.cancel()


def _exit_code(client: PalletClient, container_id: str, session: DuplexSession) -> int:
    if session.exit is not None:
        return int(session.exit.exit_code)
    # The stream ended without an Exit (daemon restarted?): ask for the status instead.
    try:
        return int(client.wait(container_id).exit_code)
    except NotFound:
        raise Unavailable(f"lost the attachment to {container_id[:12]} before it reported its exit code") from None


# -- start / stop / kill / restart / rm / wait ---------------------------------------------


def start(args: argparse.Namespace) -> int:
    if getattr(args, "attach", False):
        return _start_attached(args)

    def action(client: PalletClient, name: str) -> str:
        client.start(name)
        return name

    return _each(args, args.containers, action)


def _start_attached(args: argparse.Namespace) -> int:
    """`start -a [-i] CTR`: attached before the start, so no output is missed."""
    from pallet.client import attached

    if len(args.containers) > 1:
        raise InvalidArgument("you cannot start and attach multiple containers at once")
    keys = attached.detach_keys_of(args)
    with PalletClient(args.host, tls=args.tls) as client:
        c = client.inspect_container(args.containers[0])
        stdin = bool(args.interactive) and c.config.open_stdin
        try:
            attached.check_tty_input(stdin, c.config.tty)
        except attached.NotATTY as exc:
            return attached.print_not_a_tty(exc)
        session = client.attach(c.id, stdin=stdin)
        with session:
            future = client.start_async(c.id)
            future.add_done_callback(lambda f: _end_attach_if_failed(f, session))
            _start_or_clean_up(client, c.id, False, future)
            options = attached.SessionOptions(stdin, bool(c.config.tty), keys)
            detached = attached.run_session(
                session, options,
                resize=lambda h, w: client.resize(c.id, h, w),
                kill=lambda signum: client.kill(c.id, str(signum)),
            )
        if detached:
            return 0
        code = _exit_code(client, c.id, session)
    _report_exec_failure(session)
    return code


def stop(args: argparse.Namespace) -> int:
    timeout = None if args.time is None else stop_seconds(args.time, "--time")

    def action(client: PalletClient, name: str) -> str:
        client.stop(name, timeout, args.signal)
        return name

    return _each(args, args.containers, action)


def restart(args: argparse.Namespace) -> int:
    timeout = None if args.time is None else stop_seconds(args.time, "--time")

    def action(client: PalletClient, name: str) -> str:
        client.restart(name, timeout, args.signal)
        return name

    return _each(args, args.containers, action)


def kill(args: argparse.Namespace) -> int:
    def action(client: PalletClient, name: str) -> str:
        client.kill(name, args.signal)
        return name

    return _each(args, args.containers, action)


def rm(args: argparse.Namespace) -> int:
    def action(client: PalletClient, name: str) -> str:
        client.remove(name, args.force, bool(getattr(args, "volumes", False)))
        return name

    return _each(args, args.containers, action)


def rename(args: argparse.Namespace) -> int:
    """docker rename: prints nothing; an error is the daemon's (exit 1)."""
    with PalletClient(args.host, tls=args.tls) as client:
        client.rename(args.container, args.new_name)
    return 0


def wait(args: argparse.Namespace) -> int:
    def action(client: PalletClient, name: str) -> str:
        return str(client.wait(name).exit_code)

    return _each(args, args.containers, action)


# -- ps ---------------------------------------------------------------------------------------


def ps(args: argparse.Namespace) -> int:
    from pallet.client import format as fmt
    from pallet.client import views
    from pallet.client.options import validate_filters

    filters = validate_filters(args.filter or [])
    trunc = not args.no_trunc
    template = args.format if args.format and args.format.strip() != "table" else None
    if template and template.strip() != "json":
        fmt.render_rows(template, [], views.CONTAINER_HEADERS)  # fail on a bad template before the call
    with PalletClient(args.host, tls=args.tls) as client:
        containers = client.list_containers(all=args.all, filters=filters)
    if args.quiet:
        for c in containers:
            print(c.id if not trunc else fmt.short_id(c.id))
        return 0
    now = time.time()
    if template:
        rows = [views.container_fields(c, now, trunc) for c in containers]
        lines = fmt.render_rows(template, rows, views.CONTAINER_HEADERS)
    else:
        lines = [views.ps_table(containers, now, trunc)]
    for line in lines:
        print(line)
    return 0


# -- inspect ----------------------------------------------------------------------------------


def inspect(args: argparse.Namespace) -> int:
    """`inspect` (containers, then images unless --type), `container inspect`, `image inspect`."""
    kind = getattr(args, "type", None)
    return inspect_each(args, args.names, lambda client, name: _inspect_one(client, name, kind))


def _inspect_one(client: PalletClient, name: str, kind: str | None) -> dict[str, Any]:
    from pallet.client import views

    if kind in (None, "container"):
        try:
            return views.inspect_container(client.inspect_container(name))
        except NotFound:
            if kind == "container":
                raise
    if kind in (None, "image"):
        try:
            return views.inspect_image(client.inspect_image(name))
        except NotFound:
            if kind == "image":
                raise
    from pallet.v1.docker.networks import network_json

    try:
        return network_json(client.inspect_network(name))
    except NotFound:
        if kind == "network":
            raise
    except Internal as exc:
        # A palletd older than networks: the name is no network of its, either.
        if kind == "network" or "does not implement" not in exc.message:
            raise
    raise NotFound(f"No such object: {name}")


# -- logs -------------------------------------------------------------------------------------


def logs(args: argparse.Namespace) -> int:
    request = logs_request(args, time.time())
    transform = None
    if args.timestamps:
        from pallet.client import format as fmt

        transform = fmt.TimestampPrefixer().feed
    with PalletClient(args.host, tls=args.tls) as client:
        write_chunks(client.logs(request), transform)
    return 0


# -- exec -------------------------------------------------------------------------------------


def exec_(args: argparse.Namespace) -> int:
    from pallet.client import attached

    env = env_list(args.env_file or [], args.env or [], os.environ)
    tty = bool(getattr(args, "tty", False))
    if not args.detach:
        try:
            attached.check_tty_input(args.interactive, tty)
        except attached.NotATTY as exc:
            return attached.print_not_a_tty(exc)
    keys = attached.detach_keys_of(args)
    with PalletClient(args.host, tls=args.tls) as client:
        try:
            session = client.exec(
                args.container,
                args.command,
                env=env,
                working_dir=args.workdir or "",
                user=args.user or "",
                stdin=bool(args.interactive),
                tty=tty,
                console_size=(attached.terminal_size() or (0, 0)) if tty else (0, 0),
            )
        except PalletError as exc:
            code = start_failure_exit_code(exc)
            if code == 125:
                raise  # not about the command: `Error: ...`, exit 1
            _error(exc.message)
            return code
        if args.detach and session.exit is None:
            # Leave it running: end our side without cancelling (the daemon keeps the process).
            return 0
        with session:
            options = attached.SessionOptions(bool(args.interactive), tty, keys, sig_proxy=False)
            exec_id = session.exec_id
            detached = attached.run_session(
                session, options, resize=lambda h, w: client.resize(args.container, h, w, exec_id),
            )
        if detached:
            return 0
        if session.exit is None:
            raise Unavailable(f"lost the exec stream in {args.container} before it reported its exit code")
        _report_exec_failure(session)
        return int(session.exit.exit_code)
