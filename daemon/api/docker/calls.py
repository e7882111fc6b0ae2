"""Calling the gRPC servicers from the Docker API gateway, and answering as dockerd does.

Owns: the in-process servicer context (its `abort` raises `ApiError`), the one mapping
from pallet's status codes to HTTP statuses, Docker's error body (`{"message": …}`), and
the small readers of Docker's query strings and JSON bodies (booleans, integers, the
`filters` argument). Must not: know any endpoint.

A handler converts Docker's request into the servicer's request message and calls the
servicer method itself, so validation, conversion and every behaviour behind the gRPC API
are the ones the gateway runs too: there is no second copy of any of them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from aiohttp import web

from pallet.v1.errors import InvalidArgument

Req = TypeVar("Req")
Resp = TypeVar("Resp")

# pallet's status codes (gRPC's) as the HTTP statuses dockerd answers for the same errors.
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class ApiError(grpc.aio.AbortError):
    """A call that ended in an error, with the HTTP status and message to answer.

    An `AbortError`: the servicers' decorators pass it through as the abort it stands for
    (they map everything else, once, before it gets here).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class GatewayContext:
    """The servicer context of an in-process call: `abort` is all the servicers use."""

    __slots__ = ()

    async def abort(self, code: grpc.StatusCode, details: str = "") -> NoReturn:
        raise ApiError(HTTP_STATUS.get(code, 500), details)


_CONTEXT = GatewayContext()


async def call(method: Callable[[Req, Any], Awaitable[Resp]], request: Req) -> Resp:
    """One unary (or client-streaming) servicer call; its error raised as `ApiError`."""
    return await method(request, _CONTEXT)


def stream(method: Callable[[Req, Any], AsyncIterator[Resp]], request: Req) -> AsyncIterator[Resp]:
    """A server-streaming servicer call; an error raised as `ApiError` where it happens."""
    return method(request, _CONTEXT)


async def first(items: AsyncIterator[Resp]) -> Resp | None:
    """The first item of a stream (None when it ends at once): an error before it is still
    answered with its own status, since no byte of the response has gone yet."""
    try:
        return await items.__anext__()
    except StopAsyncIteration:
        return None


def json_response(data: Any, status: int = 200) -> web.Response:
    """JSON as dockerd sends it: compact, newline-ended, and typed `application/json`
    exactly (the docker CLI shows a body typed otherwise, charset included, as raw text)."""
    body = json.dumps(data, separators=(",", ":")).encode() + b"\n"
    return web.Response(body=body, status=status, headers={"Content-Type": "application/json"})


def error_response(status: int, message: str) -> web.Response:
    """dockerd's error body."""
    return json_response({"message": message}, status=status)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


# -- Docker's query strings and bodies ------------------------------------------------

_TRUE = {"1", "true", "True", "TRUE", "yes"}
_FALSE = {"", "0", "false", "False", "FALSE", "no"}


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    """A boolean query argument as dockerd reads one (`1`/`true`/… or `0`/`false`/…)."""
    value = request.query.get(name)
    if value is None:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise bad_request(f"invalid value for {name}: {value!r}: expected true or false (1 or 0)")


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"invalid value for {name}: {value!r}: expected an integer") from None


def query_filters(request: web.Request) -> dict[str, list[str]]:
    """Docker's `filters` argument: JSON of a map from a key to its values, as a list
    (`{"label": ["a=b"]}`) or, from older clients, as a map to true (`{"label": {"a=b": true}}`)."""
    raw = request.query.get("filters", "")
    if not raw:
        return {}
    try:
        decoded = json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"invalid filters {raw!r}: not JSON: {exc}") from None
    if not isinstance(decoded, dict):
        raise bad_request(f"invalid filters {raw!r}: expected a JSON object of key to values")
    out: dict[str, list[str]] = {}
    for key, values in decoded.items():
        if isinstance(values, dict):
            out[key] = [v for v, on in values.items() if on]
        elif isinstance(values, list) and all(isinstance(v, str) for v in values):
            out[key] = list(values)
        else:
            raise bad_request(
                f"invalid filters: {key!r} must map to a list of strings, not {values!r}"
            )
    return out


def filter_strings(filters: dict[str, list[str]]) -> list[str]:
    """Docker's filters map as the `key=value` strings pallet's requests take."""
    return [f"{key}={value}" for key, values in filters.items() for value in values]


async def read_json(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object body (empty: `{}` when `optional`)."""
    body = await request.read()
    if not body.strip():
        if optional:
            return {}
        raise bad_request("the request has no body: send a JSON object")
    try:
        decoded = json.loads(body)
    except ValueError as exc:
        raise bad_request(f"invalid JSON in the request body: {exc}") from None
    if decoded is None and optional:
        return {}
    if not isinstance(decoded, dict):
        raise bad_request(f"invalid request body: expected a JSON object, not {type(decoded).__name__}")
    return decoded


def field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    """`body[name]` when it is of `kind` (null or absent: `default`), else a 400 naming it."""
    value = body.get(name)
    if value is None:
        return default
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InvalidArgument(f"invalid {name}: {value!r}: expected {_json_kind(names)}")
    return value


def _json_kind(python: str) -> str:
    return (
        python.replace("str", "a string").replace("int", "an integer").replace("bool", "a boolean")
        .replace("list", "an array").replace("dict", "an object").replace("float", "a number")
    )
