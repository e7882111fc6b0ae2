"""A container's grouped config: the merge of a request over its image, the proto edge,
and the stored record (codec round trip, records of the previous version)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from pallet.daemon.api import convert
from pallet.daemon.containers.merge import effective_config
from pallet.daemon.containers.model import (
    Config,
    ConfigRequest,
    Container,
    ContainerState,
    CreateRequest,
    HostConfig,
    LogConfig,
    Status,
)
from pallet.daemon.containers.store import ContainerRecords, decode, encode, migrate
from pallet.daemon.images.model import Image, ImageConfig
from pallet.daemon.store.db import Database
from pallet.v1 import containers_pb2 as cpb
from pallet.v1.errors import InvalidArgument


def _image(**cfg: object) -> Image:
    return Image(
        id="sha256:" + "a" * 64, repo_tags=("app:1",), repo_digests=(), created_ns=0, size=0,
        config=ImageConfig(**cfg), layers=(),  # type: ignore[arg-type]
    )


APP = _image(
    entrypoint=("/app",), cmd=("--serve",), env=("A=1",), working_dir="/srv", user="app",
    labels={"tier": "back", "team": "x"}, stop_signal="SIGQUIT",
)


def _merge(**req: object) -> tuple[Config, HostConfig]:
    config = ConfigRequest(image="app:1", **req)  # type: ignore[arg-type]
    return effective_config(CreateRequest(config), APP, "h")


# ---- merge: the request over the image


def test_what_the_request_leaves_out_comes_from_the_image() -> None:
    cfg, host = _merge()
    assert (cfg.entrypoint, cfg.cmd) == (("/app",), ("--serve",))
    assert (cfg.working_dir, cfg.user, cfg.stop_signal) == ("/srv", "app", "SIGQUIT")
    assert cfg.labels == {"tier": "back", "team": "x"}
    assert cfg.stop_timeout == 10 and cfg.hostname == "h"
    assert host == HostConfig(auto_remove=False, log_config=LogConfig(max_size=0, max_files=1))


def test_what_the_request_gives_overrides_the_image() -> None:
    cfg, _ = _merge(
        cmd=("--check",), env=("A=2", "B=3"), working_dir="/tmp", user="0",
        labels={"tier": "front"}, stop_signal="SIGINT", stop_timeout=3, open_stdin=True,
    )
    assert (cfg.entrypoint, cfg.cmd) == (("/app",), ("--check",))
    assert ("A=2" in cfg.env, "A=1" in cfg.env, "B=3" in cfg.env) == (True, False, True)
    assert (cfg.working_dir, cfg.user) == ("/tmp", "0")
    assert (cfg.stop_signal, cfg.stop_timeout) == ("SIGINT", 3)
    assert cfg.labels == {"tier": "front", "team": "x"} and cfg.open_stdin


def test_none_means_the_image_s_and_an_empty_value_overrides_it() -> None:
    # An empty cmd is a value: the image's entrypoint runs with no arguments.
    cfg, _ = _merge(cmd=())
    assert (cfg.entrypoint, cfg.cmd) == (("/app",), ())
    # A new entrypoint drops the image's Cmd; an empty one drops the image's entrypoint.
    cfg, _ = _merge(entrypoint=("/bin/sh",))
    assert (cfg.entrypoint, cfg.cmd) == (("/bin/sh",), ())
    cfg, _ = _merge(entrypoint=(), cmd=("true",))
    assert (cfg.entrypoint, cfg.cmd) == ((), ("true",))
    with pytest.raises(InvalidArgument, match="no command specified"):
        _merge(entrypoint=())
    # A stop timeout of 0 is a value (kill at once), not "the default".
    cfg, _ = _merge(stop_timeout=0)
    assert cfg.stop_timeout == 0


def test_host_config_passes_through_checked() -> None:
    req = CreateRequest(
        ConfigRequest(image="app:1"),
        HostConfig(auto_remove=True, log_config=LogConfig(max_size=1024, max_files=0)),
    )
    _, host = effective_config(req, APP, "h")
    assert host == HostConfig(auto_remove=True, log_config=LogConfig(max_size=1024, max_files=1))
    bad = CreateRequest(
        ConfigRequest(image="app:1"), HostConfig(log_config=LogConfig(max_files=-1))
    )
    with pytest.raises(InvalidArgument, match="max-size and max-file must be 0 or more"):
        effective_config(bad, APP, "h")


# ---- the proto edge


def test_the_proto_request_tells_unset_from_empty() -> None:
    plain = convert.create_request(cpb.ContainerConfig(image="app:1"))
    assert plain.config.cmd is None and plain.config.entrypoint is None
    assert plain.config.stop_timeout is None
    reset = convert.create_request(
        cpb.ContainerConfig(image="app:1", entrypoint_set=True, stop_timeout=0, cmd=["x"])
    )
    assert reset.config.entrypoint == () and reset.config.stop_timeout == 0
    assert reset.config.cmd == ("x",)
    host = convert.create_request(
        cpb.ContainerConfig(image="app:1", auto_remove=True, log_max_size=5, log_max_file=2)
    ).host_config
    assert host == HostConfig(auto_remove=True, log_config=LogConfig(max_size=5, max_files=2))


def test_the_proto_reply_carries_the_host_config() -> None:
    pb = convert.container(_container(), [])
    assert pb.config.auto_remove
    assert (pb.config.log_max_size, pb.config.log_max_file) == (1 << 20, 3)
    assert pb.config.stop_signal == "SIGINT" and pb.config.stop_timeout == 3


# ---- the stored record


def _container() -> Container:
    return Container(
        id="c" * 64,
        name="web",
        image_id="sha256:" + "a" * 64,
        config=Config(
            image="busybox", cmd=("sh", "-c", "exit 3"), env=("PATH=/bin", "HOSTNAME=h"),
            working_dir="/", hostname="h", labels={"tier": "front"}, open_stdin=True,
            stop_signal="SIGINT", stop_timeout=3,
        ),
        host_config=HostConfig(
            auto_remove=True, log_config=LogConfig(max_size=1 << 20, max_files=3)
        ),
        state=ContainerState(
            status=Status.EXITED, exit_code=3, started_at_ns=10, finished_at_ns=20
        ),
        created_ns=5,
        state_dir="/var/lib/pallet/containers/x",
        restart_count=2,
    )


# What the version before Config/HostConfig wrote for _container() (its encode's output,
# restart_count 0): the host options sat inside "config".
OLD_RECORD = (
    '{"config": {"image": "busybox", "cmd": ["sh", "-c", "exit 3"], "entrypoint": [], '
    '"env": ["PATH=/bin", "HOSTNAME=h"], "working_dir": "/", "user": "", "hostname": "h", '
    '"labels": {"tier": "front"}, "open_stdin": true, "auto_remove": true, '
    '"stop_signal": "SIGINT", "stop_timeout": 3, "log_max_size": 1048576, '
    '"log_max_files": 3}, "state": {"status": "exited", "pid": 0, "exit_code": 3, '
    '"started_at_ns": 10, "finished_at_ns": 20, "error": "", "shim_pid": 0}, '
    '"state_dir": "/var/lib/pallet/containers/x", "restart_count": 0}'
)


def _row(record: str) -> sqlite3.Row:
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    row: sqlite3.Row = conn.execute(
        "SELECT ? AS id, ? AS name, ? AS image_id, ? AS created_ns, ? AS record",
        ("c" * 64, "web", "sha256:" + "a" * 64, 5, record),
    ).fetchone()
    conn.close()
    return row


@pytest.fixture
async def records(tmp_path: Path) -> AsyncIterator[ContainerRecords]:
    db = Database(tmp_path / "pallet.db")
    await db.start()
    store = ContainerRecords(db)
    await store.start()
    yield store
    await db.aclose()


async def test_a_container_survives_the_store(records: ContainerRecords) -> None:
    c = _container()
    await records.insert(c)
    assert await records.load_all() == [c]
    # The record is the codec's JSON, grouped as the model is.
    raw = json.loads(encode(c))
    assert raw["host_config"]["auto_remove"] is True
    assert raw["host_config"]["log_config"] == {"max_size": 1 << 20, "max_files": 3}
    assert raw["host_config"]["network_mode"] == "bridge"
    assert "auto_remove" not in raw["config"]


def test_a_record_of_the_previous_version_loads_with_its_host_options() -> None:
    old = decode(_row(OLD_RECORD))
    assert old == replace(_container(), restart_count=0)


def test_migrate_moves_the_flat_host_options() -> None:
    raw = {"config": {"image": "x", "auto_remove": True, "log_max_size": 7}, "state": {}}
    assert migrate(raw) == {
        "config": {"image": "x"},
        "state": {},
        "host_config": {"auto_remove": True, "log_config": {"max_size": 7}},
    }
    # A record already in this version's shape is left as it is.
    new = json.loads(encode(_container()))
    assert migrate(new) == new


def test_a_newer_record_loads_and_missing_fields_take_defaults() -> None:
    raw = json.loads(encode(_container()))
    raw["config"]["a_later_field"] = {"test": ["CMD", "true"]}
    raw["host_config"]["restart_policy"] = {"name": "always"}
    raw["network_settings"] = {}
    del raw["restart_count"], raw["state"]["shim_pid"], raw["host_config"]["log_config"]
    c = decode(_row(json.dumps(raw)))
    assert c.config == _container().config and c.host_config.auto_remove
    assert (c.restart_count, c.state.shim_pid, c.host_config.log_config) == (0, 0, LogConfig())


def test_a_malformed_record_names_the_container_and_the_field() -> None:
    raw = json.loads(encode(_container()))
    raw["config"]["stop_timeout"] = "3"
    with pytest.raises(InvalidArgument, match=r"record of container c+: .*stop_timeout"):
        decode(_row(json.dumps(raw)))
