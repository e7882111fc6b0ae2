"""gRPC status -> pallet error tree, the client's half of the one mapping.

Owns: turning a `grpc.RpcError` into the matching `pallet.v1.errors` class, keeping the
daemon's message verbatim, and recognising "the daemon is not there" (connection refused,
missing socket, socket closed, or lost mid-call) so it reads "daemon unavailable: cannot
connect to palletd at HOST: is it running?", told apart from a daemon that is there but
does not answer (its socket accepts connections, since the kernel queues them even for a
stopped process, but no HTTP/2 handshake comes back within the connect deadline). Must
not: print, exit, or know about verbs; the CLI decides what to do.
"""

from __future__ import annotations

import grpc

from pallet.v1 import errors

# grpc core's own wording when no connection to the daemon could be made or kept; a
# daemon-side UNAVAILABLE (a shim that cannot be reached, ...) carries its own message.
_TRANSPORT_MARKERS = (
    "failed to connect to all addresses",
    "connections to all backends failing",
    "Socket closed",
    "Connection reset",
    "Connection refused",
    "Broken pipe",
    "GOAWAY",
    "Cancelling all calls",
    "Endpoint read failed",
)
# grpc core's wording when the socket accepted the connection but the server never sent
# its HTTP/2 SETTINGS frame before the connect deadline: something listens, and is silent.
_SILENT_MARKER = "timed out before receiving SETTINGS frame"


def cannot_connect(host: str, details: str = "") -> errors.Unavailable:
    """The error every verb shows when palletd cannot be reached at `host`."""
    if "Permission denied" in details:
        return errors.Unavailable(
            f"daemon unavailable: cannot connect to palletd at {host}: permission denied "
            "(palletd's socket is root's)"
        )
    return errors.Unavailable(
        f"daemon unavailable: cannot connect to palletd at {host}: is it running?"
    )


def not_answering(host: str, timeout: float | None) -> errors.DeadlineExceeded:
    """The error for a palletd whose socket accepts connections but which does not answer."""
    within = f"within {timeout:g}s" if timeout is not None else "in time"
    return errors.DeadlineExceeded(
        f"palletd at {host} accepted the connection but did not answer {within}: it may be "
        "stopped (SIGSTOP) or overloaded (PALLET_CONNECT_TIMEOUT sets how long to wait)"
    )


def is_transport_failure(code: grpc.StatusCode, details: str) -> bool:
    return code == grpc.StatusCode.UNAVAILABLE and (
        not details or any(marker in details for marker in _TRANSPORT_MARKERS)
    )


def from_rpc_error(
    exc: grpc.RpcError, host: str, connect_timeout: float | None = None
) -> errors.PalletError:
    """The pallet error for a failed call (NOT_FOUND -> NotFound, ...), message verbatim.

    `connect_timeout`: the client's deadline for a connection to be answered, named in
    the error when palletd accepted one but let it pass.
    """
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (exc.details() if isinstance(exc, grpc.Call) else str(exc)) or ""
    if code is None:
        code = grpc.StatusCode.UNKNOWN
    if code == grpc.StatusCode.UNAVAILABLE and _SILENT_MARKER in details:
        return not_answering(host, connect_timeout)
    if is_transport_failure(code, details):
        return cannot_connect(host, details)
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return errors.Internal(f"palletd at {host} does not implement this call: {details}")
    if code == grpc.StatusCode.CANCELLED and not details:
        details = "the call was cancelled"
    return errors.from_code(code.name, details or f"palletd failed the call ({code.name})")
