"""Streaming helpers for the image calls that report progress (pull, push).

Owns: running a manager call while its progress steps are yielded as they happen, and
turning the wire's RegistryAuth into domain credentials. Must not: talk to registries.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any
from typing import TypeVar

from pallet.daemon.images.model import Credentials
from pallet.daemon.images.registry.auth import check_header_safe
from pallet.v1 import images_pb2 as pb

T = TypeVar("T")
Step = tuple[str, str, int, int]


def credentials(auth: pb.RegistryAuth) -> Credentials:
    for value in (auth.username, auth.password, auth.identity_token):
        check_header_safe(value)
    return Credentials(auth.username, auth.password, auth.identity_token)


async def with_progress(
    work: Callable[[Callable[[str, str, int, int], None]], Coroutine[Any, Any, T]],
) -> AsyncIterator[pb.Progress | T]:
    """Yield Progress messages while `work(progress)` runs, then its result."""
    queue: asyncio.Queue[Step | None] = asyncio.Queue()

    def progress(id_: str, status: str, current: int, total: int) -> None:
        queue.put_nowait((id_, status, current, total))

    task: asyncio.Task[T] = asyncio.create_task(work(progress))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    try:
        while (step := await queue.get()) is not None:
            yield pb.Progress(id=step[0], status=step[1], current=step[2], total=step[3])
        while not queue.empty():
            step = queue.get_nowait()
            if step is not None:
                yield pb.Progress(id=step[0], status=step[1], current=step[2], total=step[3])
        yield task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
