"""The shim's protocol as values: every request, reply and event, and their one codec.

Owns: the frozen dataclasses a CONTROL frame carries (on a shim's socket and on the
launcher's), and `encode` / `decode` between them and JSON objects. A request carries its
type in an `op` tag, an event in an `event` tag; a reply has no tag (the asker knows what
it asked). Must not: do I/O or know how a request is served (`pallet.shim.server` does),
or import anything of the daemon.

Conversation per request (each reply may instead be `{"error": {code, message}}`):
- StateRequest -> ShimState; StartRequest -> StartResponse once the init's exec succeeded;
  KillRequest -> Ack; ShutdownRequest -> Ack once the socket and cgroup are gone.
- WaitRequest / ExecWaitRequest -> WaitResponse when the process has ended (its exit on
  disk first).
- AttachRequest -> Ack, then output frames of the container's init, then EofEvent.
- ExecRequest -> ExecResponse, then the exec's output frames, then ExitEvent.
- CloseStdinRequest -> nothing (stdin of the attach or exec on that connection).
- ResizeRequest -> Ack once the terminal has its new size.
- KillExecRequest -> Ack once an exec's process is signalled (FailedPrecondition when it
  has ended).
- FreezeRequest -> Ack once every process of the container is frozen; ThawRequest -> Ack
  (the freeze is the connection's: it ends with the connection too).
- PauseRequest -> Ack once frozen; ResumeRequest -> Ack once thawed (`pallet pause`: the
  shim's own, held whoever asked and whatever happens to palletd, shown in ShimState.paused).
- UpdateRequest -> Ack once the new limits are in the cgroup (or an error, none changed).
- launcher: PingRequest -> PingResponse; SpawnRequest -> SpawnResponse, sent by the new
  shim, which then serves that connection like one of its own; LeftoversRequest ->
  LeftoversResponse.

Compatibility: since an exec's spec became `{exec_id, process}`, a shim started by an
older palletd does not understand this one's ExecRequest (nor the reverse): such a shim
must be restarted (its container stopped and started again) before exec works with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pallet.v1.errors import InvalidArgument
from pallet.shim.api import codec
from pallet.shim.api.spec import ExecSpec, ExitStatus, Resources, ShimState

T = TypeVar("T")

# Seconds a shim whose container has ended stays when nobody talks to it (then it
# removes itself); the launcher's and the daemon's default.
DEFAULT_IDLE_EXIT = 30.0


class Request:
    """A request to a shim or to the launcher; `op` names it on the wire."""

    __slots__ = ()
    op: ClassVar[str]


class Event:
    """Something a shim pushes unasked on a streaming connection; `event` names it."""

    __slots__ = ()
    event: ClassVar[str]


# -- requests ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateRequest(Request):
    op: ClassVar[str] = "state"


@dataclass(frozen=True, slots=True)
class StartRequest(Request):
    op: ClassVar[str] = "start"


@dataclass(frozen=True, slots=True)
class KillRequest(Request):
    op: ClassVar[str] = "kill"
    signal: int
    all: bool = False  # every process in the container's cgroup, not only its init


@dataclass(frozen=True, slots=True)
class KillExecRequest(Request):
    """Signal one exec's process (a health probe that outlived its timeout). A request of
    its own, not a field of KillRequest: a shim of an older palletd refuses a request
    with a field it does not know, and this way only this request is new to it."""

    op: ClassVar[str] = "kill_exec"
    exec_id: str
    signal: int


@dataclass(frozen=True, slots=True)
class WaitRequest(Request):
    op: ClassVar[str] = "wait"


@dataclass(frozen=True, slots=True)
class AttachRequest(Request):
    op: ClassVar[str] = "attach"
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False


@dataclass(frozen=True, slots=True)
class ExecRequest(Request):
    op: ClassVar[str] = "exec"
    spec: ExecSpec


@dataclass(frozen=True, slots=True)
class ExecWaitRequest(Request):
    op: ClassVar[str] = "exec_wait"
    exec_id: str


@dataclass(frozen=True, slots=True)
class CloseStdinRequest(Request):
    op: ClassVar[str] = "close_stdin"


@dataclass(frozen=True, slots=True)
class ResizeRequest(Request):
    """Set the window size of the terminal of the container's init (`exec_id` empty) or
    of an exec; its foreground processes get SIGWINCH."""

    op: ClassVar[str] = "resize"
    height: int
    width: int
    exec_id: str = ""


@dataclass(frozen=True, slots=True)
class ShutdownRequest(Request):
    op: ClassVar[str] = "shutdown"


@dataclass(frozen=True, slots=True)
class FreezeRequest(Request):
    """Freeze every process of the container (its cgroup) for as long as the connection
    that asked holds the freeze: until it sends ThawRequest, or closes (a palletd killed
    mid-commit leaves nothing frozen)."""

    op: ClassVar[str] = "freeze"


@dataclass(frozen=True, slots=True)
class ThawRequest(Request):
    """Give up this connection's freeze; the container runs again once no connection
    holds one."""

    op: ClassVar[str] = "thaw"


@dataclass(frozen=True, slots=True)
class PauseRequest(Request):
    """Freeze every process of the running container until a ResumeRequest (`pallet
    pause`): unlike a FreezeRequest it belongs to no connection, so it outlives palletd,
    and `state` reports it (ShimState.paused). Asked again, nothing changes."""

    op: ClassVar[str] = "pause"


@dataclass(frozen=True, slots=True)
class ResumeRequest(Request):
    """End a pause (`pallet unpause`); the container runs again unless a connection's
    freeze still holds it. Not paused: nothing changes."""

    op: ClassVar[str] = "resume"


@dataclass(frozen=True, slots=True)
class UpdateRequest(Request):
    """Apply these limits to the running container's cgroup (`pallet update`): the whole
    new set, not a difference; all or none of it is applied."""

    op: ClassVar[str] = "update"
    resources: Resources


@dataclass(frozen=True, slots=True)
class PingRequest(Request):
    """To the launcher: is it there, and which process is it."""

    op: ClassVar[str] = "ping"


@dataclass(frozen=True, slots=True)
class SpawnRequest(Request):
    """To the launcher: fork a shim for the bundle (its config.json is the spec)."""

    op: ClassVar[str] = "spawn"
    bundle: str
    idle_exit: float = DEFAULT_IDLE_EXIT  # seconds a finished shim nobody talks to stays


@dataclass(frozen=True, slots=True)
class LeftoversRequest(Request):
    """To the launcher: what a shim of this container left on the host, if anything (its
    socket; the cgroup its bundle's spec names). Looked at only: nothing is changed."""

    op: ClassVar[str] = "leftovers"
    container_id: str
    bundle: str


# -- replies -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ack:
    """Done; nothing to say."""


StateResponse = ShimState  # the reply to StateRequest is pallet.shim.api.spec's ShimState


@dataclass(frozen=True, slots=True)
class StartResponse:
    pid: int  # host pid of the container's init


@dataclass(frozen=True, slots=True)
class WaitResponse:
    exit: ExitStatus


@dataclass(frozen=True, slots=True)
class ExecResponse:
    pid: int  # host pid of the exec process


@dataclass(frozen=True, slots=True)
class PingResponse:
    pid: int  # the launcher's


@dataclass(frozen=True, slots=True)
class SpawnResponse:
    shim_pid: int


@dataclass(frozen=True, slots=True)
class LeftoversResponse:
    socket: bool  # a shim socket is there (a live shim's, or a dead one's)
    cgroups: tuple[str, ...] = ()  # the container's cgroup directories that exist


# -- events --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EofEvent(Event):
    """The attached process closed its stdout and stderr: no more output will come."""

    event: ClassVar[str] = "eof"


@dataclass(frozen=True, slots=True)
class ExitEvent(Event):
    """The exec ended (its exit is on disk); the shim closes the connection after this."""

    event: ClassVar[str] = "exit"
    exit: ExitStatus


REQUESTS: Mapping[str, type[Request]] = {
    cls.op: cls
    for cls in (
        StateRequest, StartRequest, KillRequest, WaitRequest, AttachRequest, ExecRequest,
        ExecWaitRequest, CloseStdinRequest, ShutdownRequest, FreezeRequest, ThawRequest,
        PauseRequest, ResumeRequest, UpdateRequest, PingRequest, SpawnRequest, LeftoversRequest,
        ResizeRequest, KillExecRequest,
    )
}
EVENTS: Mapping[str, type[Event]] = {cls.event: cls for cls in (EofEvent, ExitEvent)}


def encode(message: object) -> dict[str, Any]:
    """A request, reply or event as the JSON object a CONTROL frame carries."""
    body: dict[str, Any] = codec.to_json(message)
    if isinstance(message, Request):
        return {"op": message.op, **body}
    if isinstance(message, Event):
        return {"event": message.event, **body}
    return body


def decode(raw: Mapping[str, Any], expect: type[T]) -> T:
    """The message of type `expect` in `raw` (a CONTROL frame's JSON object).

    `expect` may be `Request` or `Event` (the tag picks the type) or one concrete class.
    Requests are strict (an unknown field is a mistake of the sender); replies and events
    ignore fields they do not know, so an older palletd still understands a newer shim.
    Anything else is InvalidArgument saying what is wrong; the caller answers error
    replies (`wire.raise_if_error`) before decoding.
    """
    if issubclass(expect, Request):
        return _tagged(raw, "op", REQUESTS, expect, "shim request", strict=True)
    if issubclass(expect, Event):
        return _tagged(raw, "event", EVENTS, expect, "shim event", strict=False)
    return codec.from_json(expect, dict(raw), ignore_unknown=True)


def _tagged(
    raw: Mapping[str, Any],
    key: str,
    family: Mapping[str, type[Any]],
    expect: type[T],
    what: str,
    *,
    strict: bool,
) -> T:
    tag = raw.get(key)
    cls = family.get(tag) if isinstance(tag, str) else None
    if cls is None or not issubclass(cls, expect):
        known = sorted(name for name, c in family.items() if issubclass(c, expect))
        raise InvalidArgument(
            f"unknown {what} {tag!r} (the {key!r} field): expected one of {', '.join(known)}"
        )
    body = {k: v for k, v in raw.items() if k != key}
    # Named by its op, as the sender spelled it: "malformed kill: kill.signal: expected ..."
    message: T = codec.from_json(cls, body, ignore_unknown=not strict, what=str(tag))
    return message
