"""BuildsService: the gRPC face of image builds (docker build).

Owns: reading a Build stream's first message (the options) into domain values, handing
the rest of the stream to the build as the context's bytes (`upload_bytes`: no `end`, no
build), and streaming what the build reports as it comes, then its result. Must not:
touch the disk or judge the options (`builder.sessions` does both).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

from pallet.daemon.api.errors import Ctx, stream
from pallet.daemon.api.images import upload_bytes
from pallet.daemon.api.registry import credentials
from pallet.daemon.builder.model import BuildOptions, BuildProgress, BuildResult, StepState
from pallet.daemon.builder.sessions import BuildSessions
from pallet.v1 import builds_pb2 as pb
from pallet.v1 import builds_pb2_grpc as pb_grpc
from pallet.v1.errors import InvalidArgument

_STATES = {
    StepState.STARTED: pb.BUILD_STEP_STATE_STARTED,
    StepState.CACHED: pb.BUILD_STEP_STATE_CACHED,
    StepState.OUTPUT: pb.BUILD_STEP_STATE_OUTPUT,
    StepState.DONE: pb.BUILD_STEP_STATE_DONE,
    StepState.INFO: pb.BUILD_STEP_STATE_INFO,
}


def build_options(options: pb.BuildOptions) -> BuildOptions:
    """The domain's options from the wire's (a later --build-arg of a name wins)."""
    args: dict[str, str | None] = {}
    for arg in options.build_args:
        args[arg.name] = arg.value if arg.HasField("value") else None
    return BuildOptions(
        dockerfile=options.dockerfile,
        tags=tuple(options.tags),
        build_args=args,
        labels=dict(options.labels),
        target=options.target,
        no_cache=options.no_cache,
        pull=options.pull,
        network=options.network,
        platform=options.platform,
        registry_auth={host: credentials(auth) for host, auth in options.registry_auth.items()},
    )


def progress_message(progress: BuildProgress) -> pb.BuildProgress:
    return pb.BuildProgress(
        state=_STATES[progress.state], step=progress.step, total=progress.total,
        stage=progress.stage, text=progress.text, data=progress.data, stream=progress.stream,
        image_id=progress.image_id,
    )


def result_message(result: BuildResult) -> pb.BuildResult:
    return pb.BuildResult(image_id=result.image_id, tags=list(result.tags), steps=result.steps,
                          cached_steps=result.cached_steps)


# A client this far behind on a build's RUN output holds the RUN back (through the
# shim, which stops reading the process's pipes) until it is down to the second figure.
OUTPUT_HOLD_BYTES = 2 * 1024 * 1024
OUTPUT_RESUME_BYTES = 512 * 1024


class BuildsServicer(pb_grpc.BuildsServiceServicer):
    #: The proto service served (the server names it to health checking and reflection).
    SERVICE = pb.DESCRIPTOR.services_by_name["BuildsService"].full_name

    def add_to_server(self, server: Any) -> None:
        pb_grpc.add_BuildsServiceServicer_to_server(self, server)

    def __init__(self, builds: BuildSessions) -> None:
        self._builds = builds

    @stream
    async def Build(
        self, request_iterator: AsyncIterator[pb.BuildRequest], context: Ctx
    ) -> AsyncIterator[pb.BuildResponse]:
        first = await anext(aiter(request_iterator), None)
        if not isinstance(first, pb.BuildRequest) or first.WhichOneof("payload") != "options":
            raise InvalidArgument("the first Build message must carry the options, before the context")
        options = build_options(first.options)
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()
        queue: asyncio.Queue[BuildProgress | None] = asyncio.Queue()
        # RUN output not yet taken by the client, and what the build waits on while there
        # is too much of it (`report`'s answer): a RUN writing faster than the client
        # reads is held back, as a container behind a slow attach is, not buffered here.
        backlog = 0
        room: asyncio.Future[None] | None = None

        def report(progress: BuildProgress) -> asyncio.Future[None] | None:
            """Queue `progress`; never blocks, callable from the builder's threads too.
            On the loop, when the client is over OUTPUT_HOLD_BYTES behind, a future the
            caller may await: done once the client is down to OUTPUT_RESUME_BYTES."""
            nonlocal backlog, room
            if threading.get_ident() != loop_thread:
                loop.call_soon_threadsafe(queue.put_nowait, progress)
                return None
            queue.put_nowait(progress)
            backlog += len(progress.data)
            if backlog <= OUTPUT_HOLD_BYTES:
                return None
            if room is None or room.done():
                room = loop.create_future()
            return room

        def taken(progress: BuildProgress) -> None:
            nonlocal backlog
            backlog -= len(progress.data)
            if room is not None and not room.done() and backlog <= OUTPUT_RESUME_BYTES:
                room.set_result(None)

        task = asyncio.create_task(self._builds.build(options, upload_bytes(request_iterator), report))
        # After whatever the build reported on the loop before it ended.
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (progress := await queue.get()) is not None:
                yield pb.BuildResponse(progress=progress_message(progress))
                taken(progress)
            while not queue.empty():  # reported from a thread just before the end
                late = queue.get_nowait()
                if late is not None:
                    yield pb.BuildResponse(progress=progress_message(late))
            yield pb.BuildResponse(result=result_message(task.result()))
        finally:
            if room is not None and not room.done():
                room.set_result(None)  # the build is cancelled next; nothing waits on it
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
