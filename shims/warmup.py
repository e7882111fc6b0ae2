"""What the shim launcher runs once, before it forks any shim, so every shim shares it.

Owns: resolving the codec's type hints of every message and of the spec, and sending a
sample of each reply and request through the codec and the framing a few times. Must
not: touch the host (no files, sockets or processes) or leave anything behind but the
caches it fills.

Why: a shim is a fork of the launcher and shares its memory until it writes to a page;
the first time a process evaluates a dataclass's annotations (`typing.get_type_hints`),
asks whether an int or a float is a `Mapping` (the ABC's caches) or runs a function
(CPython 3.11 counts its first calls in its code object, then rewrites its bytecode in
place), it writes to pages all over the launcher's heap, and each shim gets its own copy
of every one of them. Done here once, they stay shared. Measured with 20 containers
running (bench/security.py --cgroup-limits): 0.2-0.35 MiB less PSS per shim, the hints
about half of it.
"""

from __future__ import annotations

from pallet.shim.api import codec, messages, wire
from pallet.shim.api.spec import ExitStatus, ShimSpec, ShimState, TaskStatus

#: Rounds of the samples: enough for CPython 3.11 to quicken and specialise the code they
#: run (it waits for 8 calls), so a shim running it again leaves the code objects alone.
_ROUNDS = 20

_EXIT = ExitStatus(exit_code=137, exited_at_ns=1)
#: What a shim sends for the usual lifecycle: the spawn's reply, start, state, wait.
_REPLIES: tuple[object, ...] = (
    messages.SpawnResponse(shim_pid=1),
    messages.StartResponse(pid=1),
    messages.Ack(),
    messages.WaitResponse(exit=_EXIT),
    ShimState(status=TaskStatus.RUNNING, pid=1, shim_pid=1, started_at_ns=1),
    ShimState(status=TaskStatus.STOPPED, pid=1, shim_pid=1, exit=_EXIT),
)
#: ...and what palletd asks it.
_REQUESTS: tuple[messages.Request, ...] = (
    messages.StartRequest(),
    messages.StateRequest(),
    messages.WaitRequest(),
    messages.AttachRequest(stdout=True, stderr=True),
    messages.KillRequest(signal=15),
    messages.ShutdownRequest(),
)


def warm_up() -> None:
    """Fill the caches and quicken the code every shim would otherwise do for itself."""
    codec.prepare(
        ShimSpec,
        *messages.REQUESTS.values(),
        *messages.EVENTS.values(),
        *(type(reply) for reply in _REPLIES),
        messages.ExecResponse,
        messages.PingResponse,
        messages.LeftoversResponse,
    )
    for _ in range(_ROUNDS):
        for reply in _REPLIES:
            wire.encode_control(messages.encode(reply))
        for request in _REQUESTS:
            frame = wire.encode_control(messages.encode(request))
            messages.decode(wire.decode_control(frame[wire.HEADER.size :]), messages.Request)
