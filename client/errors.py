"""gRPC status -> pallet error tree, the client's half of the one mapping.

Owns: turning a `client.wire.RpcError` into the matching `pallet.v1.errors` class,
keeping the daemon's message verbatim, and telling "the daemon is not there" (connection
refused, missing socket, or lost mid-call), which reads "daemon unavailable: cannot
connect to palletd at HOST: is it running?", from a daemon that is there but does not
answer (its socket accepts connections, since the kernel queues them even for a stopped
process, but no HTTP/2 handshake comes back within the connect deadline), and a TLS
handshake that failed (said as `client.tls` words it). Must not:
print, exit, or know about verbs; the CLI decides what to do.
"""

from __future__ import annotations

from pallet.client.wire import RpcError
from pallet.v1 import errors


#: grpc's own status when a server stops with calls open (server.stop): palletd going
#: away, which the user is told as "cannot connect", not as grpc's words.
_SHUTTING_DOWN = ("Cancelling all calls",)


def cannot_connect(host: str, details: str = "") -> errors.Unavailable:
    """The error every verb shows when palletd cannot be reached at `host`."""
    if "Permission denied" in details:
        return errors.Unavailable(
            f"daemon unavailable: cannot connect to palletd at {host}: permission denied "
            "(palletd's socket is root's, and its group's when palletd was started with --group)"
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


def from_rpc_error(exc: RpcError, host: str, connect_timeout: float | None = None) -> errors.PalletError:
    """The pallet error for a failed call (NOT_FOUND -> NotFound, ...), message verbatim.

    `connect_timeout`: the client's deadline for a connection to be answered, named in
    the error when palletd accepted one but let it pass.
    """
    if exc.failure == "silent":
        return not_answering(host, connect_timeout)
    if exc.failure == "tls":
        return errors.Unavailable(f"cannot connect to palletd at {host}: {exc.details}")
    if exc.failure in ("connect", "lost"):
        return cannot_connect(host, exc.details)
    code, details = exc.code, exc.details
    if exc.failure == "protocol":
        return errors.Internal(f"talking to palletd at {host} failed: {details}")
    if code == "UNAVAILABLE" and details in _SHUTTING_DOWN:
        return cannot_connect(host, details)  # palletd stopped (or restarts) mid-call
    if code == "UNIMPLEMENTED":
        return errors.Internal(f"palletd at {host} does not implement this call: {details}")
    if code == "CANCELLED" and not details:
        details = "the call was cancelled"
    return errors.from_code(code, details or f"palletd failed the call ({code})")
