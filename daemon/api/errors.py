"""The one mapping from pallet's error tree to gRPC status codes, as servicer decorators.

Owns: `unary` and `stream` decorators that turn a `PalletError` into the status code its
`code` names, and any other exception into INTERNAL (traceback logged once, here); both
check every request first (`pallet.daemon.api.inputs`: no NUL bytes, no oversized strings,
no impossible times or numbers), each message of a client stream as it arrives. Explicit
decorators rather than an interceptor: aio interceptors miss errors raised inside streaming
handlers. Must not: know any service.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, TypeVar, cast

import grpc
import structlog
from google.protobuf.message import Message

from pallet.daemon.api.inputs import Undecodable, UploadChunk, check_request, checked_stream
from pallet.daemon.store import space
from pallet.v1.errors import PalletError

log = structlog.get_logger(__name__)

# grpc ships no type information; servicer contexts are typed as Any at this edge.
Ctx: TypeAlias = Any

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Self = TypeVar("Self")


def status_code(err: PalletError) -> grpc.StatusCode:
    try:
        return grpc.StatusCode[err.code]
    except KeyError:
        return grpc.StatusCode.INTERNAL


async def _abort(context: Ctx, exc: BaseException, rpc: str) -> None:
    if isinstance(exc, PalletError):
        await context.abort(status_code(exc), exc.message)
    if isinstance(exc, OSError) and exc.errno in space.FULL_ERRNOS:
        # The managers name the full disk where they write; this is the net under them.
        log.warning("disk full", rpc=rpc, path=exc.filename, reason=str(exc))
        where = f" writing {exc.filename}" if exc.filename else ""
        await context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"{rpc} failed{where}: no space left on the device: {space.FREE_SPACE}",
        )
    log.exception("internal error", rpc=rpc, exc_info=exc)
    await context.abort(
        grpc.StatusCode.INTERNAL, f"internal error in {rpc}: {type(exc).__name__}: {exc}"
    )


def _checked(request: Req) -> Req:
    """`request` checked now, or a client stream whose messages are checked as they come."""
    if isinstance(request, (Message, Undecodable, UploadChunk)):
        check_request(request)
        return request
    return cast(Req, checked_stream(cast(AsyncIterator[Message], request)))


def unary(
    fn: Callable[[Self, Req, Ctx], Awaitable[Resp]],
) -> Callable[[Self, Req, Ctx], Awaitable[Resp]]:
    """Decorate a unary-response handler (unary or client-streaming request)."""

    @functools.wraps(fn)
    async def wrapper(self: Self, request: Req, context: Ctx) -> Resp:
        try:
            return await fn(self, _checked(request), context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - every error is mapped, once, here
            await _abort(context, exc, fn.__qualname__)
            raise AssertionError("unreachable: abort raises") from exc

    return wrapper


def stream(
    fn: Callable[[Self, Req, Ctx], AsyncIterator[Resp]],
) -> Callable[[Self, Req, Ctx], AsyncIterator[Resp]]:
    """Decorate a streaming-response handler (an async generator)."""

    @functools.wraps(fn)
    async def wrapper(
        self: Self, request: Req, context: Ctx
    ) -> AsyncIterator[Resp]:
        try:
            # Closed as soon as the call ends, however it ends (a cancelled call closes
            # this wrapper): the handler's `finally` runs then, not when it is collected.
            handler = cast(AsyncGenerator[Resp, None], fn(self, _checked(request), context))
            async with contextlib.aclosing(handler) as items:
                async for item in items:
                    yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - every error is mapped, once, here
            await _abort(context, exc, fn.__qualname__)

    return wrapper
