"""The shim protocol's framing and how errors travel on it."""

from __future__ import annotations

import pytest

from pallet.v1.errors import FailedPrecondition, Internal, NotFound
from pallet.shim.api import wire


def test_control_and_output_frames_round_trip_through_the_decoder() -> None:
    stream = (
        wire.encode_control({"op": "state"})
        + wire.encode_output(wire.STDOUT, 123, b"\x00binary\xff")
        + wire.encode_stdin(b"typed")
    )
    decoder = wire.FrameDecoder()
    frames = []
    for i in range(len(stream)):  # one byte at a time: partial headers and payloads
        frames += decoder.feed(stream[i : i + 1])
    assert [kind for kind, _ in frames] == [wire.CONTROL, wire.STDOUT, wire.STDIN]
    assert wire.decode_control(frames[0][1]) == {"op": "state"}
    assert wire.decode_output(frames[1][1]) == (123, b"\x00binary\xff")
    assert frames[2][1] == b"typed"


def test_empty_output_frame_keeps_its_timestamp() -> None:
    (kind, payload), = wire.FrameDecoder().feed(wire.encode_output(wire.STDERR, 7, b""))
    assert kind == wire.STDERR and wire.decode_output(payload) == (7, b"")


def test_errors_carry_the_error_tree_code_names() -> None:
    reply = wire.error_reply(FailedPrecondition("container web is running"))
    assert reply == {"error": {"code": "FAILED_PRECONDITION", "message": "container web is running"}}
    with pytest.raises(FailedPrecondition, match="container web is running"):
        wire.raise_if_error(reply)
    with pytest.raises(NotFound):
        wire.raise_if_error({"error": {"code": "NOT_FOUND", "message": "x"}})
    with pytest.raises(Internal):
        wire.raise_if_error({"error": {"code": "SOMETHING_NEW", "message": "x"}})
    assert wire.raise_if_error({"pid": 3}) == {"pid": 3}


@pytest.mark.parametrize(
    "data, message",
    [
        (wire.HEADER.pack(1, 9) + b"x", "unknown frame kind 9"),
        (wire.HEADER.pack(wire.MAX_PAYLOAD + 1, wire.CONTROL), "exceeds"),
    ],
)
def test_malformed_headers_are_rejected(data: bytes, message: str) -> None:
    with pytest.raises(wire.FrameError, match=message):
        wire.FrameDecoder().feed(data)


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]"])
def test_control_payload_must_be_a_json_object(payload: bytes) -> None:
    with pytest.raises(wire.FrameError):
        wire.decode_control(payload)


def test_truncated_output_frame_is_rejected() -> None:
    with pytest.raises(wire.FrameError, match="shorter than its timestamp"):
        wire.decode_output(b"abc")
