"""The builder's executor on a real image store, with a fake RUN (no containers): steps,
configs, history, the cache (hits, invalidation, --no-cache, a restart), stages and
--target, COPY/ADD from the context and from stages, and hostile contexts."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest
from test_images_kit import StoreEnv, build_tar, chunks, dir_, open_store, reg, sym

from pallet.daemon.builder.cache import BuildCache
from pallet.daemon.builder.executor import Builder
from pallet.daemon.builder.model import BuildOptions, BuildProgress, BuildResult, StepState
from pallet.daemon.builder.runner import Commit, RunFailed, RunSpec
from pallet.daemon.images import oci
from pallet.daemon.images.model import Image
from pallet.daemon.snapshots.difftar import LayerSink
from pallet.v1.errors import FailedPrecondition, InvalidArgument, NotFound, PalletError

BASE = build_tar(
    dir_("bin"), reg("bin/sh", b"#!shell", mode=0o755), dir_("etc"),
    reg("etc/passwd", b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"),
    reg("etc/group", b"root:x:0:\nstaff:x:50:app\napp:x:1000:\n"),
    dir_("tmp", mode=0o1777), dir_("usr"), dir_("usr/bin"), sym("usr/sbin", "bin"),
)


@dataclass
class FakeRunner:
    """RUN without containers: the script (the last argv word) names files to write."""

    scripts: dict[str, dict[str, bytes]] = field(default_factory=dict)
    failing: dict[str, int] = field(default_factory=dict)
    ran: list[RunSpec] = field(default_factory=list)
    meanwhile: Callable[[], Awaitable[object]] | None = None  # what happens while it "runs"

    async def run(self, image: Image, spec: RunSpec, output: Callable[[int, bytes], None], commit: Commit) -> Image:
        self.ran.append(spec)
        if self.meanwhile is not None:
            await self.meanwhile()
        script = spec.argv[-1]
        output(1, f"running {script}\n".encode())
        if script in self.failing:
            output(2, b"line one\nline two\n")
            raise RunFailed(f"the command '{' '.join(spec.argv)}' returned a non-zero code: {self.failing[script]}",
                            self.failing[script], "line one\nline two")
        files = self.scripts.get(script, {})

        def layer(out: IO[bytes]) -> int:
            with tarfile.TarFile(fileobj=LayerSink(out), mode="w", format=tarfile.PAX_FORMAT) as tar:
                for name, data in files.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
            return len(files)

        return await commit(layer, "c" * 64)


@dataclass
class Env:
    store: StoreEnv
    builder: Builder
    runner: FakeRunner
    context: Path
    progress: list[BuildProgress] = field(default_factory=list)

    async def build(self, dockerfile: str, **options: object) -> BuildResult:
        (self.context / "Dockerfile").write_text(dockerfile)
        self.progress = []
        return await self.builder.build(self.context, BuildOptions(**options), self.progress.append)  # type: ignore[arg-type]

    def texts(self, state: StepState) -> list[str]:
        return [p.text for p in self.progress if p.state is state]

    async def history(self, image_id: str) -> list[str]:
        return [h.created_by for h in reversed(await self.store.manager.history(image_id))]

    def files(self, image: Image) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for layer in reversed(self.store.manager.layer_dirs(image)):
            for dirpath, _, names in os.walk(layer):
                for name in names:
                    full = Path(dirpath, name)
                    if full.is_file() and not full.is_symlink():
                        out["/" + str(full.relative_to(layer))] = full.read_bytes()
        return out


@asynccontextmanager
async def builder_env(tmp_path: Path) -> AsyncIterator[Env]:
    async with open_store(tmp_path) as store:
        await store.manager.import_rootfs(chunks(BASE), "base:1")
        cache = BuildCache(store.db)
        runner = FakeRunner()
        builder = Builder(store.manager, runner, cache, tmp_path / "builder")
        store.manager.set_lineage(builder.lineage)
        await builder.start()
        context = tmp_path / "context"
        context.mkdir()
        yield Env(store, builder, runner, context)


async def test_every_config_instruction_history_and_tags(tmp_path: Path) -> None:
    async with builder_env(tmp_path) as env:
        (env.context / "a.txt").write_text("hello")
        result = await env.build(
            "FROM base:1\n"
            "MAINTAINER me <me@example.com>\n"
            "ENV A=1 B=\"two words\"\n"
            "ENV C=${A}x\n"
            "LABEL version=$A \"my label\"=yes\n"
            "WORKDIR /app\n"
            "WORKDIR sub\n"
            "COPY a.txt .\n"
            "RUN make\n"
            "USER app\n"
            "EXPOSE 80 53/udp\n"
            "VOLUME /data\n"
            "STOPSIGNAL SIGQUIT\n"
            "ONBUILD RUN echo child\n"
            'SHELL ["/bin/sh", "-ec"]\n'
            "ENTRYPOINT exec app\n"
            'CMD ["--flag"]\n',
            tags=("app:1", "app:latest"),
        )
        assert result.steps == 17 and result.cached_steps == 0
        assert sorted(result.tags) == ["app:1", "app:latest"]
        image = await env.store.manager.get("app:1")
        c = image.config
        assert c.env == ("A=1", "B=two words", "C=1x")
        assert c.labels == {"version": "1", "my label": "yes"}
        assert c.working_dir == "/app/sub"
        assert c.user == "app"
        assert c.exposed_ports == ("53/udp", "80/tcp")
        assert c.volumes == ("/data",)
        assert c.stop_signal == "SIGQUIT"
        assert c.on_build == ("RUN echo child",)
        assert c.shell == ("/bin/sh", "-ec")
        assert c.entrypoint == ("/bin/sh", "-ec", "exec app")
        assert c.cmd == ("--flag",)
        assert image.author == "me <me@example.com>"
        assert env.files(image)["/app/sub/a.txt"] == b"hello"
        history = await env.history(image.id)
        assert history[1:] == [
            "/bin/sh -c #(nop)  MAINTAINER me <me@example.com>",
            "/bin/sh -c #(nop)  ENV A=1 B=two words",
            "/bin/sh -c #(nop)  ENV C=1x",
            "/bin/sh -c #(nop)  LABEL version=1 my label=yes",
            "/bin/sh -c #(nop) WORKDIR /app",
            "/bin/sh -c #(nop) WORKDIR /app/sub",
            history[7],
            "/bin/sh -c make",
            "/bin/sh -c #(nop)  USER app",
            "/bin/sh -c #(nop)  EXPOSE 80 53/udp",
            "/bin/sh -c #(nop)  VOLUME [/data]",
            "/bin/sh -c #(nop)  STOPSIGNAL SIGQUIT",
            "/bin/sh -c #(nop)  ONBUILD RUN echo child",
            "/bin/sh -c #(nop)  SHELL [/bin/sh -ec]",
            '/bin/sh -ec #(nop)  ENTRYPOINT ["/bin/sh" "-ec" "exec app"]',
            '/bin/sh -ec #(nop)  CMD ["--flag"]',
        ]
        assert history[7].startswith("/bin/sh -c #(nop) COPY file:") and history[7].endswith(" in . ")
        (spec,) = env.runner.ran
        assert spec.argv == ("/bin/sh", "-c", "make")
        assert spec.working_dir == "/app/sub" and spec.user == ""
        assert "Step 1/17 : FROM base:1" in env.texts(StepState.STARTED)
        assert env.texts(StepState.STARTED)[-1] == 'Step 17/17 : CMD ["--flag"]'


async def test_second_build_is_all_cached_and_a_changed_file_invalidates_from_its_copy(tmp_path: Path) -> None:
    dockerfile = "FROM base:1\nRUN one\nCOPY a.txt /a.txt\nRUN two\nCOPY b.txt /b.txt\nRUN three\n"
    async with builder_env(tmp_path) as env:
        (env.context / "a.txt").write_text("a")
        (env.context / "b.txt").write_text("b")
        first = await env.build(dockerfile, tags=("app",))
        assert [s.argv[-1] for s in env.runner.ran] == ["one", "two", "three"]
        second = await env.build(dockerfile, tags=("app",))
        assert second.image_id == first.image_id
        assert second.cached_steps == 5 and len(env.runner.ran) == 3
        assert env.texts(StepState.CACHED) == [" ---> Using cache"] * 5
        # A change of b.txt: its COPY and what follows run again, not what comes before.
        (env.context / "b.txt").write_text("B")
        third = await env.build(dockerfile, tags=("app",))
        assert third.image_id != first.image_id
        assert third.cached_steps == 3
        assert [s.argv[-1] for s in env.runner.ran] == ["one", "two", "three", "three"]
        # Only metadata docker ignores (the mtime): still cached.
        os.utime(env.context / "b.txt", (1, 1))
        assert (await env.build(dockerfile)).cached_steps == 5
        # A mode change is content's metadata: invalidates.
        (env.context / "b.txt").chmod(0o600)
        assert (await env.build(dockerfile)).cached_steps == 3
        # --no-cache: everything again.
        runs = len(env.runner.ran)
        assert (await env.build(dockerfile, no_cache=True)).cached_steps == 0
        assert len(env.runner.ran) == runs + 3


async def test_cache_survives_a_new_builder_and_prune_keeps_what_tags_need(tmp_path: Path) -> None:
    dockerfile = "FROM base:1\nENV A=1\nRUN one\n"
    async with builder_env(tmp_path) as env:
        first = await env.build(dockerfile, tags=("app",))
        # A palletd restart: a new builder over the same database and store.
        again = Builder(env.store.manager, env.runner, BuildCache(env.store.db), tmp_path / "builder")
        await again.start()
        env.builder = again
        second = await env.build(dockerfile)
        assert second.image_id == first.image_id and second.cached_steps == 2
        listed = {i.id for i in await env.store.manager.list()}
        every = {i.id for i in await env.store.manager.list(all=True)}
        assert first.image_id in listed and len(every - listed) == 1  # the ENV step's image is hidden
        await env.store.manager.prune()
        assert {i.id for i in await env.store.manager.list(all=True)} == every
        assert (await env.build(dockerfile)).cached_steps == 2
        # Untagged, the chain goes with one prune, and the cache with it.
        await env.store.manager.remove("app")
        await env.store.manager.prune()
        assert {i.repo_tags for i in await env.store.manager.list(all=True)} == {("base:1",)}
        assert (await env.build(dockerfile)).cached_steps == 0


async def test_target_builds_only_the_stages_it_needs(tmp_path: Path) -> None:
    async with builder_env(tmp_path) as env:
        env.runner.scripts["make"] = {"out/app": b"binary"}
        dockerfile = (
            "FROM base:1 AS build\nRUN make\n"
            "FROM base:1 AS unused\nRUN never\n"
            "FROM base:1 AS final\nCOPY --from=build /out/app /usr/bin/app\nRUN check\n"
            "FROM final AS extra\nRUN later\n"
        )
        result = await env.build(dockerfile, target="final", tags=("app",))
        assert [s.argv[-1] for s in env.runner.ran] == ["make", "check"]
        assert result.steps == 5
        image = await env.store.manager.get("app")
        assert env.files(image)["/usr/bin/app"] == b"binary"
        with pytest.raises(InvalidArgument, match="target stage 'nope' could not be found"):
            await env.build(dockerfile, target="nope")
        # FROM a stage, and COPY --from by index and from an image.
        env.runner.ran.clear()
        result = await env.build(dockerfile + "COPY --from=0 /out/app /a\nCOPY --from=base:1 /etc/group /g\n", tags=("x",))
        assert [s.argv[-1] for s in env.runner.ran] == ["later"]
        files = env.files(await env.store.manager.get("x"))
        assert files["/a"] == b"binary" and files["/g"].startswith(b"root:x:0:")


async def test_failing_run_names_line_exit_code_and_output_and_tags_nothing(tmp_path: Path) -> None:
    async with builder_env(tmp_path) as env:
        env.runner.failing["make"] = 2
        with pytest.raises(FailedPrecondition) as info:
            await env.build("FROM base:1\nENV A=1\n\nRUN make\nRUN after\n", tags=("app",))
        message = info.value.message
        assert message.startswith("Dockerfile:4: RUN make: the command '/bin/sh -c make' returned a non-zero code: 2")
        assert message.endswith("line one\nline two")
        with pytest.raises(NotFound):
            await env.store.manager.get("app")
        assert [s.argv[-1] for s in env.runner.ran] == ["make"]
        # The step before it is cached.
        env.runner.failing.clear()
        result = await env.build("FROM base:1\nENV A=1\n\nRUN make\nRUN after\n", tags=("app",))
        assert result.cached_steps == 1


async def test_build_args_meta_args_and_run_history(tmp_path: Path) -> None:
    async with builder_env(tmp_path) as env:
        dockerfile = (
            "ARG TAG=1\nARG UNSET\nFROM base:${TAG}\nARG TAG\nARG X=default\nARG Y\n"
            "RUN echo $X\nENV X=from-env\nRUN again\n"
        )
        result = await env.build(dockerfile, build_args={"Y": "y", "HTTP_PROXY": "http://p:3128", "NOPE": "1"}, tags=("a",))
        first, second = env.runner.ran
        assert set(first.env) == {"TAG=1", "X=default", "Y=y", "HTTP_PROXY=http://p:3128"}
        history = await env.history(result.image_id)
        # The proxy is not in the history (docker keeps it out), ENV X hides ARG X.
        assert "|3 TAG=1 X=default Y=y /bin/sh -c echo $X" in history
        assert "|2 TAG=1 Y=y /bin/sh -c again" in history
        assert any("[Warning] One or more build-args ['NOPE'] were not consumed" in t for t in env.texts(StepState.INFO))
        with pytest.raises(InvalidArgument) as info:
            await env.build("ARG V\nFROM base:$V\n")
        assert info.value.message.startswith("Dockerfile:2: FROM base:$V: base name (base:$V) uses ARG V with no value")


async def test_scratch_stage_and_copy_heredoc_and_chown(tmp_path: Path) -> None:
    async with builder_env(tmp_path) as env:
        (env.context / "bin").mkdir()
        (env.context / "bin" / "tool").write_bytes(b"tool")
        result = await env.build(
            "FROM scratch\nLABEL a=b\nCOPY bin /bin/\nCOPY <<EOF <<'RAW' /etc/\n$HOME x\nEOF\n$HOME y\nRAW\n"
            "ENV HOME=/root\nCOPY <<EOF /etc/home\n\"$HOME\" \\$HOME\nEOF\n",
            tags=("s",),
        )
        image = await env.store.manager.get("s")
        files = env.files(image)
        assert files["/bin/tool"] == b"tool"
        assert files["/etc/EOF"] == b" x\n" and files["/etc/RAW"] == b"$HOME y\n"
        assert files["/etc/home"] == b'"/root" $HOME\n'
        history = await env.history(result.image_id)
        assert history[0] == "/bin/sh -c #(nop)  LABEL a=b"
        assert len(image.layers) == 3
        with pytest.raises(FailedPrecondition, match="FROM scratch and adds no files"):
            await env.build("FROM scratch\nLABEL a=b\n")
        (env.context / "f").write_text("f")
        await env.build("FROM base:1\nCOPY --chown=app:staff --chmod=600 f /home/app/f\n", tags=("o",))
        (layer,) = env.store.manager.layer_dirs(await env.store.manager.get("o"))[:1]
        st = os.stat(Path(layer, "home/app/f"))
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 50, 0o600)
        # A symlinked directory of the image is followed inside it: /usr/sbin -> bin.
        await env.build("FROM base:1\nCOPY f /usr/sbin/\n", tags=("l",))
        assert env.files(await env.store.manager.get("l"))["/usr/bin/f"] == b"f"


async def test_add_extracts_local_archives_and_refuses_urls(tmp_path: Path) -> None:
    async with builder_env(tmp_path) as env:
        (env.context / "a.tar.gz").write_bytes(build_tar(dir_("d"), reg("d/x", b"x"), compress=True))
        result = await env.build("FROM base:1\nADD a.tar.gz /opt/\n", tags=("a",))
        assert env.files(await env.store.manager.get(result.image_id))["/opt/d/x"] == b"x"
        with pytest.raises(InvalidArgument, match="fetching URLs is not supported"):
            await env.build("FROM base:1\nADD https://example.com/x /x\n")


@pytest.mark.parametrize(
    "setup, dockerfile, message",
    [
        (lambda c: os.symlink("/etc/passwd", c / "link"), "COPY link /x", "forbidden path outside the build context"),
        (lambda c: os.symlink("../../etc", c / "up"), "COPY up/passwd /x", "forbidden path outside the build context"),
        (lambda c: None, "COPY ../secret /x", "forbidden path outside the build context"),
        (lambda c: None, "COPY /etc/passwd /x", "file not found in build context"),
        (lambda c: None, "COPY nothing* /x/", "matches nothing"),
        (lambda c: (c / "t.tar").write_bytes(build_tar(reg("../../evil", b"x"))), "ADD t.tar /x/", "climbs out of the destination"),
        (lambda c: (c / "t.tar").write_bytes(build_tar(sym("l", "/etc"), reg("l/passwd", b"x"))), "ADD t.tar /x/", "goes through the symlink"),
        (lambda c: [(c / n).write_text(n) for n in "ab"], "COPY a b /one", "must be a directory and end with a /"),
        (lambda c: (c / "a").write_text("a"), "COPY a /etc/passwd/x", "/etc/passwd is not a directory in the image"),
    ],
)
async def test_hostile_contexts(tmp_path: Path, setup: Callable[[Path], object], dockerfile: str, message: str) -> None:
    async with builder_env(tmp_path) as env:
        setup(env.context)
        with pytest.raises(PalletError) as info:
            await env.build("FROM base:1\n" + dockerfile + "\n", tags=("bad",))
        assert message in info.value.message
        assert info.value.message.startswith("Dockerfile:2: ")
        with pytest.raises(NotFound):
            await env.store.manager.get("bad")


async def test_onbuild_triggers_run_in_the_child(tmp_path: Path) -> None:
    async with builder_env(tmp_path) as env:
        await env.build("FROM base:1\nONBUILD RUN child-trigger\n", tags=("parent",))
        result = await env.build("FROM parent\nRUN own\n", tags=("child",))
        assert [s.argv[-1] for s in env.runner.ran] == ["child-trigger", "own"]
        assert (await env.store.manager.get(result.image_id)).config.on_build == ()


async def test_dockerfile_errors(tmp_path: Path) -> None:
    async with builder_env(tmp_path) as env:
        with pytest.raises(InvalidArgument, match="dockerfile parse error on line 2: unknown instruction: FORM"):
            await env.build("# c\nFORM base:1\n")
        with pytest.raises(NotFound, match="Cannot locate specified Dockerfile: other"):
            await env.builder.build(env.context, BuildOptions(dockerfile="other"), lambda p: None)
        with pytest.raises(NotFound, match="image nope:1 is not here and could not be pulled"):
            await env.build("FROM nope:1\n")


async def test_a_prune_during_a_build_leaves_the_steps_it_stands_on(tmp_path: Path) -> None:
    async with builder_env(tmp_path) as env:
        env.runner.meanwhile = lambda: env.store.manager.prune(all=True)
        result = await env.build("FROM base:1\nENV A=1\nRUN one\nLABEL b=2\nRUN two\n", tags=("kept",))
        assert (await env.store.manager.get("kept")).id == result.image_id
        env.runner.meanwhile = None
        assert (await env.build("FROM base:1\nENV A=1\nRUN one\nLABEL b=2\nRUN two\n")).cached_steps == 4


async def test_buildkit_platform_args(tmp_path: Path) -> None:
    async with builder_env(tmp_path) as env:
        await env.build("FROM --platform=$BUILDPLATFORM base:1\nARG TARGETARCH\nRUN build-for-$TARGETARCH\n")
        (spec,) = env.runner.ran
        arch = oci.host_architecture()
        assert spec.argv[-1] == "build-for-$TARGETARCH" and f"TARGETARCH={arch}" in spec.env
        assert not any("not consumed" in t for t in env.texts(StepState.INFO))


async def test_rmi_takes_the_untagged_chain_it_was_built_on(tmp_path: Path) -> None:
    async with builder_env(tmp_path) as env:
        shared = "FROM base:1\nENV A=1\nRUN one\n"
        first = await env.build(shared + "LABEL x=1\n", tags=("one",))
        second = await env.build(shared + "LABEL x=2\n", tags=("two",))
        before = {i.id for i in await env.store.manager.list(all=True)}
        result = await env.store.manager.remove("one")
        # Only its own step goes: the ENV and RUN images are the other image's too.
        assert result.deleted == (first.image_id,)
        result = await env.store.manager.remove("two")
        assert result.deleted[0] == second.image_id and len(result.deleted) == 3
        left = {i.id for i in await env.store.manager.list(all=True)}
        assert left == {(await env.store.manager.get("base:1")).id}
        assert before - left == {first.image_id, *result.deleted}
