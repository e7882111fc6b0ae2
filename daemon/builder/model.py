"""The builder's values: what a build is asked (`BuildOptions`), what it reports while it
runs (`BuildProgress`), and what it made (`BuildResult`).

Owns: the seam between the API (the `Build` RPC, which receives the context into a
directory and streams progress to the client) and the builder (`pallet.daemon.builder`,
which parses the Dockerfile and runs its steps). Must not: do I/O, or know protobuf.

The API side calls, once the whole context is on disk (already filtered by the client's
`.dockerignore`, and checked entry by entry as it was written):

    result = await builder.build(context_dir, options, report)

with `report(progress)` a plain callable (it must not block: the API queues what it gets
and streams it); the build raises `PalletError`s (`InvalidArgument` for a Dockerfile that
does not parse or names what is not there, `FailedPrecondition` for a failing `RUN`, ...)
whose message names the file, the line and the instruction.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from pallet.daemon.images.model import Credentials


@dataclass(frozen=True)
class BuildOptions:
    """What `pallet build` asks (docker's classic builder's options)."""

    # The Dockerfile's path relative to the context directory ("Dockerfile" by default;
    # a Dockerfile from outside the context or from stdin is sent into the context under
    # a name the client chose, which .dockerignore cannot hide).
    dockerfile: str = "Dockerfile"
    tags: tuple[str, ...] = ()  # -t, each "name[:tag]" (normalized by the daemon)
    build_args: Mapping[str, str | None] = field(default_factory=dict)  # --build-arg K=V (None: K from the client's env was unset)
    labels: Mapping[str, str] = field(default_factory=dict)  # --label, applied to the final image
    target: str = ""  # --target: the stage to stop at ("": the last)
    no_cache: bool = False  # --no-cache
    pull: bool = False  # --pull: pull FROM images even when present
    network: str = ""  # --network for RUN ("": the default bridge; "none", "host", a network name)
    platform: str = ""  # --platform ("": the host's)
    # Credentials for FROM's pulls by registry host[:port] ("": Docker Hub); none: anonymous.
    registry_auth: Mapping[str, Credentials] = field(default_factory=dict, repr=False)


class StepState(enum.Enum):
    STARTED = "started"  # a step begins (its `text` is "Step 2/7 : RUN make", docker's words)
    CACHED = "cached"  # the step's result was taken from the cache ("---> Using cache")
    OUTPUT = "output"  # output of a RUN, as it comes (`data`, `stream` 1 or 2)
    DONE = "done"  # the step is over (`image_id`: the intermediate image's id, when it made one)
    INFO = "info"  # anything else worth a line (a pull of FROM's image, a warning)


@dataclass(frozen=True)
class BuildProgress:
    """One thing worth telling the client while the build runs."""

    state: StepState
    step: int = 0  # 1-based step number over the whole build (0: not a step's)
    total: int = 0  # steps in the build (those the target needs)
    stage: str = ""  # the stage's name or index ("builder", "0")
    text: str = ""  # human text (STARTED: the step's line as docker prints it)
    data: bytes = b""  # OUTPUT: the bytes the RUN wrote
    stream: int = 1  # OUTPUT: 1 stdout, 2 stderr
    image_id: str = ""  # DONE: the step's resulting image id ("sha256:..."), when any


@dataclass(frozen=True)
class BuildResult:
    """What a finished build made."""

    image_id: str  # "sha256:..." of the final image
    tags: tuple[str, ...] = ()  # the references tagged to it, normalized
    steps: int = 0
    cached_steps: int = 0
