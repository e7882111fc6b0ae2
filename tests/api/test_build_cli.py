"""`pallet build` (the real CLI, main()) against palletd's real Build servicer, build
directories and context extraction, with a fake Dockerfile builder: what the user sees,
and what reached the builder's context directory (.dockerignore applied by the client)."""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import re
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pallet.client import buildcontext
from pallet.client.cli import main
from pallet.daemon.api.builds import BuildsServicer
from pallet.daemon.api.server import ApiServer
from pallet.daemon.builder.contextdir import BuildDirs
from pallet.daemon.builder.model import BuildOptions, BuildProgress, BuildResult, StepState
from pallet.daemon.builder.sessions import BuildSessions, Report
from pallet.daemon.config import Config
from pallet.v1.errors import FailedPrecondition

_LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[\w+ *\] ")
IMAGE_ID = "sha256:" + "4e" * 32
STEP_ID = "sha256:" + "1a2b3c4d5e6f" + "0" * 52


@dataclass
class Builder:
    steps: list[BuildProgress] = field(default_factory=list)
    error: Exception | None = None
    calls: list[tuple[BuildOptions, dict[str, str]]] = field(default_factory=list)

    async def build(self, context_dir: Path, options: BuildOptions, report: Report) -> BuildResult:
        seen: dict[str, str] = {}
        for dirpath, dirnames, filenames in os.walk(context_dir):
            for name in dirnames + filenames:
                path = Path(dirpath, name)
                rel = str(path.relative_to(context_dir))
                seen[rel] = ("-> " + os.readlink(path)) if path.is_symlink() else "dir" if path.is_dir() else path.read_text()
        self.calls.append((options, seen))
        for step in self.steps:
            report(step)
        if self.error is not None:
            raise self.error
        return BuildResult(IMAGE_ID, tuple(f"docker.io/library/{t}" if ":" in t else f"docker.io/library/{t}:latest"
                                           for t in options.tags))


@dataclass
class Daemon:
    host: str
    builder: Builder
    root: Path


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    builder = Builder()
    sock = tmp_path / "pallet.sock"
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    sessions = BuildSessions(BuildDirs(tmp_path / "root"), builder)

    async def start() -> ApiServer:
        await sessions.start()
        server = ApiServer(Config(root=tmp_path, run_root=tmp_path, hosts=(f"unix://{sock}",), shutdown_grace_s=0.1),
                           [BuildsServicer(sessions)])
        await server.start()
        return server

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield Daemon(f"unix://{sock}", builder, tmp_path / "root")
    finally:
        asyncio.run_coroutine_threadsafe(server.aclose(), loop).result(10)
        asyncio.run_coroutine_threadsafe(sessions.aclose(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(daemon: Daemon, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    def run(*argv: str, stdin: bytes = b"") -> Result:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        capsys.readouterr()
        code = main(["-H", daemon.host, *argv])
        out, err = capsys.readouterr()
        # palletd's own log lines (structlog, printed in this process) are not the CLI's.
        out = "".join(line for line in out.splitlines(keepends=True) if not _LOG.match(line))
        return Result(code, out, err)

    return run


def no_build_dirs(root: Path) -> bool:
    """True once every build directory is gone (they are removed in the background)."""
    for _ in range(500):
        if not list((root / "builds").iterdir()):
            return True
        time.sleep(0.01)
    return False


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


STEPS = [
    BuildProgress(StepState.STARTED, 1, 3, "0", "Step 1/3 : FROM busybox"),
    BuildProgress(StepState.DONE, 1, 3, "0", image_id=STEP_ID),
    BuildProgress(StepState.STARTED, 2, 3, "0", "Step 2/3 : COPY . /app"),
    BuildProgress(StepState.CACHED, 2, 3, "0"),
    BuildProgress(StepState.DONE, 2, 3, "0", image_id=STEP_ID),
    BuildProgress(StepState.STARTED, 3, 3, "0", "Step 3/3 : RUN echo hi"),
    BuildProgress(StepState.INFO, 3, 3, "0", " ---> Running in 0123456789ab"),
    BuildProgress(StepState.OUTPUT, 3, 3, "0", data=b"hi\n", stream=1),
    BuildProgress(StepState.OUTPUT, 3, 3, "0", data=b"no newline", stream=2),
    BuildProgress(StepState.DONE, 3, 3, "0", image_id=IMAGE_ID),
]


def test_plain_progress_is_docker_classic_builders(cli: Any, daemon: Daemon, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\n", "a.txt": "a" * 2000})
    daemon.builder.steps = STEPS
    r = cli("build", "--progress", "plain", "-t", "app", "-t", "reg:5000/x:v1", str(ctx))
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        "Sending build context to Docker daemon  4.608kB",
        "Step 1/3 : FROM busybox",
        " ---> 1a2b3c4d5e6f",
        "Step 2/3 : COPY . /app",
        " ---> Using cache",
        " ---> 1a2b3c4d5e6f",
        "Step 3/3 : RUN echo hi",
        " ---> Running in 0123456789ab",
        "hi",
        "no newline",
        f" ---> {IMAGE_ID[7:19]}",
        f"Successfully built {IMAGE_ID[7:19]}",
        "Successfully tagged app:latest",
        "Successfully tagged reg:5000/x:v1",
    ]
    assert no_build_dirs(daemon.root)


def test_quiet_prints_only_the_id_and_iidfile_gets_it(cli: Any, daemon: Daemon, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\n"})
    daemon.builder.steps = STEPS
    iid = tmp_path / "iid"
    iid.write_text("old")
    for flags in (["-q"], ["--progress", "quiet"]):
        r = cli("build", *flags, "--iidfile", str(iid), str(ctx))
        assert (r.code, r.out, r.err) == (0, IMAGE_ID + "\n", "")
        assert iid.read_text() == IMAGE_ID


def test_a_failed_build_exits_1_with_the_builders_message(cli: Any, daemon: Daemon, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN false\n"})
    daemon.builder.steps = STEPS[:1] + [BuildProgress(StepState.OUTPUT, 2, 2, "0", data=b"oops\n", stream=2)]
    daemon.builder.error = FailedPrecondition("Dockerfile:2: RUN false: the command returned a non-zero code: 1")
    r = cli("build", "--progress", "plain", str(ctx))
    assert r.code == 1
    assert "oops" in r.out
    assert r.err == "Error: Dockerfile:2: RUN false: the command returned a non-zero code: 1\n"
    # -q shows what the build printed, on stderr, when it fails.
    r = cli("build", "-q", str(ctx))
    assert r.code == 1 and r.out == ""
    assert "Step 1/3 : FROM busybox" in r.err and "oops" in r.err and r.err.endswith("non-zero code: 1\n")


def test_dockerignore_is_applied_by_the_client(cli: Any, daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\n",
        ".dockerignore": "# comment\n*.log\n/build\nnode_modules\n**/secret*\ndocs\n!docs/keep.md\n.dockerignore\n",
        "app.py": "app", "debug.log": "log", "sub/trace.log": "deep log", "build/out": "built",
        "src/build/keep": "not the root's", "node_modules/x/index.js": "js", "a/b/secret.key": "key",
        "docs/keep.md": "kept", "docs/drop.md": "dropped",
    })
    opened: list[str] = []
    real_open = os.open

    def spy(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        opened.append(str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(buildcontext.os, "open", spy)
    r = cli("build", "--progress", "plain", str(ctx))
    assert r.code == 0, r.err
    (options, seen), = daemon.builder.calls
    assert options.dockerfile == "Dockerfile"
    assert seen == {
        # `*.log` is the root's only, as docker's: sub/trace.log is sent.
        "Dockerfile": "FROM busybox\n", "app.py": "app", "sub": "dir", "sub/trace.log": "deep log",
        "src": "dir", "src/build": "dir",
        "src/build/keep": "not the root's", "a": "dir", "a/b": "dir", "docs": "dir", "docs/keep.md": "kept",
    }
    # What is ignored is never opened.
    names = {os.path.relpath(p, ctx) for p in opened}
    assert names.isdisjoint({"debug.log", "build/out", "node_modules/x/index.js",
                             "a/b/secret.key", "docs/drop.md"})


def test_an_ignored_dockerfile_is_still_sent_for_the_build_only(cli: Any, daemon: Daemon, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\n", ".dockerignore": "Dockerfile\n", "x": "x"})
    assert cli("build", str(ctx)).code == 0
    (options, seen), = daemon.builder.calls
    assert options.dockerfile.startswith(".dockerfile.") and len(options.dockerfile) == len(".dockerfile.") + 20
    assert seen == {".dockerignore": "Dockerfile\n", "x": "x", options.dockerfile: "FROM busybox\n"}


def test_f_names_a_dockerfile_relative_to_the_current_directory(
    cli: Any, daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM default\n", "sub/Other.df": "FROM other\n"})
    write(tmp_path, {"outside.df": "FROM outside\n"})
    monkeypatch.chdir(tmp_path)
    assert cli("build", "-f", "ctx/sub/Other.df", "ctx").code == 0
    assert cli("build", "-f", "outside.df", "ctx").code == 0
    (inside, _), (outside, seen) = daemon.builder.calls
    assert inside.dockerfile == "sub/Other.df"
    assert outside.dockerfile.startswith(".dockerfile.") and seen[outside.dockerfile] == "FROM outside\n"
    r = cli("build", "-f", "missing.df", "ctx")
    assert r.code == 1 and 'Cannot locate Dockerfile: "' in r.err


def test_lowercase_dockerfile_is_found_when_there_is_no_Dockerfile(cli: Any, daemon: Daemon, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"dockerfile": "FROM lower\n"})
    assert cli("build", str(ctx)).code == 0
    assert daemon.builder.calls[0][0].dockerfile == "dockerfile"


def test_a_dockerfile_alone_on_stdin(cli: Any, daemon: Daemon) -> None:
    r = cli("build", "-", stdin=b"FROM busybox\nRUN true\n")
    assert r.code == 0, r.err
    (options, seen), = daemon.builder.calls
    assert (options.dockerfile, seen) == ("Dockerfile", {"Dockerfile": "FROM busybox\nRUN true\n"})
    r = cli("build", "-f", "x", "-", stdin=b"FROM busybox\n")
    assert r.code == 1 and "ambiguous Dockerfile source" in r.err


def test_a_dockerfile_from_stdin_with_a_directory_context(cli: Any, daemon: Daemon, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM on-disk\n", "f": "f"})
    assert cli("build", "-f", "-", str(ctx), stdin=b"FROM stdin\n").code == 0
    (options, seen), = daemon.builder.calls
    assert seen[options.dockerfile] == "FROM stdin\n" and seen["Dockerfile"] == "FROM on-disk\n"


@pytest.mark.parametrize("compress", [False, True])
def test_a_tar_on_stdin_is_the_context(cli: Any, daemon: Daemon, compress: bool) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("build/Dockerfile.web", b"FROM web\n"), ("a", b"A")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    data = gzip.compress(buf.getvalue()) if compress else buf.getvalue()
    r = cli("build", "-f", "build/Dockerfile.web", "-", stdin=data)
    assert r.code == 0, r.err
    (options, seen), = daemon.builder.calls
    assert options.dockerfile == "build/Dockerfile.web"
    assert seen == {"build": "dir", "build/Dockerfile.web": "FROM web\n", "a": "A"}


def test_build_args_and_labels(cli: Any, daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\n"})
    monkeypatch.setenv("FROM_ENV", "env value")
    monkeypatch.delenv("NOT_SET", raising=False)
    r = cli("build", "--build-arg", "A=1", "--build-arg", "FROM_ENV", "--build-arg", "NOT_SET",
            "--build-arg", "EMPTY=", "--label", "k=v", "--label", "bare", "--target", "t", "--no-cache",
            "--pull", "--network", "none", "--platform", "linux/amd64", str(ctx))
    assert r.code == 0, r.err
    options = daemon.builder.calls[0][0]
    assert dict(options.build_args) == {"A": "1", "FROM_ENV": "env value", "NOT_SET": None, "EMPTY": ""}
    assert dict(options.labels) == {"k": "v", "bare": ""}
    assert (options.target, options.no_cache, options.pull, options.network, options.platform) == (
        "t", True, True, "none", "linux/amd64")


def test_bad_options_and_contexts_are_clear_errors(cli: Any, daemon: Daemon, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\n"})
    for argv, message in (
        (["-t", "Bad:Tag", str(ctx)], "invalid reference format"),
        (["--build-arg", "=x", str(ctx)], "invalid --build-arg"),
        (["https://example.com/repo.git"], "remote context"),
        ([str(tmp_path / "missing")], "not found"),
        (["-f", "-", "-"], "can't use stdin for both"),
    ):
        r = cli("build", *argv)
        assert r.code == 1 and message in r.err, (argv, r.err)
    assert daemon.builder.calls == []
    assert no_build_dirs(daemon.root)
