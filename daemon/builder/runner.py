"""RUN: a build step's command in a real container, through the container manager.

Owns: the build container of one RUN (created from the step's image with the step's
command, environment, user, working directory and network, marked with the build's
token so that a palletd that died mid-build removes it at its next start), its output
handed on as it comes (the last lines kept for the error), its exit, the commit of its
writable layer while it still exists, and its removal however the step ends (failed,
cancelled: shielded, so a client that goes away leaves no container behind). Must not:
decide what a step runs or how it is cached (the executor does), or build layers
(`snapshots.difftar` writes the diff, the image store stores it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import structlog

from pallet.daemon.containers.model import ConfigRequest, Container, Created, CreateRequest, HostConfig
from pallet.daemon.containers.sessions import Attachment
from pallet.daemon.images.model import Image
from pallet.daemon.snapshots.difftar import write_layer
from pallet.v1.errors import FailedPrecondition, PalletError

log = structlog.get_logger(__name__)

#: The label that marks a build's containers; its value is the build's token.
BUILD_LABEL = "io.pallet.build"
_TAIL_BYTES = 4096
_TAIL_LINES = 10

LayerWriter = Callable[[IO[bytes]], int]
Commit = Callable[[LayerWriter, str], Awaitable[Image]]
# Takes a RUN's output (stream, bytes); may answer something to await before the next.
Output = Callable[[int, bytes], "Awaitable[None] | None"]


class BuildContainers(Protocol):
    """What a RUN needs of the container manager."""

    async def create(self, req: CreateRequest) -> Created: ...

    async def attach(
        self, ref: str, stdin: bool, stdout: bool, stderr: bool, running_only: bool = False
    ) -> Attachment: ...

    async def start_container(self, ref: str) -> int: ...

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None: ...

    def containers(self) -> list[Container]: ...


@dataclass(frozen=True, slots=True)
class RunSpec:
    argv: tuple[str, ...]
    env: tuple[str, ...] = ()  # over the image's: the build args the step may see
    user: str = ""
    working_dir: str = ""
    network: str = "bridge"
    stdin: bytes | None = None  # a heredoc script given on stdin
    token: str = ""  # the build's


class RunFailed(FailedPrecondition):
    def __init__(self, message: str, exit_code: int, tail: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.tail = tail


class StepRunner(Protocol):
    async def run(
        self, image: Image, spec: RunSpec, output: Output, commit: Commit
    ) -> Image:
        """Run `spec` on `image`; on success the image `commit` makes of its changes.
        RunFailed (exit code, last output) when the command fails."""
        ...


class ContainerRunner:
    """RUN through real containers and shims."""

    def __init__(self, containers: BuildContainers, layer_dirs: Callable[[Image], list[str]]) -> None:
        self._containers = containers
        self._layer_dirs = layer_dirs

    async def run(
        self, image: Image, spec: RunSpec, output: Output, commit: Commit
    ) -> Image:
        request = CreateRequest(
            config=ConfigRequest(
                image=image.id,
                cmd=spec.argv,
                entrypoint=(),
                env=spec.env,
                working_dir=spec.working_dir,
                user=spec.user,
                labels={BUILD_LABEL: spec.token},
                open_stdin=spec.stdin is not None,
                stdin_once=spec.stdin is not None,
            ),
            host_config=HostConfig(network_mode=spec.network),
        )
        created = await self._containers.create(request)
        c = created.container
        try:
            tail = bytearray()

            def keep(stream: int, data: bytes) -> Awaitable[None] | None:
                tail.extend(data)
                del tail[:-_TAIL_BYTES]
                return output(stream, data)

            code = await self._run(c, spec, keep)
            if code != 0:
                text = bytes(tail).decode(errors="replace")
                lines = "\n".join(text.rstrip("\n").splitlines()[-_TAIL_LINES:])
                raise RunFailed(
                    f"the command '{' '.join(spec.argv)}' returned a non-zero code: {code}",
                    code,
                    lines,
                )
            upper = Path(c.state_dir) / "upper"
            lowers = self._layer_dirs(image)

            def layer(out: IO[bytes]) -> int:
                return write_layer(upper, lowers, out)

            return await commit(layer, c.id)
        finally:
            await asyncio.shield(self._remove(c.id))

    async def _run(self, c: Container, spec: RunSpec, output: Output) -> int:
        attachment = await self._containers.attach(c.id, spec.stdin is not None, True, True)
        try:
            await self._containers.start_container(c.id)
            stdio = await attachment.ready()
            try:
                if spec.stdin is not None:
                    await stdio.write_stdin(spec.stdin)
                    await stdio.close_stdin()
                async for out in stdio.output():
                    if (behind := output(out.stream, out.data)) is not None:
                        await behind  # the client is far behind: the RUN waits for it
                status = await attachment.exit()
            finally:
                await stdio.aclose()
        finally:
            attachment.cancel()
        return status.exit_code

    async def _remove(self, container_id: str) -> None:
        try:
            await self._containers.remove(container_id, force=True, volumes=True)
        except PalletError as e:
            log.warning("could not remove a build container", container_id=container_id, reason=str(e))

    async def remove_leftovers(self, tokens: set[str]) -> int:
        """Remove every build container there is (`tokens`: the builds a dead palletd left
        unfinished). No build outlives a palletd, and this runs before any starts, so a
        container with the label is a leftover even when its build's end was recorded: a
        removal cut short (a second cancel while palletd stopped) leaves one like that."""
        count = 0
        for c in self._containers.containers():
            if BUILD_LABEL in c.config.labels:
                await self._remove(c.id)
                count += 1
        return count
