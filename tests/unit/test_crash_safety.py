"""Crash-safety pieces without root: crash points, palletd's new flags, log options, the
event journal's atomic writes and retention, dead-shim leftovers."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from pallet.client.requests import parse_log_opts
from pallet.daemon.containers import leftovers
from pallet.daemon.containers.merge import effective_config
from pallet.daemon.containers.model import ConfigRequest, CreateRequest, HostConfig, LogConfig
from pallet.v1.errors import InvalidArgument
from pallet.daemon.events.bus import EventBus, RetentionPolicy
from pallet.daemon.faults import CrashPoints
from pallet.daemon.images.model import Image, ImageConfig
from pallet.daemon.main import parse_args
from pallet.daemon.store.db import Database

# ---- crash points


def test_unarmed_crash_points_do_nothing() -> None:
    CrashPoints().hit("create", "dir")
    CrashPoints("remove:deleted").hit("create", "dir")


def test_a_malformed_crash_point_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="use <operation>:<step>"):
        CrashPoints("create")


def test_an_armed_crash_point_is_a_kill_9() -> None:
    code = (
        "from pallet.daemon.faults import CrashPoints\n"
        "CrashPoints('create:dir, remove:deleted').hit('remove', 'deleted')\n"
        "print('survived')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == -signal.SIGKILL
    assert "survived" not in result.stdout
    assert "crash point remove:deleted reached" in result.stderr


# ---- palletd flags


def test_palletd_defaults_keep_containers_and_a_week_of_events() -> None:
    args = parse_args([])
    assert args.stop_containers_on_exit is False
    assert args.events_max_count == 100_000
    assert args.events_max_age == 7 * 24 * 3600
    assert args.events_max_bytes == 128 * 1024 * 1024


def test_palletd_journal_size_flag() -> None:
    assert parse_args(["--events-max-bytes", "64m"]).events_max_bytes == 64 * 1024 * 1024
    assert parse_args(["--events-max-bytes", "512K"]).events_max_bytes == 512 * 1024
    assert parse_args(["--events-max-bytes", "1g"]).events_max_bytes == 1024**3
    assert parse_args(["--events-max-bytes", "4096"]).events_max_bytes == 4096


def test_palletd_retention_and_stop_flags() -> None:
    args = parse_args(["--stop-containers-on-exit", "--events-max-count", "500",
                       "--events-max-age", "36h"])
    assert args.stop_containers_on_exit is True
    assert args.events_max_count == 500
    assert args.events_max_age == 36 * 3600
    assert parse_args(["--events-max-age", "90"]).events_max_age == 90


@pytest.mark.parametrize("flags", [["--events-max-count", "0"], ["--events-max-count", "x"],
                                   ["--events-max-age", "0s"], ["--events-max-age", "1w"],
                                   ["--events-max-bytes", "0"], ["--events-max-bytes", "1t"]])
def test_bad_palletd_retention_flags_exit_2(flags: list[str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(flags)
    assert exc.value.code == 2
    assert flags[0] in capsys.readouterr().err


# ---- log options


@pytest.mark.parametrize(("opts", "expected"), [
    ([], (0, 0)),
    (["max-size=10m", "max-file=3"], (10 << 20, 3)),
    (["max-size=512"], (512, 0)),
    (["max-size=64k"], (64 << 10, 0)),
    (["max-size=2g"], (2 << 30, 0)),
    (["max-size=10MB"], (10 << 20, 0)),
])
def test_log_opts(opts: list[str], expected: tuple[int, int]) -> None:
    assert parse_log_opts(opts) == expected


@pytest.mark.parametrize(("opt", "message"), [
    ("max-size=", "invalid log option max-size"),
    ("max-size=10x", "invalid log option max-size"),
    ("max-size=-1", "invalid log option max-size"),
    ("max-file=0", "invalid log option max-file"),
    ("max-file=two", "invalid log option max-file"),
    ("compress=true", "unknown log option 'compress=true'"),
    ("max-size", "unknown log option"),
])
def test_bad_log_opts(opt: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_log_opts([opt])


def _image() -> Image:
    return Image(id="sha256:" + "a" * 64, repo_tags=(), repo_digests=(), created_ns=0, size=0,
                 config=ImageConfig(cmd=("sh",)), layers=())


def _create(log: LogConfig) -> CreateRequest:
    return CreateRequest(ConfigRequest(image="busybox"), HostConfig(log_config=log))


def test_log_rotation_reaches_the_container_config() -> None:
    _, host = effective_config(_create(LogConfig(max_size=1 << 20, max_files=3)), _image(), "h")
    assert host.log_config == LogConfig(max_size=1 << 20, max_files=3)
    _, plain = effective_config(_create(LogConfig(max_size=0, max_files=0)), _image(), "h")
    assert plain.log_config == LogConfig(max_size=0, max_files=1)


def test_max_file_without_max_size_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="needs max-size"):
        effective_config(_create(LogConfig(max_files=3)), _image(), "h")
    with pytest.raises(InvalidArgument, match="must be 0 or more"):
        effective_config(_create(LogConfig(max_size=-1)), _image(), "h")


# ---- the journal


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "pallet.db")
    await database.start()
    await database.run(lambda c: c.execute("CREATE TABLE things (name TEXT UNIQUE)"))
    yield database
    await database.aclose()


async def _names(db: Database) -> list[str]:
    rows = await db.run(lambda c: c.execute("SELECT name FROM things").fetchall())
    return [r[0] for r in rows]


async def test_a_change_and_its_event_commit_together(db: Database) -> None:
    bus = EventBus(db)
    await bus.start()

    def add(name: str) -> Callable[[sqlite3.Connection], None]:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO things VALUES (?)", (name,))

        return write

    first = await bus.publish("thing", "create", "a", also=add("a"))
    with pytest.raises(sqlite3.IntegrityError):
        await bus.publish("thing", "create", "a", also=add("a"))  # the change fails...
    assert await _names(db) == ["a"]
    # ...so its event was never journalled, and no seq was used up.
    second = await bus.publish("thing", "create", "b", also=add("b"))
    assert (first.seq, second.seq) == (1, 2)
    count = await db.run(lambda c: c.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    assert count == 2


async def test_retention_prunes_while_running_and_seqs_go_on(db: Database) -> None:
    bus = EventBus(db, RetentionPolicy(max_events=5))
    await bus.start()
    for i in range(30):
        event = await bus.publish("thing", "touch", str(i))
        seqs = await db.run(lambda c: [r[0] for r in c.execute("SELECT seq FROM events")])
        # Every commit prunes: never more than the count named, and always the newest ones.
        assert seqs == list(range(max(1, event.seq - 4), event.seq + 1))
    assert event.seq == 30


def test_retention_must_keep_something() -> None:
    with pytest.raises(ValueError):
        RetentionPolicy(max_events=0)
    with pytest.raises(ValueError):
        RetentionPolicy(max_age_s=0)


# ---- leftovers


def test_shim_sockets_are_found_by_container_id(tmp_path: Path) -> None:
    assert leftovers.shim_sockets(tmp_path) == {}
    (tmp_path / "shims").mkdir()
    (tmp_path / "shims" / ("a" * 64 + ".sock")).touch()
    (tmp_path / "shims" / "notes.txt").touch()
    assert list(leftovers.shim_sockets(tmp_path)) == ["a" * 64]
