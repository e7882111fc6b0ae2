"""The real `pallet` CLI (main()) against fake palletd servicers on a temporary unix socket.

The fakes implement the generated *ServiceServicer bases with a small in-memory state, so
these tests check what a user sees (stdout, stderr, exit code) and what the daemon was
asked, without a real daemon.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from pallet.client.cli import main
from pallet.v1 import (
    containers_pb2,
    containers_pb2_grpc,
    events_pb2,
    events_pb2_grpc,
    images_pb2,
    images_pb2_grpc,
    system_pb2,
    system_pb2_grpc,
)

ID_WEB = "a" * 12 + "1" * 52
ID_DB = "b" * 12 + "2" * 52
IMAGE_ID = "sha256:" + "c" * 64
STDOUT, STDERR = containers_pb2.STREAM_STDOUT, containers_pb2.STREAM_STDERR


@dataclass
class Script:
    """What a fake container does when attached: output, then exit (or echo stdin)."""

    output: list[tuple[Any, bytes]] = field(default_factory=list)  # (pallet.v1.Stream, data)
    exit_code: int = 0
    echo_stdin: bool = False
    repeat: int = 1


class FakeState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.containers: dict[str, containers_pb2.Container] = {}
        self.started: dict[str, threading.Event] = {}
        self.scripts: dict[str, Script] = {}
        self.requests: list[Any] = []
        self.removed: list[str] = []
        self.start_error: str | None = None
        self.images: list[images_pb2.Image] = []
        self.events: list[events_pb2.Event] = []
        self.imported: list[tuple[images_pb2.ImportHeader, bytes]] = []
        self.loaded: list[bytes] = []
        self.created_count = 0

    def add_container(self, cid: str, name: str, status: Any, **state: Any) -> containers_pb2.Container:
        c = containers_pb2.Container(
            id=cid,
            name=name,
            image="busybox",
            image_id=IMAGE_ID,
            path="sleep",
            args=["1000"],
            config=containers_pb2.ContainerConfig(
                image="busybox",
                name=name,
                cmd=["sleep", "1000"],
                env=["PATH=/bin"],
                labels={"tier": "web", "a": "1"},
                hostname=cid[:12],
            ),
            state=containers_pb2.ContainerState(status=status, **state),
            log_path=f"/var/lib/pallet/containers/{cid}/log",
            lower_dirs=["/l/2", "/l/1"],
            upper_dir="/u",
        )
        c.created.FromSeconds(int(time.time()) - 120)
        self.containers[cid] = c
        self.started[cid] = threading.Event()
        return c

    def find(self, ref: str, context: grpc.ServicerContext) -> containers_pb2.Container:
        with self.lock:
            for c in self.containers.values():
                if c.name == ref or c.id == ref:
                    return c
            matches = [c for c in self.containers.values() if ref and c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        context.abort(grpc.StatusCode.NOT_FOUND, f"No such container: {ref}")
        raise AssertionError("unreachable")


class FakeContainers(containers_pb2_grpc.ContainersServiceServicer):
    def __init__(self, state: FakeState) -> None:
        self.s = state

    def Create(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.s.requests.append(request)
        cfg = request.config
        if cfg.image == "nosuch":
            context.abort(grpc.StatusCode.NOT_FOUND, "No such image: nosuch")
        if any(c.name == cfg.name for c in self.s.containers.values()):
            context.abort(grpc.StatusCode.ALREADY_EXISTS, f'container name "{cfg.name}" is already in use')
        self.s.created_count += 1
        cid = f"{self.s.created_count:x}".rjust(64, "d")
        c = self.s.add_container(cid, cfg.name or "generated_name", containers_pb2.CONTAINER_STATUS_CREATED)
        c.config.CopyFrom(cfg)
        return containers_pb2.CreateContainerResponse(id=cid, name=c.name)

    def Start(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.s.requests.append(request)
        c = self.s.find(request.container, context)
        if self.s.start_error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, self.s.start_error)
        c.state.status = containers_pb2.CONTAINER_STATUS_RUNNING
        self.s.started[c.id].set()
        return containers_pb2.StartContainerResponse(pid=4242)

    def Stop(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.s.requests.append(request)
        self.s.find(request.container, context)
        return containers_pb2.StopContainerResponse()

    def Kill(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.s.requests.append(request)
        self.s.find(request.container, context)
        return containers_pb2.KillContainerResponse()

    def Restart(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.s.requests.append(request)
        self.s.find(request.container, context)
        return containers_pb2.RestartContainerResponse(pid=1)

    def Remove(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.s.requests.append(request)
        c = self.s.find(request.container, context)
        if c.state.status == containers_pb2.CONTAINER_STATUS_RUNNING and not request.force:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"container {c.name} is running: stop it first, or remove with force",
            )
        self.s.removed.append(c.id)
        del self.s.containers[c.id]
        return containers_pb2.RemoveContainerResponse()

    def List(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.s.requests.append(request)
        found = [
            c for c in self.s.containers.values()
            if request.all or c.state.status == containers_pb2.CONTAINER_STATUS_RUNNING
        ]
        return containers_pb2.ListContainersResponse(containers=found)

    def Inspect(self, request: Any, context: grpc.ServicerContext) -> Any:
        return containers_pb2.InspectContainerResponse(container=self.s.find(request.container, context))

    def Wait(self, request: Any, context: grpc.ServicerContext) -> Any:
        c = self.s.find(request.container, context)
        return containers_pb2.WaitContainerResponse(exit_code=c.state.exit_code)

    def Logs(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self.s.requests.append(request)
        c = self.s.find(request.container, context)
        base = 1_764_268_276_000_000_000
        yield containers_pb2.LogsResponse(chunks=[
            containers_pb2.LogChunk(stream=STDOUT, time_unix_nano=base + 5, data=b"out one\nout "),
            containers_pb2.LogChunk(stream=STDERR, time_unix_nano=base + 6, data=b"err line\n"),
        ])
        yield containers_pb2.LogsResponse(chunks=[
            containers_pb2.LogChunk(stream=STDOUT, time_unix_nano=base + 7, data=b"two\n"),
        ])
        if request.follow and c.name == "forever":
            while context.is_active():
                time.sleep(0.05)

    def Attach(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        first = next(request_iterator)
        self.s.requests.append(first)
        c = self.s.find(first.open.container, context)
        yield containers_pb2.AttachResponse(ready=containers_pb2.AttachReady())
        if not self.s.started[c.id].wait(5):
            return
        script = self.s.scripts.get(c.id, Script())
        for _ in range(script.repeat):
            for stream, data in script.output:
                yield containers_pb2.AttachResponse(output=containers_pb2.LogChunk(stream=stream, data=data))
        if script.echo_stdin:
            for req in request_iterator:
                if req.WhichOneof("payload") == "stdin":
                    yield containers_pb2.AttachResponse(
                        output=containers_pb2.LogChunk(stream=STDOUT, data=req.stdin.upper())
                    )
                elif req.WhichOneof("payload") == "close_stdin":
                    break
        if c.config.auto_remove:
            self.s.removed.append(c.id)
        yield containers_pb2.AttachResponse(exit=containers_pb2.Exit(exit_code=script.exit_code))

    def Exec(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        first = next(request_iterator)
        self.s.requests.append(first)
        c = self.s.find(first.open.container, context)
        if c.state.status != containers_pb2.CONTAINER_STATUS_RUNNING:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"container {c.name} is not running")
        cmd = list(first.open.cmd)
        if cmd[0] == "nosuchcmd":
            yield containers_pb2.ExecResponse(exit=containers_pb2.Exit(
                exit_code=127, error='exec: "nosuchcmd": executable file not found in $PATH'))
            return
        yield containers_pb2.ExecResponse(started=containers_pb2.ExecStarted(exec_id="e1", pid=99))
        if cmd[0] == "cat":
            for req in request_iterator:
                kind = req.WhichOneof("payload")
                if kind == "stdin":
                    yield containers_pb2.ExecResponse(output=containers_pb2.LogChunk(stream=STDOUT, data=req.stdin))
                elif kind == "close_stdin":
                    break
            yield containers_pb2.ExecResponse(exit=containers_pb2.Exit(exit_code=0))
            return
        yield containers_pb2.ExecResponse(output=containers_pb2.LogChunk(stream=STDOUT, data=" ".join(cmd).encode() + b"\n"))
        yield containers_pb2.ExecResponse(output=containers_pb2.LogChunk(stream=STDERR, data=b"warn\n"))
        yield containers_pb2.ExecResponse(exit=containers_pb2.Exit(exit_code=3))


class FakeImages(images_pb2_grpc.ImagesServiceServicer):
    def __init__(self, state: FakeState) -> None:
        self.s = state

    def _find(self, ref: str, context: grpc.ServicerContext) -> images_pb2.Image:
        for image in self.s.images:
            if ref in image.repo_tags or image.id == ref or image.id.removeprefix("sha256:").startswith(ref):
                return image
        context.abort(grpc.StatusCode.NOT_FOUND, f"No such image: {ref}")
        raise AssertionError("unreachable")

    def List(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.s.requests.append(request)
        return images_pb2.ListImagesResponse(images=self.s.images)

    def Inspect(self, request: Any, context: grpc.ServicerContext) -> Any:
        return images_pb2.InspectImageResponse(image=self._find(request.image, context))

    def Tag(self, request: Any, context: grpc.ServicerContext) -> Any:
        image = self._find(request.source, context)
        if ":" not in request.target:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid reference format: {request.target}")
        image.repo_tags.append(request.target)
        return images_pb2.TagImageResponse()

    def Remove(self, request: Any, context: grpc.ServicerContext) -> Any:
        image = self._find(request.image, context)
        tags = list(image.repo_tags)
        self.s.images.remove(image)
        return images_pb2.RemoveImageResponse(untagged=tags, deleted=[image.id])

    def Import(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Any:
        header = next(request_iterator).header
        data = b"".join(r.chunk for r in request_iterator)
        self.s.imported.append((header, data))
        image = images_pb2.Image(id="sha256:" + "e" * 64, repo_tags=[header.reference] if header.reference else [])
        return images_pb2.ImportResponse(image=image)

    def Load(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Any:
        data = b"".join(r.chunk for r in request_iterator)
        self.s.loaded.append(data)
        tagged = images_pb2.Image(id="sha256:" + "1" * 64, repo_tags=["busybox:latest"])
        untagged = images_pb2.Image(id="sha256:" + "2" * 64)
        return images_pb2.LoadResponse(images=[tagged, untagged], references=["busybox:latest"])

    def Pull(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self.s.requests.append(request)
        yield images_pb2.PullResponse(progress=images_pb2.Progress(status=f"Pulling {request.reference}"))
        image = images_pb2.Image(id=IMAGE_ID, repo_tags=["busybox:latest"])
        # A name no client-side parsing of "busybox" would make: the CLI must print the
        # daemon's.
        yield images_pb2.PullResponse(image=image, digest="sha256:" + "d" * 64,
                                      reference="mirror.example/library/busybox:latest")


class FakeEvents(events_pb2_grpc.EventsServiceServicer):
    def __init__(self, state: FakeState) -> None:
        self.s = state

    def Subscribe(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self.s.requests.append(request)
        for event in self.s.events:
            if event.seq > request.since_seq:
                yield events_pb2.SubscribeResponse(event=event)


class FakeSystem(system_pb2_grpc.SystemServiceServicer):
    def Version(self, request: Any, context: grpc.ServicerContext) -> Any:
        return system_pb2.VersionResponse(version="0.1.0", api_version="v1", python_version="3.11.7",
                                          os="linux", arch="amd64", kernel_version="6.1.0")

    def Info(self, request: Any, context: grpc.ServicerContext) -> Any:
        return system_pb2.InfoResponse(
            containers=3, containers_running=1, containers_stopped=2, images=2, server_version="0.1.0",
            root_dir="/var/lib/pallet", run_root="/run/pallet", storage_driver="overlay", cgroup_version="1",
            kernel_version="6.1.0", operating_system="Debian GNU/Linux 12", arch="amd64", ncpu=2,
            mem_total=8 * 1024**3, name="host1",
        )

    def Ping(self, request: Any, context: grpc.ServicerContext) -> Any:
        return system_pb2.PingResponse(api_version="v1")


@dataclass
class Daemon:
    host: str
    state: FakeState


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    state = FakeState()
    executor = futures.ThreadPoolExecutor(max_workers=16)
    server = grpc.server(executor)
    containers_pb2_grpc.add_ContainersServiceServicer_to_server(  # type: ignore[no-untyped-call]
        FakeContainers(state), server
    )
    images_pb2_grpc.add_ImagesServiceServicer_to_server(  # type: ignore[no-untyped-call]
        FakeImages(state), server
    )
    events_pb2_grpc.add_EventsServiceServicer_to_server(  # type: ignore[no-untyped-call]
        FakeEvents(state), server
    )
    system_pb2_grpc.add_SystemServiceServicer_to_server(  # type: ignore[no-untyped-call]
        FakeSystem(), server
    )
    sock = tmp_path / "pallet.sock"
    server.add_insecure_port(f"unix://{sock}")
    server.start()
    try:
        yield Daemon(f"unix://{sock}", state)
    finally:
        for event in state.started.values():
            event.set()  # release Attach handlers still waiting for a start
        server.stop(grace=None).wait(5)
        executor.shutdown(wait=True, cancel_futures=True)


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(daemon: Daemon, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    def run(*argv: str, stdin: bytes = b"") -> Result:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        capsys.readouterr()
        code = main(["-H", daemon.host, *argv])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


# -- ps / inspect / images ---------------------------------------------------------------------


def test_ps_lists_running_containers_as_a_docker_table(cli: Any, daemon: Daemon) -> None:
    daemon.state.add_container(ID_WEB, "web", containers_pb2.CONTAINER_STATUS_RUNNING)
    daemon.state.containers[ID_WEB].state.started_at.FromSeconds(int(time.time()) - 5)
    daemon.state.add_container(ID_DB, "db", containers_pb2.CONTAINER_STATUS_EXITED, exit_code=3)
    result = cli("ps")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "CONTAINER ID   IMAGE     COMMAND        CREATED         STATUS         PORTS     NAMES"
    assert re.fullmatch(r'aaaaaaaaaaaa   busybox   "sleep 1000"   2 minutes ago   Up \d seconds {13}web', lines[1])
    assert len(lines) == 2


def test_ps_all_quiet_and_filters_reach_the_daemon(cli: Any, daemon: Daemon) -> None:
    daemon.state.add_container(ID_WEB, "web", containers_pb2.CONTAINER_STATUS_RUNNING)
    daemon.state.add_container(ID_DB, "db", containers_pb2.CONTAINER_STATUS_EXITED, exit_code=3)
    result = cli("ps", "-a", "-q", "-f", "status=exited", "--filter", "label=tier")
    assert result.code == 0
    assert result.out.split() == [ID_WEB[:12], ID_DB[:12]]
    request = daemon.state.requests[-1]
    assert request.all and list(request.filters) == ["status=exited", "label=tier"]
    assert cli("ps", "-aq", "--no-trunc").out.split() == [ID_WEB, ID_DB]


def test_ps_format_table_and_template(cli: Any, daemon: Daemon) -> None:
    daemon.state.add_container(ID_WEB, "web", containers_pb2.CONTAINER_STATUS_RUNNING)
    result = cli("ps", "--format", "table {{.Names}}\\t{{.Label \"tier\"}}\\t{{.State}}")
    assert result.out.splitlines() == ["NAMES     LABEL     STATE", "web       web       running"]
    assert cli("ps", "--format", "{{.ID}} {{.Names}}").out == f"{ID_WEB[:12]} web\n"
    bad = cli("ps", "--format", "{{.Nope}}")
    assert bad.code == 1 and bad.err.startswith("Error: template: ")
    [line] = cli("ps", "--format", "{{json .}}").out.splitlines()
    assert json.loads(line)["Names"] == "web" and "Label" not in json.loads(line)
    assert json.loads(cli("ps", "--format", "json").out)["ID"] == ID_WEB[:12]
    assert cli("ps", "--format", "table").out.startswith("CONTAINER ID   IMAGE ")


def test_ps_rejects_a_malformed_filter(cli: Any) -> None:
    result = cli("ps", "-f", "status")
    assert result.code == 1
    assert "bad format of filter" in result.err


def test_inspect_prints_a_docker_shaped_json_array(cli: Any, daemon: Daemon) -> None:
    c = daemon.state.add_container(ID_WEB, "web", containers_pb2.CONTAINER_STATUS_RUNNING, pid=1234)
    c.state.started_at.seconds, c.state.started_at.nanos = 1_764_268_276, 123_456_789
    result = cli("inspect", "web")
    assert result.code == 0, result.err
    assert result.out.startswith("[\n    {\n        \"Id\": ")
    [doc] = json.loads(result.out)
    assert doc["Id"] == ID_WEB and doc["Name"] == "/web" and doc["Image"] == IMAGE_ID
    assert doc["State"]["Status"] == "running" and doc["State"]["Running"] is True
    assert doc["State"]["Pid"] == 1234
    assert doc["State"]["StartedAt"] == "2025-11-27T18:31:16.123456789Z"
    assert doc["State"]["FinishedAt"] == "0001-01-01T00:00:00Z"
    assert doc["Config"]["Labels"] == {"a": "1", "tier": "web"}
    assert doc["GraphDriver"] == {"Data": {"LowerDir": "/l/2:/l/1", "UpperDir": "/u"}, "Name": "overlay"}
    expected = {
        "Binds": None, "LogConfig": {"Type": "local", "Config": {}}, "NetworkMode": "default",
        "PortBindings": {}, "AutoRemove": False, "VolumesFrom": None, "Dns": [], "DnsOptions": [],
        "DnsSearch": [], "ExtraHosts": None, "PublishAllPorts": False, "Tmpfs": None, "Mounts": None,
        "Memory": 0, "MemorySwap": 0, "MemoryReservation": 0, "NanoCpus": 0, "CpuShares": 0,
        "CpuPeriod": 0, "CpuQuota": 0, "CpusetCpus": "", "CpusetMems": "", "PidsLimit": None,
        "BlkioWeight": 0, "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None,
        "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None, "OomKillDisable": False,
        "CapAdd": None, "CapDrop": None, "GroupAdd": None, "Privileged": False,
        "ReadonlyRootfs": False, "SecurityOpt": None, "UsernsMode": "", "ShmSize": 0,
        "Devices": [], "Ulimits": None, "RestartPolicy": {"MaximumRetryCount": 0, "Name": "no"},
    }
    # These as docker shows them; the limits and security keys have tests of their own.
    assert {key: doc["HostConfig"].get(key, "missing") for key in expected} == expected
    assert doc["Mounts"] == []


def test_inspect_format_prints_one_line_per_object(cli: Any, daemon: Daemon) -> None:
    daemon.state.add_container(ID_WEB, "web", containers_pb2.CONTAINER_STATUS_RUNNING, pid=7)
    daemon.state.add_container(ID_DB, "db", containers_pb2.CONTAINER_STATUS_EXITED)
    result = cli("inspect", "-f", "{{.Name}} {{.State.Pid}} {{index .Config.Labels \"tier\"}}", "web", "db")
    assert result.out == "/web 7 web\n/db 0 web\n"
    result = cli("inspect", "--format", "{{if .State.Running}}yes{{else}}no{{end}}", "web", "bbbb")
    assert result.out == "yes\nno\n"


def test_inspect_template_errors_exit_1(cli: Any, daemon: Daemon) -> None:
    daemon.state.add_container(ID_WEB, "web", containers_pb2.CONTAINER_STATUS_RUNNING)
    missing = cli("inspect", "-f", "{{.State.Nope}}", "web")
    assert missing.code == 1
    assert missing.err.startswith("Error: template: ") and "Nope" in missing.err
    unparsable = cli("inspect", "-f", "{{if}}", "web")
    assert unparsable.code == 1 and unparsable.err.startswith("Error: template: ")


def test_inspect_falls_back_to_images_and_reports_missing_objects(cli: Any, daemon: Daemon) -> None:
    daemon.state.images.append(images_pb2.Image(id=IMAGE_ID, repo_tags=["busybox:latest"], size=4_200_000,
                                                layers=["sha256:" + "f" * 64], os="linux", architecture="amd64"))
    result = cli("inspect", "busybox:latest", "nosuch")
    assert result.code == 1
    [doc] = json.loads(result.out)
    assert doc["Id"] == IMAGE_ID and doc["RootFS"] == {"Type": "layers", "Layers": ["sha256:" + "f" * 64]}
    assert result.err == "Error: No such object: nosuch\n"
    only_containers = cli("inspect", "--type", "container", "busybox:latest")
    assert only_containers.code == 1
    assert only_containers.out == ""
    assert only_containers.err == "Error: No such container: busybox:latest\n"
    image = cli("image", "inspect", "-f", "{{.Os}}/{{.Architecture}} {{.Size}}", "busybox:latest")
    assert image.out == "linux/amd64 4200000\n"


def test_images_table_and_quiet(cli: Any, daemon: Daemon) -> None:
    created = int(time.time()) - 3 * 3600
    image = images_pb2.Image(id=IMAGE_ID, repo_tags=["busybox:latest", "reg:5000/app:1.0"], size=4_261_000)
    image.created.FromSeconds(created)
    dangling = images_pb2.Image(id="sha256:" + "d" * 64, size=512)
    dangling.created.FromSeconds(created)
    daemon.state.images.extend([image, dangling])
    result = cli("images")
    assert result.code == 0
    assert result.out.splitlines() == [
        "REPOSITORY     TAG       IMAGE ID       CREATED       SIZE",
        "busybox        latest    cccccccccccc   3 hours ago   4.26MB",
        "reg:5000/app   1.0       cccccccccccc   3 hours ago   4.26MB",
        "<none>         <none>    dddddddddddd   3 hours ago   512B",
    ]
    assert cli("image", "ls", "-q").out.split() == ["cccccccccccc", "dddddddddddd"]


# -- run / create / start ... -------------------------------------------------------------------


def test_run_attached_streams_output_and_exits_with_the_container_code(
    daemon: Daemon, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    daemon.state.scripts["1".rjust(64, "d")] = Script(
        output=[(STDOUT, b"hello\x00\xff\n"), (STDERR, b"oops\n")], exit_code=7
    )
    code = main(["-H", daemon.host, "run", "--rm", "-e", "A=1", "--name", "web", "busybox", "sh", "-c", "exit 7"])
    out, err = capsysbinary.readouterr()
    assert code == 7
    assert out == b"hello\x00\xff\n"
    assert err == b"oops\n"
    create = next(r for r in daemon.state.requests if isinstance(r, containers_pb2.CreateContainerRequest))
    assert create.config.auto_remove and list(create.config.cmd) == ["sh", "-c", "exit 7"]
    assert list(create.config.env) == ["A=1"] and create.config.name == "web"
    attach = next(r for r in daemon.state.requests if isinstance(r, containers_pb2.AttachRequest))
    assert attach.open.stdout and attach.open.stderr and not attach.open.stdin


def test_run_interactive_forwards_stdin_until_eof(cli: Any, daemon: Daemon) -> None:
    daemon.state.scripts["1".rjust(64, "d")] = Script(echo_stdin=True, exit_code=0)
    result = cli("run", "-i", "busybox", "cat", stdin=b"abc\n" * 1000)
    assert result.code == 0
    assert result.out == "ABC\n" * 1000
    create = next(r for r in daemon.state.requests if isinstance(r, containers_pb2.CreateContainerRequest))
    assert create.config.open_stdin


def test_run_detached_prints_the_full_id(cli: Any, daemon: Daemon) -> None:
    result = cli("run", "-d", "-l", "a=b", "-l", "flag", "busybox", "sleep", "10")
    assert result.code == 0
    assert result.out == "1".rjust(64, "d") + "\n"
    create = next(r for r in daemon.state.requests if isinstance(r, containers_pb2.CreateContainerRequest))
    assert dict(create.config.labels) == {"a": "b", "flag": ""}
    assert daemon.state.containers["1".rjust(64, "d")].state.status == containers_pb2.CONTAINER_STATUS_RUNNING


def test_run_and_create_errors_exit_125(cli: Any, daemon: Daemon) -> None:
    result = cli("run", "nosuch")
    assert result.code == 125
    assert result.err == "Error: No such image: nosuch\n"
    assert cli("create", "nosuch").code == 125
    usage = cli("run", "--bogus", "busybox")
    assert usage.code == 125 and "unrecognized arguments" in usage.err
    missing = cli("run")
    assert missing.code == 125 and "IMAGE" in missing.err


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ('exec: "nosuch": executable file not found in $PATH', 127),
        ('exec: "/etc/passwd": permission denied', 126),
        ("cgroup setup failed: no space left on device", 125),
    ],
)
def test_run_start_failure_exit_codes_and_rm(cli: Any, daemon: Daemon, reason: str, code: int) -> None:
    daemon.state.start_error = reason
    result = cli("run", "--rm", "busybox", "nosuch")
    assert result.code == code
    assert result.err == f"Error: {reason}\n"
    assert daemon.state.removed == ["1".rjust(64, "d")]
    assert daemon.state.containers == {}
    detached = cli("run", "-d", "busybox", "nosuch")
    assert detached.code == code and detached.out == ""
    assert list(daemon.state.containers) == ["2".rjust(64, "d")]  # without --rm it stays


def test_create_prints_the_id_and_sends_the_config(cli: Any, daemon: Daemon, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=1\nB=file\n\nHOME_COPY\n")
    monkeypatch.setenv("HOME_COPY", "/root")
    result = cli("create", "--env-file", str(env_file), "-e", "B=flag", "-w", "/srv", "-u", "app",
                 "--hostname", "h", "--entrypoint", "", "busybox")
    assert result.code == 0
    assert result.out == "1".rjust(64, "d") + "\n"
    cfg = daemon.state.requests[-1].config
    assert list(cfg.env) == ["FROM_FILE=1", "B=file", "HOME_COPY=/root", "B=flag"]
    assert cfg.working_dir == "/srv" and cfg.user == "app" and cfg.hostname == "h"
    assert cfg.entrypoint_set and list(cfg.entrypoint) == []
    assert not cfg.auto_remove


def test_bad_env_file_is_a_clear_error(cli: Any, tmp_path: Path) -> None:
    result = cli("run", "--env-file", str(tmp_path / "missing"), "busybox")
    assert result.code == 125
    assert result.err.startswith("Error: cannot read env file ") and "No such file" in result.err


def test_multi_container_verbs_continue_after_errors(cli: Any, daemon: Daemon) -> None:
    daemon.state.add_container(ID_WEB, "web", containers_pb2.CONTAINER_STATUS_RUNNING)
    daemon.state.add_container(ID_DB, "db", containers_pb2.CONTAINER_STATUS_EXITED)
    result = cli("stop", "-t", "3", "web", "nosuch", "db")
    assert result.code == 1
    assert result.out == "web\ndb\n"
    assert result.err == "Error: No such container: nosuch\n"
    stop = [r for r in daemon.state.requests if isinstance(r, containers_pb2.StopContainerRequest)]
    assert [r.timeout for r in stop] == [3, 3, 3]
    assert cli("kill", "-s", "HUP", "web").out == "web\n"
    assert daemon.state.requests[-1].signal == "HUP"
    assert cli("start", "db").out == "db\n"
    refused = cli("rm", "web")
    assert refused.code == 1
    assert refused.err == "Error: container web is running: stop it first, or remove with force\n"
    assert cli("rm", "-f", "web").out == "web\n"
    assert cli("container", "restart", "bbb").out == "bbb\n"
    assert cli("stop", "--signal", "INT", "db").out == "db\n"
    assert daemon.state.requests[-1].signal == "INT"
    assert cli("restart", "-s", "USR1", "-t", "1", "db").out == "db\n"
    assert (daemon.state.requests[-1].signal, daemon.state.requests[-1].timeout) == ("USR1", 1)


def test_wait_prints_exit_codes(cli: Any, daemon: Daemon) -> None:
    daemon.state.add_container(ID_DB, "db", containers_pb2.CONTAINER_STATUS_EXITED, exit_code=42)
    assert cli("wait", "db").out == "42\n"


# -- logs / exec / events ------------------------------------------------------------------------


def test_logs_split_streams_and_timestamps(cli: Any, daemon: Daemon) -> None:
    daemon.state.add_container(ID_WEB, "web", containers_pb2.CONTAINER_STATUS_RUNNING)
    result = cli("logs", "web")
    assert result.code == 0
    assert result.out == "out one\nout two\n"
    assert result.err == "err line\n"
    request = daemon.state.requests[-1]
    assert request.tail == -1 and not request.follow and request.stdout and request.stderr
    stamped = cli("logs", "-t", "--tail", "5", "--since", "1764268000", "web")
    assert stamped.out == (
        "2025-11-27T18:31:16.000000005Z out one\n2025-11-27T18:31:16.000000005Z out two\n"
    )
    assert stamped.err == "2025-11-27T18:31:16.000000006Z err line\n"
    request = daemon.state.requests[-1]
    assert request.tail == 5 and request.since.seconds == 1764268000


def test_logs_of_a_missing_container(cli: Any) -> None:
    result = cli("logs", "nosuch")
    assert (result.code, result.out, result.err) == (1, "", "Error: No such container: nosuch\n")


def test_exec_streams_and_exits_with_the_process_code(cli: Any, daemon: Daemon) -> None:
    daemon.state.add_container(ID_WEB, "web", containers_pb2.CONTAINER_STATUS_RUNNING)
    result = cli("exec", "-e", "X=1", "-w", "/tmp", "web", "echo", "-n", "hi")
    assert result.code == 3
    assert result.out == "echo -n hi\n"
    assert result.err == "warn\n"
    opened = daemon.state.requests[-1].open
    assert list(opened.env) == ["X=1"] and opened.working_dir == "/tmp" and not opened.stdin
    piped = cli("exec", "-i", "web", "cat", stdin=b"data\x00in\n")
    assert (piped.code, piped.out) == (0, "data\x00in\n")


def test_exec_detached_prints_nothing(cli: Any, daemon: Daemon) -> None:
    daemon.state.add_container(ID_WEB, "web", containers_pb2.CONTAINER_STATUS_RUNNING)
    result = cli("exec", "-d", "web", "touch", "/tmp/x")
    assert (result.code, result.out, result.err) == (0, "", "")
    assert list(daemon.state.requests[-1].open.cmd) == ["touch", "/tmp/x"]


def test_exec_failures(cli: Any, daemon: Daemon) -> None:
    daemon.state.add_container(ID_WEB, "web", containers_pb2.CONTAINER_STATUS_RUNNING)
    daemon.state.add_container(ID_DB, "db", containers_pb2.CONTAINER_STATUS_EXITED)
    notfound = cli("exec", "web", "nosuchcmd")
    assert notfound.code == 127
    assert "executable file not found" in notfound.err
    stopped = cli("exec", "db", "ls")
    assert (stopped.code, stopped.err) == (1, "Error: container db is not running\n")
    usage = cli("exec", "web")
    assert usage.code == 2 and "CMD" in usage.err


def test_events_lines_with_and_without_seq(cli: Any, daemon: Daemon) -> None:
    for seq, action in ((41, "create"), (42, "start")):
        event = events_pb2.Event(seq=seq, type="container", action=action, actor_id=ID_WEB,
                                 attributes={"name": "web", "image": "busybox"})
        event.time.seconds, event.time.nanos = 1_795_804_276, 123_456_789
        daemon.state.events.append(event)
    result = cli("events", "--until", "0s")
    assert result.code == 0
    assert not daemon.state.requests[-1].HasField("since_seq")
    assert result.out.splitlines() == [
        f"2026-11-27T18:31:16.123456789Z container create {ID_WEB} (image=busybox, name=web)",
        f"2026-11-27T18:31:16.123456789Z container start {ID_WEB} (image=busybox, name=web)",
    ]
    since = cli("events", "--since-seq", "41", "-f", "type=container", "--until", "0s")
    assert since.out.splitlines() == [
        f"[42] 2026-11-27T18:31:16.123456789Z container start {ID_WEB} (image=busybox, name=web)",
    ]
    request = daemon.state.requests[-1]
    assert request.since_seq == 41 and list(request.filters) == ["type=container"]
    whole = cli("events", "--since-seq", "0", "--until", "0s")
    assert daemon.state.requests[-1].HasField("since_seq") and daemon.state.requests[-1].since_seq == 0
    assert whole.out.startswith("[41] ")
    templated = cli("events", "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}", "--until", "0s")
    assert templated.out == "container create web\ncontainer start web\n"


# -- images verbs ---------------------------------------------------------------------------------


def test_tag_rmi_import_load(cli: Any, daemon: Daemon, tmp_path: Path) -> None:
    daemon.state.images.append(images_pb2.Image(id=IMAGE_ID, repo_tags=["busybox:latest"]))
    assert cli("tag", "busybox:latest", "mine:1").code == 0
    bad_tag = cli("tag", "busybox:latest", "noversion")
    assert (bad_tag.code, bad_tag.err) == (1, "Error: invalid reference format: noversion\n")
    removed = cli("rmi", "busybox:latest", "nosuch")
    assert removed.code == 1
    assert removed.out == f"Untagged: busybox:latest\nUntagged: mine:1\nDeleted: {IMAGE_ID}\n"
    assert removed.err == "Error: No such image: nosuch\n"
    tar = tmp_path / "rootfs.tar"
    tar.write_bytes(b"x" * 700_000)
    imported = cli("import", "-c", 'CMD ["sh"]', "-m", "hi", str(tar), "mine:2")
    assert imported.out == "sha256:" + "e" * 64 + "\n"
    header, data = daemon.state.imported[-1]
    assert (header.reference, header.message, list(header.changes)) == ("mine:2", "hi", ['CMD ["sh"]'])
    assert data == b"x" * 700_000
    from_stdin = cli("image", "import", "-", stdin=b"tarbytes")
    assert from_stdin.code == 0 and daemon.state.imported[-1][1] == b"tarbytes"
    missing = cli("import", str(tmp_path / "nope.tar"))
    assert missing.code == 1 and "cannot open" in missing.err
    loaded = cli("load", stdin=b"archive")
    assert loaded.out == f"Loaded image: busybox:latest\nLoaded image ID: sha256:{'2' * 64}\n"
    assert daemon.state.loaded == [b"archive"]


def test_pull_prints_the_name_the_daemon_pulled(cli: Any, daemon: Daemon, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PALLET_CONFIG", str(tmp_path))
    pulled = cli("pull", "busybox")
    assert pulled.code == 0, pulled.err
    assert pulled.out == "Pulling busybox\nmirror.example/library/busybox:latest\n"
    assert cli("pull", "-q", "busybox").out == "busybox:latest\n"


# -- system -----------------------------------------------------------------------------------------


def test_version_and_info(cli: Any) -> None:
    version = cli("version")
    assert version.code == 0
    assert version.out.startswith("Client:\n Version:           0.1.0\n")
    assert "\nServer:\n Version:           0.1.0\n API version:       v1\n" in version.out
    info = cli("info")
    assert " Containers: 3\n  Running: 1\n  Paused: 0\n  Stopped: 2\n Images: 2\n" in info.out
    assert " Total Memory: 8GiB\n" in info.out and " Pallet Root Dir: /var/lib/pallet\n" in info.out
    assert cli("version", "-f", "{{.Server.Arch}}").out == "amd64\n"


def test_unreachable_daemon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = f"unix://{tmp_path}/none.sock"
    assert main(["-H", host, "ps"]) == 1
    assert capsys.readouterr().err == f"Error: daemon unavailable: cannot connect to palletd at {host}: is it running?\n"
    assert main(["-H", host, "run", "busybox"]) == 125
    assert capsys.readouterr().err == f"Error: daemon unavailable: cannot connect to palletd at {host}: is it running?\n"
    assert main(["-H", host, "stop", "a", "b"]) == 1
    assert capsys.readouterr().err.count("cannot connect") == 1


def test_host_from_environment(daemon: Daemon, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PALLET_HOST", daemon.host)
    assert main(["version", "--format", "{{.Server.Version}}"]) == 0
    assert capsys.readouterr().out == "0.1.0\n"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ps", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    assert main(["nosuchverb"]) == 2
    assert main(["--help"]) == 0
    assert "images" in capsys.readouterr().out


# -- through a real process: throughput and Ctrl-C ----------------------------------------------


def _pallet(host: str, *argv: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pallet.client.cli", "-H", host, *argv],
        stdout=kwargs.pop("stdout", subprocess.PIPE), stderr=subprocess.PIPE, **kwargs,
    )


def test_run_output_arrives_whole(daemon: Daemon, tmp_path: Path) -> None:
    """An attached run delivers every byte of a large stdout stream, in order.

    (Its speed is a figure for bench/, not a pass/fail bound here.)"""
    chunk = bytes(range(256)) * 256  # 64 KiB, not all one byte, so order shows
    total_chunks = 320  # 21 MB
    daemon.state.scripts["1".rjust(64, "d")] = Script(output=[(STDOUT, chunk)], repeat=total_chunks)
    out = tmp_path / "out"
    with out.open("wb") as sink:
        proc = _pallet(daemon.host, "run", "busybox", stdout=sink)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.stat().st_size == len(chunk) * total_chunks
    with out.open("rb") as got:
        while block := got.read(len(chunk)):
            assert block == chunk


def test_ctrl_c_during_logs_follow_exits_130_quietly(daemon: Daemon) -> None:
    daemon.state.add_container(ID_WEB, "forever", containers_pb2.CONTAINER_STATUS_RUNNING)
    proc = _pallet(daemon.host, "logs", "-f", "forever")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"out one\n"
        proc.send_signal(2)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    # Only the log's own stderr may have arrived; no traceback, no "Error:".
    assert err in (b"", b"err line\n")


def test_ctrl_c_during_attached_run_is_forwarded_to_the_container(daemon: Daemon) -> None:
    # docker's --sig-proxy (default on, without -t): the signal goes to the container's
    # process through Kill, and the CLI stays attached.
    daemon.state.scripts["1".rjust(64, "d")] = Script(output=[(STDOUT, b"started\n")], echo_stdin=True)
    proc = _pallet(daemon.host, "run", "-i", "busybox", stdin=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"started\n"
        proc.send_signal(2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not [
            r for r in daemon.state.requests if isinstance(r, containers_pb2.KillContainerRequest)
        ]:
            time.sleep(0.05)
        kills = [r for r in daemon.state.requests if isinstance(r, containers_pb2.KillContainerRequest)]
        assert [k.signal for k in kills] == ["2"]
        assert proc.poll() is None  # still attached
    finally:
        proc.kill()
        proc.communicate(timeout=10)


def test_ctrl_c_during_attached_run_without_sig_proxy_exits_130_quietly(daemon: Daemon) -> None:
    daemon.state.scripts["1".rjust(64, "d")] = Script(output=[(STDOUT, b"started\n")], echo_stdin=True)
    proc = _pallet(daemon.host, "run", "-i", "--sig-proxy=false", "busybox", stdin=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"started\n"
        proc.send_signal(2)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert err == b""
