"""Hostile input over raw gRPC, as any client in any language may send it, to a real palletd:
INVALID_ARGUMENT naming the field, and nothing changed (no container, image or event).

`CASES` is the corpus: one row per request, easy to extend as the API grows (networks,
volumes and builds add rows). Every string field of every RPC is also covered, without a
real daemon, by the descriptor-driven corpus of tests/api/test_api_inputs.py. The CLI's
side of the same values (numbers the API's fields cannot hold; exec -w) is at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from pallet.v1 import containers_pb2 as cpb
from pallet.v1 import containers_pb2_grpc
from pallet.v1 import events_pb2 as epb
from pallet.v1 import events_pb2_grpc
from pallet.v1 import images_pb2 as ipb
from pallet.v1 import images_pb2_grpc
from pallet.v1 import system_pb2 as spb
from pallet.v1 import system_pb2_grpc

pytestmark = pytest.mark.integration

IMAGE = "busybox:latest"


def config(**fields: Any) -> cpb.CreateContainerRequest:
    base: dict[str, Any] = {"image": IMAGE, "cmd": ["true"]}
    base.update(fields)
    return cpb.CreateContainerRequest(config=cpb.ContainerConfig(**base))


def exec_open(**fields: Any) -> Iterator[cpb.ExecRequest]:
    base: dict[str, Any] = {"container": "web", "cmd": ["true"]}
    base.update(fields)
    yield cpb.ExecRequest(open=cpb.ExecOpen(**base))


def import_(reference: str = "hostile:1", changes: tuple[str, ...] = ()) -> Iterator[ipb.ImportRequest]:
    yield ipb.ImportRequest(header=ipb.ImportHeader(reference=reference, changes=list(changes)))
    yield ipb.ImportRequest(end=ipb.UploadEnd(size=0))


@dataclass(frozen=True)
class Case:
    id: str
    service: str  # "containers", "images", "events"
    method: str
    request: Callable[[], Any]  # a message, or an iterator of messages for a client stream
    message: str  # what the error's text starts with (the field it names)


CASES = [
    # --- create: every string of the config (the list), then sizes
    Case("create env NUL", "containers", "Create", lambda: config(env=["A=1", "B=x\0y"]), "config.env[1] contains a NUL byte"),
    Case("create cmd NUL", "containers", "Create", lambda: config(cmd=["echo", "a\0b"]), "config.cmd[1] contains a NUL byte"),
    Case("create entrypoint NUL", "containers", "Create", lambda: config(entrypoint=["/bin/s\0h"], entrypoint_set=True), "config.entrypoint[0] contains a NUL byte"),
    Case("create hostname NUL", "containers", "Create", lambda: config(hostname="a\0b"), "config.hostname contains a NUL byte"),
    Case("create working_dir NUL", "containers", "Create", lambda: config(working_dir="/tmp\0x"), "config.working_dir contains a NUL byte"),
    Case("create user NUL", "containers", "Create", lambda: config(user="ro\0ot"), "config.user contains a NUL byte"),
    Case("create label value NUL", "containers", "Create", lambda: config(labels={"a": "b\0c"}), 'config.labels["a"] contains a NUL byte'),
    Case("create label key NUL", "containers", "Create", lambda: config(labels={"a\0": "b"}), 'the key of config.labels["a\\u0000"] contains a NUL byte'),
    Case("create name NUL", "containers", "Create", lambda: config(name="we\0b"), "config.name contains a NUL byte"),
    Case("create image NUL", "containers", "Create", lambda: config(image="busybox\0"), "config.image contains a NUL byte"),
    Case("create stop_signal NUL", "containers", "Create", lambda: config(stop_signal="TERM\0"), "config.stop_signal contains a NUL byte"),
    Case("create 1 MB label", "containers", "Create", lambda: config(labels={"big": "x" * (1 << 20)}), 'config.labels["big"] is 1048576 bytes long'),
    Case("create 20 KiB label", "containers", "Create", lambda: config(labels={"big": "x" * 20480}), "label 'big' on the container has a value of 20480 bytes"),
    Case("create 70 KB of labels", "containers", "Create", lambda: config(labels={f"k{i}": "x" * 10000 for i in range(7)}), "the labels on the container come to 70014 bytes"),
    Case("create 65-byte hostname", "containers", "Create", lambda: config(hostname="h" * 65), "invalid hostname"),
    Case("create 200 KB env entry", "containers", "Create", lambda: config(env=["A=" + "x" * 200_000]), "config.env[0] is 200002 bytes long"),
    Case("create 2.1 MB of env", "containers", "Create", lambda: config(env=[f"V{i}=" + "x" * 100_000 for i in range(21)]), "the command and environment of the container come to"),
    Case("create negative stop timeout", "containers", "Create", lambda: config(stop_timeout=-1), "invalid stop timeout -1"),
    Case("create negative log max-size", "containers", "Create", lambda: config(log_max_size=-1), "invalid log options"),
    # --- the other container RPCs: the edge answers before the container is looked up
    Case("start NUL", "containers", "Start", lambda: cpb.StartContainerRequest(container="we\0b"), "container contains a NUL byte"),
    Case("kill signal NUL", "containers", "Kill", lambda: cpb.KillContainerRequest(container="web", signal="KILL\0"), "signal contains a NUL byte"),
    Case("list filter NUL", "containers", "List", lambda: cpb.ListContainersRequest(filters=["name=\0"]), "filters[0] contains a NUL byte"),
    Case("logs since year 10^11", "containers", "Logs", lambda: cpb.LogsRequest(container="web", since={"seconds": 2**62}), "since is not a valid time"),
    Case("logs until nanos", "containers", "Logs", lambda: cpb.LogsRequest(container="web", until={"seconds": 1, "nanos": -1}), "until is not a valid time"),
    Case("exec working_dir NUL", "containers", "Exec", lambda: exec_open(working_dir="/tm\0p"), "open.working_dir contains a NUL byte"),
    Case("exec cmd NUL", "containers", "Exec", lambda: exec_open(cmd=["ls", "\0"]), "open.cmd[1] contains a NUL byte"),
    Case("exec env NUL", "containers", "Exec", lambda: exec_open(env=["A=\0"]), "open.env[0] contains a NUL byte"),
    Case("exec user NUL", "containers", "Exec", lambda: exec_open(user="\0"), "open.user contains a NUL byte"),
    # --- images
    Case("import reference NUL", "images", "Import", lambda: import_(reference="a\0:1"), "header.reference contains a NUL byte"),
    Case("import change NUL", "images", "Import", lambda: import_(changes=("ENV A=\0",)), "header.changes[0] contains a NUL byte"),
    Case("import 20 KiB label", "images", "Import", lambda: import_(changes=("LABEL a=" + "x" * 20480,)), "label 'a' on the image has a value of 20480 bytes"),
    Case("import 1.1 MB of changes", "images", "Import", lambda: import_(changes=tuple(f"ENV V{i}=" + "x" * 120_000 for i in range(9))), "the config changes come to"),
    Case("import end size", "images", "Import", lambda: iter([ipb.ImportRequest(end=ipb.UploadEnd(size=2**64 - 1))]), "end.size is 18446744073709551615"),
    Case("tag NUL", "images", "Tag", lambda: ipb.TagImageRequest(source=IMAGE, target="x\0:1"), "target contains a NUL byte"),
    Case("rmi NUL", "images", "Remove", lambda: ipb.RemoveImageRequest(image="busybox\0"), "image contains a NUL byte"),
    Case("pull password NUL", "images", "Pull", lambda: ipb.PullRequest(reference="127.0.0.1:1/a", auth=ipb.RegistryAuth(password="\0")), "auth.password contains a NUL byte"),
    Case("save NUL", "images", "Save", lambda: ipb.SaveRequest(images=[IMAGE, "\0"]), "images[1] contains a NUL byte"),
    # --- events
    Case("events since_seq 2^64-1", "events", "Subscribe", lambda: epb.SubscribeRequest(since_seq=2**64 - 1), "since_seq is 18446744073709551615"),
    Case("events since year 10^11", "events", "Subscribe", lambda: epb.SubscribeRequest(since={"seconds": 2**62}), "since is not a valid time"),
    Case("events until year 1", "events", "Subscribe", lambda: epb.SubscribeRequest(until={"seconds": -62135596800}), "until is not a valid time"),
    Case("events since year 9999", "events", "Subscribe", lambda: epb.SubscribeRequest(since={"seconds": 253402300799}), "since is not a valid time"),
    Case("events filter NUL", "events", "Subscribe", lambda: epb.SubscribeRequest(filters=["type=\0"]), "filters[0] contains a NUL byte"),
]


class Raw:
    """Generated stubs on the daemon's socket: a client that is not pallet's CLI."""

    def __init__(self, palletd: Any) -> None:
        self.channel = grpc.insecure_channel(palletd.host)
        self.containers = containers_pb2_grpc.ContainersServiceStub(self.channel)
        self.images = images_pb2_grpc.ImagesServiceStub(self.channel)
        self.events = events_pb2_grpc.EventsServiceStub(self.channel)
        self.system = system_pb2_grpc.SystemServiceStub(self.channel)

    def call(self, case: Case) -> None:
        method = getattr(getattr(self, case.service), case.method)
        result = method(case.request(), timeout=30)
        if not hasattr(result, "ListFields"):  # a response stream: read it all
            for _ in result:
                pass

    def last_seq(self) -> int:
        return int(self.system.Info(spb.InfoRequest(), timeout=30).last_event_seq)


@pytest.fixture
def raw(palletd: Any) -> Iterator[Raw]:
    client = Raw(palletd)
    yield client
    client.channel.close()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_request_is_refused_and_changes_nothing(palletd: Any, image: str, raw: Raw, case: Case) -> None:
    seq = raw.last_seq()
    with pytest.raises(grpc.RpcError) as refused:
        raw.call(case)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
    details = refused.value.details() or ""
    assert details.startswith(case.message), details[:300]
    assert "\n" not in details and "Traceback" not in details
    # Nothing changed: no container, no image, no event.
    assert palletd.container_ids() == []
    assert [(i.id, list(i.repo_tags)) for i in palletd.images()] == [(palletd.base_image_id, ["busybox:latest"])]
    containers_dir = palletd.root / "containers"
    assert not containers_dir.exists() or list(containers_dir.iterdir()) == []
    assert raw.last_seq() == seq


def test_a_create_whose_strings_are_not_utf8_is_refused_and_changes_nothing(palletd: Any, image: str, raw: Raw) -> None:
    seq = raw.last_seq()
    create = raw.channel.unary_unary("/pallet.v1.ContainersService/Create")
    # config (field 1) { image (field 1): three bytes that are not UTF-8 }
    with pytest.raises(grpc.RpcError) as refused:
        create(b"\x0a\x05\x0a\x03\xff\xfe\xfd", timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith(
        "the request is not a valid pallet.v1.CreateContainerRequest"
    )
    assert palletd.container_ids() == []
    assert raw.last_seq() == seq


def test_exec_refuses_more_than_execve_takes_and_records_nothing(palletd: Any, image: str, raw: Raw) -> None:
    palletd.cli_ok("run", "-d", "--name", "web", image, "sleep", "600")
    seq = raw.last_seq()
    request = cpb.ExecRequest(open=cpb.ExecOpen(container="web", cmd=["true"] + ["x" * 100_000] * 21))
    with pytest.raises(grpc.RpcError) as refused:
        for _ in raw.containers.Exec(iter([request]), timeout=30):
            pass
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith("the command and environment of the exec come to")
    assert raw.last_seq() == seq  # no exec_create


def test_stop_and_restart_refuse_a_negative_timeout_and_leave_it_running(palletd: Any, image: str, raw: Raw) -> None:
    palletd.cli_ok("run", "-d", "--name", "web", image, "sleep", "600")
    for call in (
        lambda: raw.containers.Stop(cpb.StopContainerRequest(container="web", timeout=-1), timeout=30),
        lambda: raw.containers.Restart(cpb.RestartContainerRequest(container="web", timeout=-5), timeout=30),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "invalid stop timeout" in (refused.value.details() or "")
    assert palletd.inspect("web")["State"]["Status"] == "running"


# --------------------------------------------------------------------------- the CLI

BIG = "9" * 20


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("stop", "-t", "99999999999", "web"), 1, "invalid --time value 99999999999"),
        (("restart", "-t", "99999999999", "web"), 1, "invalid --time value 99999999999"),
        (("logs", "--tail", BIG, "web"), 1, "invalid --tail value"),
        (("events", "--since-seq", BIG), 1, "--since-seq must be 0 to"),
        (("events", "--since", BIG), 1, "out of range"),
        (("run", "--stop-timeout", "99999999999", IMAGE, "true"), 125, "invalid --stop-timeout value"),
        (("run", "--log-opt", "max-size=" + "9" * 23, IMAGE, "true"), 125, "invalid log option max-size"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else None,
)
def test_cli_numbers_out_of_range_are_one_line_errors(
    palletd: Any, image: str, args: tuple[str, ...], code: int, message: str
) -> None:
    palletd.cli_ok("run", "-d", "--name", "web", image, "sleep", "600")
    result = palletd.cli(*args)
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert palletd.inspect("web")["State"]["Status"] == "running"
    assert palletd.cli_ok("ps", "-aq").split() == [palletd.inspect("web")["Id"][:12]]


def test_exec_refuses_a_relative_workdir(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "web", image, "sleep", "600")
    result = palletd.cli("exec", "-w", "relative", "web", "pwd")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "Error: the working directory 'relative' is invalid: it needs to be an absolute path\n"
    )


def test_exec_refuses_a_workdir_longer_than_linux_allows(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "web", image, "sleep", "600")
    result = palletd.cli("exec", "-w", "/" + "d" * 5000, "web", "pwd")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: the working directory '/ddd")
    assert result.stderr.endswith("is 5001 bytes: Linux allows paths of at most 4095 bytes\n")


def test_exec_in_a_missing_workdir_fails_like_docker_and_makes_nothing(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "web", image, "sleep", "600")
    result = palletd.cli("exec", "-w", "/missing", "web", "pwd")
    assert result.returncode == 126
    assert result.stdout == ""
    assert 'chdir to cwd ("/missing") failed: no such file or directory' in result.stderr
    assert palletd.cli("exec", "web", "ls", "-d", "/missing").returncode != 0
    # A directory that exists is fine, and an exec without -w runs where the container does.
    assert palletd.cli_ok("exec", "-w", "/tmp", "web", "pwd") == "/tmp\n"
    assert palletd.cli_ok("exec", "web", "pwd") == "/\n"
