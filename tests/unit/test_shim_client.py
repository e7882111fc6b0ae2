"""The daemon's shim client against stand-in shims: deadlines, dead shims, error codes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Awaitable
from pathlib import Path

import pytest

from pallet.v1.errors import DeadlineExceeded, FailedPrecondition, Internal, Unavailable
from pallet.shim.api.spec import ExitStatus
from pallet.daemon.shims.client import ShimClientImpl, ShimLauncherImpl
from pallet.shim.api import wire
from pallet.shim.api.files import discard_exit_status, read_exit_status, write_exit_status

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def fake_shim(tmp_path: Path) -> AsyncIterator[Callable[[Reply], Awaitable[str]]]:
    """Serve a stand-in shim on <run_root>/shims/c1.sock with the given behaviour."""
    servers: list[asyncio.AbstractServer] = []
    handlers: list[asyncio.Task[object]] = []
    (tmp_path / "shims").mkdir()

    async def serve(behaviour: Reply) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.append(task)
            try:
                await behaviour(reader, writer)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass  # the client hung up
            finally:
                writer.close()

        path = str(tmp_path / "shims" / "c1.sock")
        servers.append(await asyncio.start_unix_server(handle, path))
        return path

    yield serve
    for server in servers:
        server.close()
        await server.wait_closed()
    for task in handlers:
        task.cancel()
    await asyncio.gather(*handlers, return_exceptions=True)


async def _read_request(reader: asyncio.StreamReader) -> dict[str, object]:
    length, _ = wire.parse_header(await reader.readexactly(wire.HEADER.size))
    return wire.decode_control(await reader.readexactly(length))


async def test_a_hung_shim_raises_deadline_exceeded(fake_shim: Callable[[Reply], Awaitable[str]], tmp_path: Path) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(30)

    path = await fake_shim(never_answer)
    client = ShimClientImpl("c1", path, tmp_path, shim_pid=1, call_timeout=0.2)
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(DeadlineExceeded, match=r"the shim \(pid 1\) of container c1 does not answer \(stopped or hung\): no reply to 'state' within 0.2s"):
        await client.state()
    assert loop.time() - began < 2
    await client.aclose()


async def test_error_replies_become_the_error_tree(fake_shim: Callable[[Reply], Awaitable[str]], tmp_path: Path) -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await _read_request(reader)
            error = FailedPrecondition(f"container c1 is not running ({request['op']})")
            writer.write(wire.encode_control(wire.error_reply(error)))
            await writer.drain()

    path = await fake_shim(refuse)
    client = ShimClientImpl("c1", path, tmp_path, shim_pid=1)
    with pytest.raises(FailedPrecondition, match=r"not running \(kill\)"):
        await client.kill(15)
    # An error reply keeps the connection usable.
    with pytest.raises(FailedPrecondition, match=r"not running \(start\)"):
        await client.start()
    await client.aclose()


async def test_a_shim_that_dies_mid_call_is_unavailable(fake_shim: Callable[[Reply], Awaitable[str]], tmp_path: Path) -> None:
    async def die(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.close()

    path = await fake_shim(die)
    client = ShimClientImpl("c1", path, tmp_path, shim_pid=1)
    with pytest.raises(Unavailable, match="closed the connection"):
        await client.state()
    await client.aclose()


async def test_wait_on_a_dead_shim_is_unavailable_even_with_a_status_on_disk(
    fake_shim: Callable[[Reply], Awaitable[str]], tmp_path: Path
) -> None:
    # Only the caller knows when the run started, so only it may read exit.json (which
    # may be the previous run's).
    async def die(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.close()

    path = await fake_shim(die)
    client = ShimClientImpl("c1", path, tmp_path, shim_pid=1)
    write_exit_status(str(tmp_path), ExitStatus(exit_code=3, exited_at_ns=1))
    with pytest.raises(Unavailable):
        await client.wait()


def test_a_new_bundle_has_no_exit_status_of_a_previous_run(tmp_path: Path) -> None:
    write_exit_status(str(tmp_path), ExitStatus(exit_code=0, exited_at_ns=1))
    discard_exit_status(str(tmp_path))
    assert read_exit_status(str(tmp_path)) is None
    discard_exit_status(str(tmp_path))  # none: nothing to do


async def test_connect_without_a_shim_is_unavailable(tmp_path: Path) -> None:
    launcher = ShimLauncherImpl(tmp_path)
    with pytest.raises(Unavailable, match="shim of container c9 is not reachable"):
        await launcher.connect("c9", tmp_path / "c9")
    stale = tmp_path / "shims"
    stale.mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(stale / "c9.sock"))  # a socket file nobody listens on (a dead shim)
    sock.close()
    with pytest.raises(Unavailable):
        await launcher.connect("c9", tmp_path / "c9")


async def test_long_run_roots_still_reach_the_shim(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    (deep / "shims").mkdir(parents=True)
    path = deep / "shims" / "c1.sock"

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state = {"status": "running", "pid": 7, "shim_pid": 6, "exit": None, "started_at_ns": 1}
        try:
            for _ in range(2):
                await _read_request(reader)
                writer.write(wire.encode_control(state))
                await writer.drain()
            await reader.read()  # until the client hangs up
        finally:
            writer.close()

    from pallet.shim.api.sockpath import usable

    with usable(str(path)) as short:
        server = await asyncio.start_unix_server(answer, short)
    try:
        client = await ShimLauncherImpl(deep).connect("c1", tmp_path)
        assert (client.shim_pid, (await client.state()).pid) == (6, 7)
        await client.aclose()
    finally:
        server.close()
        await server.wait_closed()


async def test_a_malformed_reply_is_internal_not_a_key_error_nor_unavailable(
    fake_shim: Callable[[Reply], Awaitable[str]], tmp_path: Path
) -> None:
    # Unavailable would have the restorer and the monitor take a live shim for dead.
    newer = {"status": "hibernating", "pid": 7, "shim_pid": 6, "exit": None, "started_at_ns": 1}

    async def confused(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        replies = [{"pid": "seven"}, {"pid": 7}, newer]
        while replies:
            await _read_request(reader)
            writer.write(wire.encode_control(replies.pop(0)))
            await writer.drain()
        await reader.read()

    path = await fake_shim(confused)
    client = ShimClientImpl("c1", path, tmp_path, shim_pid=1)
    with pytest.raises(Internal, match=r"the shim \(pid 1\) of container c1 sent a malformed message: .*pid"):
        await client.start()
    with pytest.raises(Internal, match="ShimState: missing field .status."):
        await client.state()
    with pytest.raises(Internal, match="hibernating"):
        await client.state()
    await client.aclose()


def test_the_launchers_code_is_compiled_before_it_starts() -> None:
    """A launcher that compiles its modules from source leaves every shim bigger: palletd
    writes the missing .pyc first (PYTHONDONTWRITEBYTECODE or not)."""
    import importlib.util
    import os

    import pallet.shim.api.messages
    import pallet.v1.errors
    from pallet.daemon.shims.client import _compile_shim_code

    launcher_source = os.path.join(
        os.path.dirname(os.path.dirname(pallet.shim.api.messages.__file__)), "launcher.py"
    )
    compiled = [
        importlib.util.cache_from_source(path)
        for path in (launcher_source, pallet.shim.api.messages.__file__, pallet.v1.errors.__file__)
    ]
    for path in compiled:
        if os.path.exists(path):
            os.unlink(path)
    _compile_shim_code()
    assert all(os.path.exists(path) for path in compiled)
