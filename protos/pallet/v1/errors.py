"""The one error tree of pallet.

Owns: the exception classes every layer raises (daemon managers, shim protocol, client) and
their stable code names. Must not: import grpc or protobuf; the mapping to gRPC status codes
lives in `pallet.daemon.api.errors` and `pallet.client.errors`, once each.

Every error carries a message a person can act on ("container web is running: stop it
first, or remove with force").
"""

from __future__ import annotations


class PalletError(Exception):
    """Base of every error pallet raises on purpose."""

    #: Stable code name; matches a gRPC status code name and the shim protocol's codes.
    code = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(PalletError):
    """The named object does not exist."""

    code = "NOT_FOUND"


class AlreadyExists(PalletError):
    """An object with that name or reference exists already."""

    code = "ALREADY_EXISTS"


class InvalidArgument(PalletError):
    """The request itself is malformed (bad reference, bad name, hostile tar, ...)."""

    code = "INVALID_ARGUMENT"


class FailedPrecondition(PalletError):
    """The object is in a state that does not allow the operation."""

    code = "FAILED_PRECONDITION"


class Conflict(PalletError):
    """The operation collides with another one or with a user of the object."""

    code = "ABORTED"


class Unavailable(PalletError):
    """A component (daemon, shim) cannot be reached right now; retrying may help."""

    code = "UNAVAILABLE"


class DeadlineExceeded(PalletError):
    """A component did not answer in time."""

    code = "DEADLINE_EXCEEDED"


class ResourceExhausted(PalletError):
    """The host has run out of something the operation needs (a full disk, a size limit)."""

    code = "RESOURCE_EXHAUSTED"


class OutOfRange(PalletError):
    """A position (an event sequence number, an offset) lies outside what is kept."""

    code = "OUT_OF_RANGE"


class Internal(PalletError):
    """A bug or an unexpected failure of the host."""

    code = "INTERNAL"


BY_CODE: dict[str, type[PalletError]] = {
    cls.code: cls
    for cls in (
        NotFound,
        AlreadyExists,
        InvalidArgument,
        FailedPrecondition,
        Conflict,
        Unavailable,
        DeadlineExceeded,
        ResourceExhausted,
        OutOfRange,
        Internal,
    )
}


def from_code(code: str, message: str) -> PalletError:
    """Rebuild an error from its code name (used by the shim protocol and the client)."""
    return BY_CODE.get(code, Internal)(message)
