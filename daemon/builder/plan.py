"""What a build is asked, worked out before any step runs.

Owns: reading the Dockerfile from the context (inside it, a regular file, at most 4 MiB;
docker's reserved `.dockerfile.<hex>` name taken out of the context once read), checking
the tags, the ARGs before FROM (with `--build-arg` and BuildKit's automatic platform
ARGs), the `--target` stage and the stages it needs (FROM a stage, COPY --from a stage),
a stage found by name, and a base image's ONBUILD triggers as instructions. Must not:
run steps, or touch images (the executor does both).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from pallet.daemon.builder import instructions as ins
from pallet.daemon.builder.dockerfile import parse
from pallet.daemon.builder.model import BuildOptions
from pallet.daemon.builder.shellwords import Lexer, SubstitutionError
from pallet.daemon.builder.sources import ContextRoot, SourceError
from pallet.daemon.builder.steps import step_error
from pallet.daemon.images import oci
from pallet.daemon.images.reference import parse_tagged
from pallet.v1.errors import InvalidArgument, NotFound, PalletError

_MAX_DOCKERFILE = 4 << 20


def read_dockerfile(context: Path, file: str) -> bytes:
    root = ContextRoot(context)
    try:
        found = root.resolve(file, "Dockerfile")
    except SourceError as exc:
        raise InvalidArgument(f"cannot read the Dockerfile {file}: {exc.message}") from None
    if found is None or not stat.S_ISREG(found[1].st_mode):
        raise NotFound(
            f"Cannot locate specified Dockerfile: {file} (not a file in the build context; "
            "-f names another)"
        )
    if found[1].st_size > _MAX_DOCKERFILE:
        raise InvalidArgument(f"the Dockerfile {file} is {found[1].st_size} bytes: more than 4 MiB is not a Dockerfile")
    path = root.host_path(found[0])
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        text = f.read(_MAX_DOCKERFILE + 1)
    if len(found[0]) == 1 and found[0][0].startswith(".dockerfile."):
        # docker's reserved name for a Dockerfile from outside the context (or from stdin,
        # or one .dockerignore excludes): it is the build's, not the context's to COPY.
        os.unlink(path)
    return text


def check_tag(tag: str) -> str:
    ref = parse_tagged(tag)
    if ref.digest:
        raise InvalidArgument(f"invalid tag {tag!r}: a tag may not contain a digest")
    return str(ref)


def meta_args(dockerfile: ins.Dockerfile, options: BuildOptions, lexer: Lexer) -> dict[str, str]:
    """The ARGs before the first FROM, with --build-arg over their defaults; and
    BuildKit's automatic platform ARGs (`FROM --platform=$BUILDPLATFORM`, `ARG TARGETARCH`
    in a stage), this host's: a build here is for this host only."""
    arch = oci.host_architecture()
    meta: dict[str, str] = {}
    for prefix in ("BUILD", "TARGET"):
        meta.update({f"{prefix}PLATFORM": f"linux/{arch}", f"{prefix}OS": "linux",
                     f"{prefix}ARCH": arch, f"{prefix}VARIANT": ""})
    for arg in dockerfile.meta_args:
        for name, default in arg.pairs:
            given = options.build_args.get(name)
            if given is not None:
                meta[name] = given
            elif default is not None:
                try:
                    meta[name] = lexer.process_word(default, meta)
                except SubstitutionError as exc:
                    raise step_error(dockerfile.file, arg, exc.message) from None
    return meta


def target(dockerfile: ins.Dockerfile, target: str) -> ins.Stage:
    if not target:
        return dockerfile.stages[-1]
    found = stage_named(dockerfile, target, before=len(dockerfile.stages))
    if found is None:
        names = ", ".join(s.name for s in dockerfile.stages if s.name) or "none has a name"
        raise InvalidArgument(
            f"target stage {target!r} could not be found in {dockerfile.file} (its stages: {names})"
        )
    return found


def stage_named(dockerfile: ins.Dockerfile, name: str, before: int) -> ins.Stage | None:
    lower = name.lower()
    for stage in dockerfile.stages[:before]:
        if stage.name and stage.name == lower:
            return stage
    return None


def needed(dockerfile: ins.Dockerfile, target: ins.Stage, meta: dict[str, str], lexer: Lexer) -> list[int]:
    """The stages the target needs (FROM a stage, COPY --from a stage), in file order."""
    seen: set[int] = set()
    todo = [target.index]
    while todo:
        index = todo.pop()
        if index in seen:
            continue
        seen.add(index)
        stage = dockerfile.stages[index]
        refs = [stage.source.base]
        refs += [c.from_stage for c in stage.commands if isinstance(c, ins.Copy) and c.from_stage]
        for ref in refs:
            try:
                name = lexer.process_word(ref, meta)
            except SubstitutionError:
                continue  # said when the step runs
            if name.isdigit() and ref is not stage.source.base and int(name) < len(dockerfile.stages):
                todo.append(int(name))
                continue
            found = stage_named(dockerfile, name, before=len(dockerfile.stages))
            if found is not None and found.index != index:
                todo.append(found.index)
    return sorted(seen)


def trigger_instructions(file: str, source: ins.From, trigger: str) -> Sequence[ins.Instruction]:
    """An ONBUILD trigger of the base image, as an instruction of this build."""
    try:
        parsed = parse(trigger, f"{file} (ONBUILD of the base image)")
        out = [ins.instruction_from(node, file) for node in parsed.nodes]
    except PalletError as exc:
        raise step_error(file, source, f"the base image's ONBUILD trigger {trigger!r}: {exc.message}") from None
    for instruction in out:
        if isinstance(instruction, (ins.From, ins.Maintainer, ins.Onbuild)):
            raise step_error(file, source, f"{instruction.node.name} isn't allowed as an ONBUILD trigger")
    return [replace(instruction, node=replace(instruction.node, start_line=source.line, end_line=source.line)) for instruction in out]

