"""The builder: a Dockerfile and its context into an image, as docker's classic builder.

Owns: `Builder.build(context_dir, options, report)`: the stages `--target` needs (and
only those) built in order, each stage's steps with the cache (a step whose parent,
instruction, resulting config and, for COPY/ADD, files read are the same reuses the image
it made), each step an image (a layer when it changes the filesystem: RUN's container
diff, COPY/ADD's files, WORKDIR's new directory; else only a history entry), progress as
it goes, the tags at the very end, the images a build under way stands on (`lineage`, for
the image store), and `start()`'s removal of the containers of builds a dead palletd
left. Must not: parse Dockerfiles (`dockerfile`, `instructions`), work out the stages and
ARGs before it starts (`plan`), say what an instruction does to the config (`steps`), run
containers itself (`runner`), or read the context's files unsafely (`sources` does it).

A build cut short (its caller cancelled, a failing RUN, palletd killed) leaves no tag
and no container; the images of the steps that finished stay as the cache's.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Protocol

import structlog

from pallet.daemon.builder import instructions as ins
from pallet.daemon.builder import plan as planning
from pallet.daemon.builder.cache import BuildCache, step_key
from pallet.daemon.builder.model import BuildOptions, BuildProgress, BuildResult, StepState
from pallet.daemon.builder.rootfs import ImageRoot
from pallet.daemon.builder.runner import LayerWriter, RunFailed, RunSpec, StepRunner
from pallet.daemon.builder.shellwords import Lexer, SubstitutionError
from pallet.daemon.builder.sources import (
    ContextRoot,
    ImageSourceRoot,
    Layout,
    Plan,
    SourceError,
    SourceRoot,
    content_hash,
    is_url,
    plan_sources,
    write_copy_layer,
)
from pallet.daemon.builder.steps import (
    PROXY_ARGS,
    StageState,
    Step,
    apply_config,
    copy_created_by,
    healthcheck_created_by,
    run_command,
    step_error,
    workdir,
)
from pallet.daemon.images import oci
from pallet.daemon.snapshots.difftar import LayerSink
from pallet.daemon.images.model import (
    CommitRequest,
    Credentials,
    HealthConfig,
    Image,
    ImageConfig,
    ProgressFn,
)
from pallet.daemon.images.reference import DEFAULT_DOMAIN, parse_tagged
from pallet.v1.errors import FailedPrecondition, InvalidArgument, NotFound, PalletError

log = structlog.get_logger(__name__)

# Takes one thing to tell the client; may answer a future to await before more output
# (the client is far behind: `api.builds`), which callers that report no output ignore.
Report = Callable[[BuildProgress], "asyncio.Future[None] | None"]
_CONFIG_STEPS = (
    ins.Env, ins.Label, ins.Arg, ins.User, ins.Cmd, ins.Entrypoint, ins.Expose, ins.Volume,
    ins.StopSignal, ins.Maintainer, ins.Onbuild, ins.Shell,
)


class BuildImages(Protocol):
    """What the builder needs of the image store."""

    async def get(self, name: str) -> Image: ...

    async def commit(self, request: CommitRequest) -> Image: ...

    async def pull(
        self, reference: str, platform: str, credentials: Credentials, progress: ProgressFn
    ) -> tuple[Image, str]: ...

    async def tag(self, source: str, target: str) -> None: ...

    def layer_dirs(self, image: Image) -> list[str]: ...


@dataclass
class _Current:
    """Where a stage is: its last image (None: scratch with no layer yet, whose config
    steps wait in `pending` to become history entries of its first layer)."""

    image: Image | None
    pending: list[str] = field(default_factory=list)

    @property
    def parent(self) -> str:
        return self.image.id if self.image is not None else ""


@dataclass
class _StageResult:
    current: _Current
    state: StageState


@dataclass
class _Run:
    """One build's facts and counters."""

    context: Path
    options: BuildOptions
    report: Report
    file: str
    dockerfile: ins.Dockerfile
    lexer: Lexer
    meta: dict[str, str]
    token: str
    total: int
    tmp: Path
    step: int = 0
    cached: int = 0
    used_args: set[str] = field(default_factory=set)
    # Every image this build made or took from the cache: `image prune` leaves them be
    # while it runs (the next step stands on one of them).
    images: set[str] = field(default_factory=set)
    results: dict[int, _StageResult] = field(default_factory=dict)
    building: set[int] = field(default_factory=set)

    def progress(self, state: StepState, stage: ins.Stage, **kw: object) -> asyncio.Future[None] | None:
        return self.report(BuildProgress(state, step=self.step, total=self.total, stage=stage.label, **kw))  # type: ignore[arg-type]


def _empty_layer(out: IO[bytes]) -> int:
    with tarfile.TarFile(fileobj=LayerSink(out), mode="w", format=tarfile.PAX_FORMAT):
        pass
    return 0


class Builder:
    """Builds for one palletd."""

    def __init__(
        self,
        images: BuildImages,
        runner: StepRunner,
        cache: BuildCache,
        tmp_dir: Path,
        default_network: str = "bridge",
        leftovers: Callable[[set[str]], object] | None = None,
    ) -> None:
        self._images = images
        self._runner = runner
        self._cache = cache
        self._tmp = tmp_dir
        self._default_network = default_network
        self._leftovers = leftovers
        self._active: dict[str, _Run] = {}

    async def lineage(self) -> dict[str, set[str]]:
        """What the image store asks (`ImageManager.set_lineage`): the cache's parent ->
        children, and the images of builds under way as their own children (an
        intermediate image is kept while a child needs it: these are needed right now)."""
        out = await self._cache.children()
        for run in list(self._active.values()):
            for image_id in run.images:
                out.setdefault(image_id, set()).add(image_id)
        return out

    async def start(self) -> None:
        await self._cache.start()
        await asyncio.to_thread(self._tmp.mkdir, parents=True, exist_ok=True)
        # What a build cut short by a crash left: its scratch files, its containers.
        await asyncio.to_thread(_clear_dir, self._tmp)
        tokens = await self._cache.unfinished()
        if self._leftovers is not None:
            removed = self._leftovers(tokens)
            if asyncio.iscoroutine(removed):
                removed = await removed
            if removed or tokens:
                log.info("removed the containers of unfinished builds", builds=len(tokens), containers=removed)
        if tokens:
            await self._cache.end(tokens)

    async def aclose(self) -> None:
        """Builds in flight end with their callers (the API cancels them)."""

    # ---- the build -------------------------------------------------------------------------

    async def build(self, context_dir: Path | str, options: BuildOptions, report: Report) -> BuildResult:
        started = time.monotonic()
        context = Path(context_dir)
        file = options.dockerfile or "Dockerfile"
        text = await asyncio.to_thread(planning.read_dockerfile, context, file)
        dockerfile = await asyncio.to_thread(ins.parse_dockerfile, text, file)
        tags = tuple(planning.check_tag(t) for t in options.tags)
        lexer = Lexer(escape=dockerfile.escape)
        meta = planning.meta_args(dockerfile, options, lexer)
        target = planning.target(dockerfile, options.target)
        needed = planning.needed(dockerfile, target, meta, lexer)
        total = sum(1 + len(dockerfile.stages[i].commands) for i in needed) + (1 if options.labels else 0)
        token = secrets.token_hex(16)
        tmp = self._tmp / token
        run = _Run(context, options, report, file, dockerfile, lexer, meta, token, total, tmp)
        for warning in dockerfile.warnings:
            report(BuildProgress(StepState.INFO, text=warning))
        await self._cache.begin(token)
        self._active[token] = run
        try:
            await asyncio.to_thread(tmp.mkdir, mode=0o700)
            for index in needed:
                await self._ensure(run, index)
            result = await self._ensure(run, target.index)
            if options.labels:
                await self._labels(run, target, result)
        finally:
            await asyncio.shield(self._finish(run))
        image = result.current.image
        if image is None:
            raise FailedPrecondition(
                f"{file}: stage {target.label} is FROM scratch and adds no files: an image needs "
                "at least one layer here (COPY something into it)"
            )
        for tag in tags:
            await self._images.tag(image.id, tag)
        unused = sorted(
            k for k, v in options.build_args.items()
            if v is not None and k not in run.used_args and k not in PROXY_ARGS and k not in meta
        )
        if unused:
            report(BuildProgress(StepState.INFO, text=f"[Warning] One or more build-args {unused} were not consumed"))
        log.info("image built", image_id=image.id, tags=list(tags), steps=run.step, cached=run.cached,
                 seconds=round(time.monotonic() - started, 3))
        return BuildResult(image.id, tuple(parse_tagged(t).familiar() for t in tags), run.step, run.cached)

    async def _finish(self, run: _Run) -> None:
        self._active.pop(run.token, None)
        await asyncio.to_thread(shutil.rmtree, run.tmp, True)
        try:
            await self._cache.end({run.token})
        except PalletError as e:
            log.warning("could not record the end of a build", reason=str(e))

    async def _ensure(self, run: _Run, index: int) -> _StageResult:
        """The stage's result, built once (a later stage may need it again)."""
        done = run.results.get(index)
        if done is not None:
            return done
        stage = run.dockerfile.stages[index]
        if index in run.building:
            raise InvalidArgument(
                f"{run.file}:{stage.source.line}: stage {stage.label} depends on itself "
                "(through FROM or COPY --from)"
            )
        run.building.add(index)
        try:
            result = await self._stage(run, stage)
        finally:
            run.building.discard(index)
        run.results[index] = result
        return result

    # ---- stages ----------------------------------------------------------------------------

    async def _stage(self, run: _Run, stage: ins.Stage) -> _StageResult:
        source = stage.source
        run.step += 1
        run.progress(StepState.STARTED, stage, text=f"Step {run.step}/{run.total} : {source.text}")
        try:
            base = run.lexer.process_word(source.base, run.meta)
        except SubstitutionError as exc:
            raise step_error(run.file, source, exc.message) from None
        try:
            kept = Lexer(escape=run.lexer.escape, skip_unset=True).process_word(source.base, run.meta)
        except SubstitutionError:
            kept = base
        if kept != base:
            unset = sorted({n for n in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", source.base) if n not in run.meta})
            raise step_error(
                run.file, source,
                f"base name ({source.base}) uses ARG {', '.join(unset)} with no value: give it a "
                "default (ARG NAME=value before FROM) or a value with --build-arg",
            )
        if not base:
            raise step_error(
                run.file, source,
                f"base name ({source.base}) should not be blank: give the ARG it uses a default "
                "(ARG NAME=value before FROM) or a value with --build-arg",
            )
        _check_platform(run, source)
        state = StageState()
        named = planning.stage_named(run.dockerfile, base, before=stage.index)
        if base.lower() == "scratch":
            current = _Current(None)
        elif named is not None:
            parent = await self._ensure(run, named.index)
            current = _Current(parent.current.image, list(parent.current.pending))
            state = StageState(config=parent.state.config, author=parent.state.author)
        else:
            image = await self._base_image(run, stage, source, base)
            current = _Current(image)
            state = StageState(config=image.config)
        if current.image is not None:
            run.progress(StepState.DONE, stage, text=f" ---> {_short(current.image.id)}", image_id=current.image.id)
        triggers = state.config.on_build
        if triggers:
            # docker's: a base's ONBUILD triggers run first, and are not passed on.
            state.config = replace(state.config, on_build=())
            run.progress(StepState.INFO, stage, text=f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
            for trigger in triggers:
                for instruction in planning.trigger_instructions(run.file, source, trigger):
                    await self._step(run, stage, state, current, instruction, counted=False)
        for instruction in stage.commands:
            await self._step(run, stage, state, current, instruction)
        return _StageResult(current, state)

    async def _base_image(self, run: _Run, stage: ins.Stage, source: ins.Instruction, name: str) -> Image:
        image: Image | None = None
        if not run.options.pull:
            try:
                image = await self._images.get(name)
            except NotFound:
                image = None
            except InvalidArgument as exc:
                raise step_error(run.file, source, exc.message) from None
        if image is None:
            run.progress(StepState.INFO, stage, text=f"Pulling {name}")
            try:
                domain = parse_tagged(name).domain
                registry = "" if domain == DEFAULT_DOMAIN else domain  # Docker Hub's key: ""
                auth = run.options.registry_auth.get(registry, Credentials())
                image, _ = await self._images.pull(name, run.options.platform, auth, lambda *a: None)
            except PalletError as exc:
                raise step_error(
                    run.file, source,
                    f"image {name} is not here and could not be pulled: {exc.message}",
                    NotFound,
                ) from None
        run.images.add(image.id)
        return image

    # ---- steps ------------------------------------------------------------------------------

    async def _step(
        self, run: _Run, stage: ins.Stage, state: StageState, current: _Current,
        i: ins.Instruction, counted: bool = True,
    ) -> None:
        if counted:
            run.step += 1
        run.progress(StepState.STARTED, stage, text=f"Step {run.step}/{run.total} : {i.text}")
        step = Step(i, state, run.lexer, run.file)
        if isinstance(i, _CONFIG_STEPS):
            try:
                config, created_by = apply_config(step, run.options.build_args, run.meta)
            except PalletError as exc:
                if exc.message.startswith(f"{run.file}:"):
                    raise
                raise step.error(exc.message) from None
            if isinstance(i, ins.Arg):
                run.used_args.update(name for name, _ in i.pairs)
            await self._config_step(run, stage, i, state, current, config, created_by)
        elif isinstance(i, ins.Healthcheck):
            config = replace(state.config, healthcheck=HealthConfig(
                test=i.test, interval_ns=i.interval_ns, timeout_ns=i.timeout_ns,
                start_period_ns=i.start_period_ns, start_interval_ns=i.start_interval_ns,
                retries=i.retries,
            ))
            created_by = healthcheck_created_by(state.shell, i)
            await self._config_step(run, stage, i, state, current, config, created_by)
        elif isinstance(i, ins.Workdir):
            await self._workdir(run, stage, state, current, step)
        elif isinstance(i, ins.Run):
            await self._run(run, stage, state, current, step, i)
        elif isinstance(i, ins.Copy):
            await self._copy(run, stage, state, current, step, i)
        else:
            raise step.error(f"{i.node.name} cannot be used here")

    async def _cached(self, run: _Run, stage: ins.Stage, current: _Current, key: str) -> bool:
        if run.options.no_cache:
            return False
        found = await self._cache.lookup(current.parent, key)
        if found is None:
            return False
        try:
            image = await self._images.get(found)
        except NotFound:
            return False
        current.image = image
        run.images.add(image.id)
        run.cached += 1
        run.progress(StepState.CACHED, stage, text=" ---> Using cache")
        run.progress(StepState.DONE, stage, text=f" ---> {_short(image.id)}", image_id=image.id)
        return True

    def _key(self, current: _Current, created_by: str, config: ImageConfig, extra: Mapping[str, object]) -> str:
        return step_key(
            current.parent, created_by, oci.runtime_config_to_json(config),
            {**extra, "pending": current.pending},
        )

    async def _commit(
        self, run: _Run, i: ins.Instruction, state: StageState, current: _Current, key: str,
        config: ImageConfig, created_by: str, writer: LayerWriter, container_id: str = "",
    ) -> Image:
        parent = current.parent
        request = CommitRequest(
            base_image_id=parent,
            write_layer=writer,
            config=config,
            author=state.author,
            created_by=created_by,
            container_id=container_id,
            base_history=tuple(current.pending) if not parent else (),
        )
        try:
            image = await self._images.commit(request)
        except InvalidArgument as exc:
            raise step_error(run.file, i, exc.message) from None
        run.images.add(image.id)
        await self._cache.record(parent, key, image.id)
        current.image = image
        current.pending = []
        return image

    async def _config_step(
        self, run: _Run, stage: ins.Stage, i: ins.Instruction, state: StageState, current: _Current,
        config: ImageConfig, created_by: str,
    ) -> None:
        state.config = config
        if current.image is None:
            # scratch, nothing yet: the step waits for the stage's first layer.
            current.pending.append(created_by)
            run.progress(StepState.DONE, stage, text=" ---> (no layer yet)")
            return
        key = self._key(current, created_by, config, {"author": state.author})
        if await self._cached(run, stage, current, key):
            return
        image = await self._commit(run, i, state, current, key, config, created_by, _empty_layer)
        run.progress(StepState.DONE, stage, text=f" ---> {_short(image.id)}", image_id=image.id)

    async def _workdir(self, run: _Run, stage: ins.Stage, state: StageState, current: _Current, step: Step) -> None:
        config, created_by = workdir(step)
        state.config = config
        root = ImageRoot(self._layers(current))
        found = await asyncio.to_thread(root.resolve, config.working_dir)
        if found.st is not None:
            if not found.is_dir:
                raise step.error(f"cannot make the working directory {config.working_dir}: it is a file in the image")
            await self._config_step(run, stage, step.instruction, state, current, config, created_by)
            return
        key = self._key(current, created_by, config, {"mkdir": True})
        if await self._cached(run, stage, current, key):
            return
        layout = Layout(found, True, None, None)

        def layer(out: IO[bytes]) -> int:
            return write_copy_layer(root, Plan(), layout, out)

        image = await self._commit(run, step.instruction, state, current, key, config, created_by, layer)
        run.progress(StepState.DONE, stage, text=f" ---> {_short(image.id)}", image_id=image.id)

    def _layers(self, current: _Current) -> list[str]:
        return self._images.layer_dirs(current.image) if current.image is not None else []

    async def _run(
        self, run: _Run, stage: ins.Stage, state: StageState, current: _Current, step: Step, i: ins.Run
    ) -> None:
        image = current.image
        if image is None:
            raise step.error("RUN needs a filesystem to run in: this stage is FROM scratch and has no files yet")
        history_args = tuple(a for a in state.run_env() if a.partition("=")[0] not in PROXY_ARGS)
        command = run_command(step, history_args)
        proxies = tuple(
            f"{k}={v}" for k, v in run.options.build_args.items()
            if k in PROXY_ARGS and v is not None and k not in state.args
        )
        network = _network(i.network or run.options.network, self._default_network)
        key = self._key(current, command.created_by, state.config, {"network": network, "author": state.author})
        if await self._cached(run, stage, current, key):
            return
        spec = RunSpec(
            argv=command.argv,
            env=(*state.run_env(), *proxies),
            user=state.config.user,
            working_dir=state.config.working_dir,
            network=network,
            stdin=command.stdin,
            token=run.token,
        )

        def output(stream: int, data: bytes) -> asyncio.Future[None] | None:
            return run.progress(StepState.OUTPUT, stage, data=data, stream=stream)

        async def commit(writer: LayerWriter, container_id: str) -> Image:
            return await self._commit(run, i, state, current, key, state.config, command.created_by, writer, container_id)

        try:
            made = await self._runner.run(image, spec, output, commit)
        except RunFailed as exc:
            message = exc.message + (f"; its last output:\n{exc.tail}" if exc.tail else "")
            raise step_error(run.file, i, message, FailedPrecondition) from None
        except PalletError as exc:
            if exc.message.startswith(f"{run.file}:"):
                raise
            raise step_error(run.file, i, exc.message, type(exc)) from None
        run.progress(StepState.DONE, stage, text=f" ---> {_short(made.id)}", image_id=made.id)

    async def _copy(
        self, run: _Run, stage: ins.Stage, state: StageState, current: _Current, step: Step, i: ins.Copy
    ) -> None:
        name = "ADD" if i.add else "COPY"
        sources = [step.word(s) for s in i.sources]
        for source in sources:
            if i.add and is_url(source):
                raise step.error(
                    f"ADD {source}: fetching URLs is not supported: palletd builds without a network "
                    "to download from; put the file in the build context and ADD or COPY it from there"
                )
        dest_text = step.word(i.dest)
        if not dest_text:
            raise step.error(f"{name} needs a destination")
        chown = step.word(i.chown) if i.chown else ""
        chmod = _chmod(step, step.word(i.chmod)) if i.chmod else None
        dest_is_dir = dest_text.endswith("/") or dest_text.endswith("/.") or dest_text == "."
        dest = dest_text if dest_text.startswith("/") else os.path.join(state.config.working_dir or "/", dest_text)
        root: SourceRoot
        from_id = ""
        if i.from_stage:
            root, from_id = await self._from_root(run, stage, step, i.from_stage)
        else:
            root = ContextRoot(run.context)
        image_root = ImageRoot(self._layers(current))

        def prepare() -> tuple[Plan, Layout, str]:
            found = image_root.resolve(dest)
            into = dest_is_dir or found.is_dir
            items: list[tuple[SourceRoot, str]] = [(root, s) for s in sources]
            if i.contents:
                docs = ContextRoot(self._heredoc_files(run, step, i), "heredoc")
                items += [(docs, d.name) for d in i.contents]
            plan = plan_sources(items, into, name, add=i.add)
            owner = image_root.ids(chown) if chown else None
            return plan, Layout(found, plan.into_dir, owner, chmod), content_hash(plan)

        try:
            plan, layout, digest = await asyncio.to_thread(prepare)
        except PalletError as exc:
            if exc.message.startswith(f"{run.file}:"):
                raise
            raise step_error(run.file, i, exc.message, type(exc)) from None
        created_by = copy_created_by(step, plan.kinds, digest, dest_text)
        extra = {"owner": list(layout.owner) if layout.owner else None, "chmod": chmod, "from": from_id}
        key = self._key(current, created_by, state.config, extra)
        if await self._cached(run, stage, current, key):
            return

        def layer(out: IO[bytes]) -> int:
            return write_copy_layer(image_root, plan, layout, out)

        try:
            image = await self._commit(run, i, state, current, key, state.config, created_by, layer)
        except SourceError as exc:
            raise step_error(run.file, i, exc.message) from None
        run.progress(StepState.DONE, stage, text=f" ---> {_short(image.id)}", image_id=image.id)

    def _heredoc_files(self, run: _Run, step: Step, i: ins.Copy) -> Path:
        """COPY's heredocs as files (named after their delimiters) in a directory of
        their own; content substituted unless the delimiter was quoted."""
        where = run.tmp / f"heredoc-{i.line}-{secrets.token_hex(4)}"
        where.mkdir(mode=0o700)
        raw = Lexer(skip_quotes=True)
        for doc in i.contents:
            text = doc.text
            if doc.expand:
                try:
                    text = raw.process_word(text, step.state.env())
                except SubstitutionError as exc:
                    raise step.error(exc.message) from None
            if "/" in doc.name or doc.name in (".", ".."):
                raise step.error(f"heredoc name {doc.name!r} cannot be a file name")
            path = where / doc.name
            path.write_text(text)
            path.chmod(0o644)
        return where

    async def _from_root(self, run: _Run, stage: ins.Stage, step: Step, text: str) -> tuple[SourceRoot, str]:
        name = step.word(text)
        target: ins.Stage | None = None
        if name.isdigit():
            index = int(name)
            if index >= stage.index:
                raise step.error(f"--from={name}: a stage can only copy from a stage before it (this is stage {stage.index})")
            target = run.dockerfile.stages[index]
        else:
            target = planning.stage_named(run.dockerfile, name, before=len(run.dockerfile.stages))
            if target is not None and target.index == stage.index:
                raise step.error(f"--from={name}: a stage cannot copy from itself")
        if target is not None:
            result = await self._ensure(run, target.index)
            layers = self._layers(result.current)
            return ImageSourceRoot(layers, f"stage {target.label}"), result.current.parent
        image = await self._base_image(run, stage, step.instruction, name)
        return ImageSourceRoot(self._images.layer_dirs(image), f"image {name}"), image.id

    async def _labels(self, run: _Run, target: ins.Stage, result: _StageResult) -> None:
        """--label: one last LABEL step on the target (docker's classic builder adds it)."""
        labels = dict(result.state.config.labels)
        labels.update(run.options.labels)
        run.step += 1
        said = " ".join(f"{k}={v}" for k, v in sorted(run.options.labels.items()))
        run.progress(StepState.STARTED, target, text=f"Step {run.step}/{run.total} : LABEL {said}")
        config = replace(result.state.config, labels=labels)
        created_by = " ".join(result.state.shell) + " #(nop)  LABEL " + said
        await self._config_step(run, target, target.source, result.state, result.current, config, created_by)


# ---- helpers ----------------------------------------------------------------------------------


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _clear_dir(path: Path) -> None:
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _check_platform(run: _Run, source: ins.From) -> None:
    wanted = source.platform or run.options.platform
    if not wanted:
        return
    try:
        wanted = run.lexer.process_word(wanted, run.meta)
    except SubstitutionError as exc:
        raise step_error(run.file, source, exc.message) from None
    here = f"linux/{oci.host_architecture()}"
    if wanted not in (here, "linux", f"{here}/"):
        raise step_error(
            run.file, source,
            f"--platform={wanted}: this host builds for {here} only (no emulation here)",
            FailedPrecondition,
        )


def _network(wanted: str, default: str) -> str:
    if wanted in ("", "default"):
        return default
    return wanted


def _chmod(step: Step, text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise step.error(f"--chmod={text}: give an octal mode like 755 or 0644") from None
    if not 0 <= mode <= 0o7777:
        raise step.error(f"--chmod={text}: a mode goes up to 7777")
    return mode
