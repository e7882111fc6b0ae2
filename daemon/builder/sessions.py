"""One build from its options to its result: the options checked, a build directory, the
context received into it, the builder called, the directory removed.

Owns: `BuildSessions.build` (what the Build RPC calls), the rules for a build's options
(`check_options`: tags, the Dockerfile's path, build-arg and label names, the platform),
and the `Builder` protocol the Dockerfile builder implements. Must not: parse Dockerfiles
or run steps (the builder does), extract tars itself (`contextdir`), or know protobuf.

The order is what makes a cut-short build build nothing: the options are checked before
a byte of the context is read, and the builder is called only once the upload ended with
its `end` (the chunks' iterator raises otherwise) and every entry is on disk.
"""

from __future__ import annotations

import asyncio

import dataclasses
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

import structlog

from pallet.daemon.builder.contextdir import BuildDirs, receive
from pallet.daemon.builder.model import BuildOptions, BuildProgress, BuildResult
from pallet.daemon.images.reference import parse_tagged
from pallet.daemon.images.registry.pull import parse_platform
from pallet.v1.errors import InvalidArgument

log = structlog.get_logger(__name__)

#: What a build-arg's or a label's name may not hold: docker takes any other string.
_BAD_NAME = re.compile(r"[=\s]")

Report = Callable[[BuildProgress], "asyncio.Future[None] | None"]


class Builder(Protocol):
    """The Dockerfile builder: builds what the Dockerfile in `context_dir` describes."""

    async def build(self, context_dir: Path, options: BuildOptions, report: Report) -> BuildResult: ...


def check_options(options: BuildOptions) -> BuildOptions:
    """`options` with the Dockerfile's path cleaned, or InvalidArgument naming what is wrong."""
    for tag in options.tags:
        ref = parse_tagged(tag)  # InvalidArgument: "invalid reference format: ..."
        if ref.digest:
            raise InvalidArgument(f"invalid tag {tag!r}: a build is tagged name[:tag], not with a digest")
    dockerfile = options.dockerfile or "Dockerfile"
    if dockerfile.startswith("/"):
        raise InvalidArgument(
            f"the Dockerfile's path {dockerfile!r} is absolute: give it relative to the build context"
        )
    parts: list[str] = []
    for part in dockerfile.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise InvalidArgument(
                    f"the Dockerfile's path {dockerfile!r} leaves the build context: it must be inside it"
                )
            parts.pop()
            continue
        parts.append(part)
    if not parts:
        raise InvalidArgument(f"the Dockerfile's path {dockerfile!r} names no file in the build context")
    for name in options.build_args:
        if not name or _BAD_NAME.search(name):
            raise InvalidArgument(f"invalid build-arg name {name!r}: give --build-arg NAME=VALUE, NAME not empty")
    for key in options.labels:
        if not key:
            raise InvalidArgument("invalid label: a label's name is empty (give --label NAME=VALUE)")
    if options.platform:
        parse_platform(options.platform)
    return dataclasses.replace(options, dockerfile="/".join(parts))


class BuildSessions:
    """Builds run by `builder` in directories of `dirs`."""

    def __init__(self, dirs: BuildDirs, builder: Builder) -> None:
        self._dirs = dirs
        self._builder = builder

    async def start(self) -> None:
        await self._dirs.start()

    async def aclose(self) -> None:
        # A build in flight ends with its call (the server stops those first); what is
        # left is the removal of finished builds' directories.
        await self._dirs.aclose()

    async def build(
        self, options: BuildOptions, context: AsyncIterator[bytes | memoryview], report: Report
    ) -> BuildResult:
        """Receive the context tar (`context`: its chunks, raising unless the upload ended
        whole) and build; the build directory is gone when this returns or raises."""
        options = check_options(options)
        async with self._dirs.new() as path:
            context_dir = path / "context"
            stats = await receive(context, context_dir)
            log.info("build context received", entries=stats.entries, size=stats.size,
                     dockerfile=options.dockerfile, tags=list(options.tags))
            return await self._builder.build(context_dir, options, report)
