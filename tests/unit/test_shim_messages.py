"""The shim protocol's messages: one codec, an `op` tag, clear errors for bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pallet.v1.errors import InvalidArgument
from pallet.shim.api import messages, wire
from pallet.shim.api.spec import Memory, Resources
from pallet.shim.api.messages import (
    Ack,
    AttachRequest,
    CloseStdinRequest,
    EofEvent,
    Event,
    ExecRequest,
    ExecResponse,
    ExecWaitRequest,
    ExitEvent,
    KillExecRequest,
    KillRequest,
    PingRequest,
    PingResponse,
    Request,
    ShutdownRequest,
    FreezeRequest,
    ThawRequest,
    UpdateRequest,
    PauseRequest,
    ResumeRequest,
    ResizeRequest,
    LeftoversRequest,
    LeftoversResponse,
    SpawnRequest,
    SpawnResponse,
    StartRequest,
    StartResponse,
    StateRequest,
    StateResponse,
    WaitRequest,
    WaitResponse,
)
from pallet.shim.api.spec import ExecSpec, ExitStatus, Process, ShimState, TaskStatus

EXIT = ExitStatus(exit_code=137, exited_at_ns=5, error="killed")
SPEC = ExecSpec(
    "e1", Process(("sh", "-c", "echo hi"), ("A=1",), "/tmp", "1000:1000", ("CAP_KILL",), True, True)
)

REQUESTS: list[Request] = [
    StateRequest(), StartRequest(), KillRequest(15), KillRequest(9, all=True), WaitRequest(),
    AttachRequest(stdin=True, stdout=True), ExecRequest(SPEC), ExecWaitRequest("e1"),
    CloseStdinRequest(), ShutdownRequest(), FreezeRequest(), ThawRequest(), PauseRequest(),
    ResumeRequest(), PingRequest(),
    UpdateRequest(Resources(memory=Memory(limit=1 << 25, swap=-1), pids_limit=20)),
    SpawnRequest("/b", idle_exit=0.5),
    LeftoversRequest("c1", "/b"),
    ResizeRequest(24, 80), ResizeRequest(50, 120, exec_id="e1"), KillExecRequest("e1", 9),
]
REPLIES: list[object] = [
    Ack(), StartResponse(7), ExecResponse(8), WaitResponse(EXIT), PingResponse(1),
    SpawnResponse(2), LeftoversResponse(True, ("/sys/fs/cgroup/pallet/c1",)), ShimState(TaskStatus.STOPPED, 3, 4, EXIT, 9),
    ShimState(TaskStatus.CREATED, 0, 4), ShimState(TaskStatus.RUNNING, 5, 4, paused=True),
]
EVENTS: list[Event] = [EofEvent(), ExitEvent(EXIT)]


def _through_the_wire(message: object) -> dict[str, Any]:
    ((kind, payload),) = wire.FrameDecoder().feed(wire.encode_control(messages.encode(message)))
    assert kind == wire.CONTROL
    return wire.decode_control(payload)


def test_every_request_type_is_registered_once() -> None:
    assert {type(r) for r in REQUESTS} == set(messages.REQUESTS.values())


@pytest.mark.parametrize("request_", REQUESTS, ids=repr)
def test_requests_round_trip_by_their_op(request_: Request) -> None:
    raw = _through_the_wire(request_)
    assert raw["op"] == request_.op
    assert messages.decode(raw, Request) == request_
    assert messages.decode(raw, type(request_)) == request_


@pytest.mark.parametrize("reply", REPLIES, ids=repr)
def test_replies_round_trip_as_the_asked_type(reply: object) -> None:
    raw = _through_the_wire(reply)
    assert "op" not in raw
    assert messages.decode(raw, type(reply)) == reply


@pytest.mark.parametrize("event", EVENTS, ids=repr)
def test_events_round_trip_by_their_event_tag(event: Event) -> None:
    raw = _through_the_wire(event)
    assert messages.decode(raw, Event) == event


def test_the_json_is_what_older_shims_and_daemons_speak() -> None:
    assert messages.encode(KillRequest(15)) == {"op": "kill", "signal": 15, "all": False}
    assert messages.encode(KillExecRequest("e1", 9)) == {"op": "kill_exec", "exec_id": "e1", "signal": 9}
    assert messages.encode(ExecWaitRequest("e1")) == {"op": "exec_wait", "exec_id": "e1"}
    assert messages.encode(ExitEvent(EXIT)) == {
        "event": "exit",
        "exit": {"exit_code": 137, "exited_at_ns": 5, "error": "killed", "oom_killed": False},
    }
    # An exit from a shim older than the OOM flag is no OOM kill.
    old_exit = {"exit_code": 137, "exited_at_ns": 5, "error": "killed"}
    assert messages.decode({"event": "exit", "exit": old_exit}, Event) == ExitEvent(EXIT)
    assert messages.encode(StateRequest()) == {"op": "state"}
    assert messages.encode(Ack()) == {}
    old_state = {"status": "running", "pid": 7, "shim_pid": 6, "exit": None, "started_at_ns": 1}
    assert messages.decode(old_state, StateResponse) == ShimState(TaskStatus.RUNNING, 7, 6, None, 1)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"op": "frobnicate"}, "unknown shim request 'frobnicate' .*expected one of .*kill"),
        ({}, "unknown shim request None"),
        ({"op": 3}, "unknown shim request 3"),
        ({"event": "exit"}, "unknown shim request None"),
    ],
)
def test_an_unknown_op_is_invalid_argument(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        messages.decode(raw, Request)


def test_a_request_of_another_type_than_expected_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="unknown shim request 'state'.*expected one of kill$"):
        messages.decode({"op": "state"}, KillRequest)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"op": "kill"}, r"^malformed kill: kill: missing field 'signal'$"),
        ({"op": "kill", "signal": "TERM"}, r"^malformed kill: kill.signal: expected an integer, got a string$"),
        ({"op": "kill", "signal": 9, "all": "yes"}, r"kill.all: expected true or false"),
        ({"op": "kill", "signal": 9, "everything": True}, r"unknown field 'everything'"),
        ({"op": "attach", "stdout": 1}, r"attach.stdout: expected true or false"),
        ({"op": "exec", "spec": {"exec_id": "e"}}, r"exec.spec: missing field 'process'"),
        ({"op": "exec", "spec": None}, r"exec.spec: expected an object, got null"),
        ({"op": "exec_wait", "exec_id": ["e"]}, r"exec_wait.exec_id: expected a string, got a list"),
        ({"op": "spawn", "idle_exit": 1}, r"missing field 'bundle'"),
    ],
)
def test_a_malformed_field_is_invalid_argument_naming_it(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        messages.decode(raw, Request)


def test_malformed_replies_and_events_are_invalid_argument_not_key_errors() -> None:
    with pytest.raises(InvalidArgument, match="^malformed WaitResponse: WaitResponse: missing field 'exit'$"):
        messages.decode({}, WaitResponse)
    with pytest.raises(InvalidArgument, match="ShimState.status: 'paused' is not one of"):
        messages.decode({"status": "paused", "pid": 1, "shim_pid": 2}, StateResponse)
    with pytest.raises(InvalidArgument, match="unknown shim event 'bye'"):
        messages.decode({"event": "bye"}, Event)
    with pytest.raises(InvalidArgument, match="exit.exit.exit_code: expected an integer"):
        messages.decode({"event": "exit", "exit": {"exit_code": None, "exited_at_ns": 1}}, Event)


def test_replies_and_events_ignore_fields_a_newer_shim_adds() -> None:
    assert messages.decode({"pid": 3, "cgroup": "x"}, StartResponse) == StartResponse(3)
    assert messages.decode({"event": "eof", "at": 1}, Event) == EofEvent()


def test_encoded_messages_are_plain_json() -> None:
    for message in (*REQUESTS, *REPLIES, *EVENTS):
        json.dumps(messages.encode(message))
