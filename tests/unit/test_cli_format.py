"""What the CLI prints: durations, sizes, timestamps, tables, statuses, inspect JSON, events."""

from __future__ import annotations

import json

import pytest

from pallet.client import format as fmt
from pallet.client import views
from pallet.v1.docker import events as docker_events
from pallet.v1 import containers_pb2, events_pb2, images_pb2

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.4, "Less than a second"),
        (1, "1 second"),
        (5, "5 seconds"),
        (59.9, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (59 * 60, "59 minutes"),
        (3600, "About an hour"),
        (5399, "About an hour"),
        (5400, "2 hours"),
        (47 * 3600, "47 hours"),
        (48 * 3600, "2 days"),
        (13 * 86400, "13 days"),
        (14 * 86400, "2 weeks"),
        (60 * 86400, "2 months"),
        (3 * 365 * 86400, "3 years"),
    ],
)
def test_human_duration_matches_docker(seconds: float, text: str) -> None:
    assert fmt.human_duration(seconds) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (512, "512B"),
        (999, "999B"),
        (1000, "1kB"),
        (4_200_000, "4.2MB"),
        (4_261_000, "4.26MB"),
        (1_234_567_890, "1.23GB"),
        (999_999, "1e+03kB"),
    ],
)
def test_human_size_is_decimal_like_docker(size: int, text: str) -> None:
    assert fmt.human_size(size) == text


def test_bytes_size_is_binary() -> None:
    assert fmt.bytes_size(8 * 1024**3) == "8GiB"
    assert fmt.bytes_size(8_232_000_000) == "7.667GiB"


def test_rfc3339_nano_has_nine_digits_and_a_zero_form() -> None:
    assert fmt.rfc3339_nano(1_795_804_276, 123_456_789) == "2026-11-27T18:31:16.123456789Z"
    assert fmt.rfc3339_nano(1_795_804_276, 5) == "2026-11-27T18:31:16.000000005Z"
    assert fmt.rfc3339_nano(0, 0) == "0001-01-01T00:00:00Z"
    assert fmt.ns_text(1_795_804_276_000_000_001) == "2026-11-27T18:31:16.000000001Z"


def test_tabwriter_pads_columns_by_three_with_a_minimum_of_ten() -> None:
    text = fmt.table([["CONTAINER ID", "IMAGE", "NAMES"], ["abc", "a-very-long-image-name", "web"]])
    assert text.splitlines() == [
        "CONTAINER ID   IMAGE                    NAMES",
        "abc            a-very-long-image-name   web",
    ]
    # The last cell of a line is never padded; empty cells still take their column.
    assert fmt.tabwrite("a\t\tz\nbb\t\ty") == "a                   z\nbb                  y"


def _container(status: int, **state: object) -> containers_pb2.Container:
    c = containers_pb2.Container(
        id="f" * 64,
        name="web",
        image="busybox",
        image_id="sha256:" + "e" * 64,
        path="/bin/sh",
        args=["-c", "while true; do sleep 1; done"],
        config=containers_pb2.ContainerConfig(image="busybox", env=["A=1"], labels={"z": "1", "a": "2"}),
        state=containers_pb2.ContainerState(status=status, **state),  # type: ignore[arg-type]
    )
    c.created.FromSeconds(int(NOW) - 7200)
    return c


def test_status_strings() -> None:
    running = _container(containers_pb2.CONTAINER_STATUS_RUNNING)
    running.state.started_at.FromSeconds(int(NOW) - 5)
    assert views.container_status(running, NOW) == "Up 5 seconds"
    exited = _container(containers_pb2.CONTAINER_STATUS_EXITED, exit_code=137)
    exited.state.finished_at.FromSeconds(int(NOW) - 3)
    assert views.container_status(exited, NOW) == "Exited (137) 3 seconds ago"
    assert views.container_status(_container(containers_pb2.CONTAINER_STATUS_CREATED), NOW) == "Created"
    paused = _container(containers_pb2.CONTAINER_STATUS_PAUSED)
    paused.state.started_at.FromSeconds(int(NOW) - 3600)
    assert views.container_status(paused, NOW) == "Up About an hour (Paused)"
    assert views.container_status(_container(containers_pb2.CONTAINER_STATUS_DEAD), NOW) == "Dead"


def test_ps_table_truncates_the_command_and_id() -> None:
    c = _container(containers_pb2.CONTAINER_STATUS_CREATED)
    lines = views.ps_table([c], NOW).splitlines()
    assert lines[1] == 'ffffffffffff   busybox   "/bin/sh -c while tr…"   2 hours ago   Created             web'
    wide = views.ps_table([c], NOW, trunc=False).splitlines()[1]
    assert wide.startswith("f" * 64 + "   busybox   \"/bin/sh -c while true; do sleep 1; done\"")


def test_inspect_container_shape() -> None:
    c = _container(containers_pb2.CONTAINER_STATUS_EXITED, exit_code=1, error="boom", pid=0)
    c.state.started_at.seconds, c.state.started_at.nanos = 1_795_804_276, 1
    c.config.stop_timeout = 3
    doc = views.inspect_container(c)
    assert list(doc) == ["Id", "Created", "Path", "Args", "State", "Image", "LogPath", "Name", "RestartCount",
                         "Driver", "Platform", "HostConfig", "GraphDriver", "Mounts", "Config", "NetworkSettings"]
    assert doc["State"] == {
        "Status": "exited", "Running": False, "Paused": False, "Restarting": False, "OOMKilled": False,
        "Dead": False, "Pid": 0, "ExitCode": 1, "Error": "boom",
        "StartedAt": "2026-11-27T18:31:16.000000001Z", "FinishedAt": "0001-01-01T00:00:00Z",
    }
    assert doc["Name"] == "/web"
    assert doc["Config"]["Entrypoint"] is None and doc["Config"]["Cmd"] is None
    assert doc["Config"]["Labels"] == {"a": "2", "z": "1"} and list(doc["Config"]["Labels"]) == ["a", "z"]
    assert doc["Config"]["StopTimeout"] == 3
    assert json.loads(json.dumps(doc)) == doc


def test_inspect_image_shape() -> None:
    image = images_pb2.Image(
        id="sha256:" + "e" * 64, repo_tags=["busybox:latest"], size=4_200_000, layers=["sha256:" + "1" * 64],
        config=images_pb2.ImageConfig(cmd=["sh"], exposed_ports=["80/tcp"]), os="linux", architecture="amd64",
    )
    doc = views.inspect_image(image)
    assert doc["RootFS"] == {"Type": "layers", "Layers": ["sha256:" + "1" * 64]}
    assert doc["Config"]["ExposedPorts"] == {"80/tcp": {}} and doc["Config"]["Volumes"] is None
    assert doc["Config"]["Cmd"] == ["sh"] and doc["Created"] == "0001-01-01T00:00:00Z"


def test_images_rows_split_references_and_show_untagged() -> None:
    tagged = images_pb2.Image(id="sha256:" + "a" * 64, repo_tags=["localhost:5000/app:v1", "busybox:latest"])
    untagged = images_pb2.Image(id="sha256:" + "b" * 64)
    rows = views.image_rows([tagged, untagged], NOW)
    assert [(r["Repository"], r["Tag"], r["ID"]) for r in rows] == [
        ("localhost:5000/app", "v1", "aaaaaaaaaaaa"),
        ("busybox", "latest", "aaaaaaaaaaaa"),
        ("<none>", "<none>", "bbbbbbbbbbbb"),
    ]


def test_event_line_sorts_attributes_and_adds_seq() -> None:
    event = events_pb2.Event(seq=42, type="container", action="create", actor_id="abc",
                             attributes={"name": "web", "image": "busybox"})
    event.time.seconds, event.time.nanos = 1_795_804_276, 123_456_789
    assert views.event_line(event) == "2026-11-27T18:31:16.123456789Z container create abc (image=busybox, name=web)"
    assert views.event_line(event, with_seq=True).startswith("[42] 2026-11-27T18:31:16.123456789Z ")
    bare = events_pb2.Event(seq=1, type="daemon", action="reload", actor_id="x")
    assert views.event_line(bare) == "0001-01-01T00:00:00Z daemon reload x"
    assert docker_events.event_fields(event)["Actor"] == {"ID": "abc", "Attributes": {"image": "busybox", "name": "web"}}


def test_timestamp_prefixer_marks_each_line_across_chunks() -> None:
    prefixer = fmt.TimestampPrefixer(clock_text=lambda ns: f"T{ns}")
    assert prefixer.feed(1, 1, b"one\ntw") == b"T1 one\nT1 tw"
    assert prefixer.feed(1, 2, b"o\nthree\n") == b"o\nT2 three\n"
    assert prefixer.feed(2, 3, b"err\n") == b"T3 err\n"
    assert prefixer.feed(1, 4, b"\n") == b"T4 \n"


def test_render_rows_table_json_and_plain() -> None:
    rows = [{"ID": "abc", "Names": "web", "Label": lambda k: "v"}]
    headers = {"ID": "CONTAINER ID", "Names": "NAMES", "Label": lambda k: "LABEL"}
    assert fmt.render_rows("table {{.ID}}\\t{{.Names}}", rows, headers) == ["CONTAINER ID   NAMES", "abc            web"]
    assert fmt.render_rows("{{.Names}}:{{.Label \"x\"}}", rows, headers) == ["web:v"]
    assert fmt.render_rows("json", rows, headers) == ['{"ID":"abc","Names":"web"}']
