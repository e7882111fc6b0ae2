"""`pallet build` end to end (issue 14): a real palletd, RUN in real containers, the
cache across builds and a kill -9, multi-stage with --target, failing RUNs, hostile
contexts."""

from __future__ import annotations

import io
import json
import re
import os
import signal
import tarfile
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

EVERY = """\
# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM ${BASE} AS base
MAINTAINER builder <b@example.com>
ARG WHO=world
ENV GREETING="hello $WHO" \\
    EMPTY=
LABEL team=core "with space"=yes
WORKDIR /app
COPY hello.txt ./
ADD pkg.tar.gz /opt/
COPY --chown=app:staff --chmod=640 dir/ /home/app/dir/
RUN echo "$GREETING from $(pwd) as $(id -u)" > greeting \\
 && cat hello.txt /opt/pkg/inside
RUN <<EOF
echo heredoc ${WHO:-nobody}
EOF
COPY <<EOT /etc/motd
motd for $WHO
EOT
USER app
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGQUIT
ONBUILD RUN echo triggered
HEALTHCHECK NONE
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/greeting /etc/motd && ls -ln /home/app/dir"]
"""


def context(tmp_path: Path, dockerfile: str, files: dict[str, bytes] | None = None) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, data in (files or {}).items():
        path = ctx / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return ctx


def tar_gz(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def build(palletd: Any, ctx: Path, *args: str, timeout: float = 120) -> Any:
    return palletd.cli("build", "--progress", "plain", *args, str(ctx), timeout=timeout)


def build_ok(palletd: Any, ctx: Path, *args: str) -> str:
    result = build(palletd, ctx, *args)
    assert result.returncode == 0, f"build failed:\n{result.stdout}\n{result.stderr}"
    return str(result.stdout)


def test_every_instruction_then_all_cached_then_a_changed_file(palletd: Any, image: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, EVERY, {
        "hello.txt": b"hello file\n",
        "pkg.tar.gz": tar_gz({"pkg/inside": b"from the archive\n"}),
        "dir/a": b"a\n",
    })
    out = build_ok(palletd, ctx, "-t", "every:1", "--label", "built=yes")
    assert "Step 1/22 : FROM ${BASE} AS base" in out
    assert "hello file\nfrom the archive\n" in out and "heredoc world\n" in out
    assert "Successfully tagged every:1" in out
    [inspect] = json.loads(palletd.cli_ok("image", "inspect", "every:1"))
    config = inspect["Config"]
    assert "GREETING=hello world" in config["Env"] and "EMPTY=" in config["Env"]
    assert config["Labels"] == {"team": "core", "with space": "yes", "built": "yes"}
    assert config["WorkingDir"] == "/app" and config["User"] == "app"
    assert set(config["ExposedPorts"]) == {"8080/tcp", "53/udp"}
    assert list(config["Volumes"]) == ["/data"] and config["StopSignal"] == "SIGQUIT"
    assert config["Entrypoint"] == ["/bin/sh", "-c"]
    assert inspect["Author"] == "builder <b@example.com>"
    run = palletd.cli_ok("run", "--rm", "every:1")
    assert run.startswith("hello world from /app as 0\nmotd for world\n")
    assert "-rw-r-----    1 1000     50" in run  # --chown=app:staff --chmod=640
    history = palletd.cli_ok("history", "--no-trunc", "every:1")
    assert "/bin/sh -c #(nop)  USER app" in history
    assert '|1 WHO=world /bin/sh -c echo "$GREETING from $(pwd)' in history
    assert "/bin/sh -c #(nop) COPY file:" in history and " in ./ " in history

    # Again: every step from the cache, the same image.
    again = build_ok(palletd, ctx, "-t", "every:1", "--label", "built=yes")
    assert again.count(" ---> Using cache") == 21
    assert json.loads(palletd.cli_ok("image", "inspect", "every:1"))[0]["Id"] == inspect["Id"]
    # prune keeps what a tagged image needs: still all cached after it.
    palletd.cli_ok("image", "prune", "-f")
    assert build_ok(palletd, ctx, "-t", "every:1", "--label", "built=yes").count(" ---> Using cache") == 21
    # A changed file: its COPY and every step after it run again, the ones before do not.
    (ctx / "dir" / "a").write_bytes(b"changed\n")
    changed = build_ok(palletd, ctx, "-t", "every:1")
    assert changed.count(" ---> Using cache") == 7
    assert "hello file\nfrom the archive\n" in changed  # the RUN after it ran again
    assert palletd.cli_ok("ps", "-aq") == ""  # no build container left
    # ONBUILD: the child runs the trigger.
    child = context(tmp_path / "child", "FROM every:1\nRUN true\n")
    assert "triggered" in build_ok(palletd, child, "-t", "child")


def test_multi_stage_target_builds_only_what_it_needs(palletd: Any, image: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, (
        "FROM busybox AS build\nRUN echo compiled > /artifact\n"
        "FROM busybox AS broken\nRUN echo never built; exit 9\n"
        "FROM busybox AS final\nCOPY --from=build /artifact /usr/local/artifact\nCMD [\"cat\", \"/usr/local/artifact\"]\n"
        "FROM final AS later\nRUN exit 1\n"
    ))
    out = build_ok(palletd, ctx, "--target", "final", "-t", "final")
    assert "never built" not in out and "Step 5/5" in out
    assert palletd.cli_ok("run", "--rm", "final") == "compiled\n"
    result = build(palletd, ctx, "--target", "nope")
    assert result.returncode == 1 and "target stage 'nope' could not be found" in result.stderr


def test_failing_run_names_the_line_and_leaves_nothing(palletd: Any, image: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo first > /f\n\nRUN echo some output; echo to stderr >&2; exit 7\n")
    result = build(palletd, ctx, "-t", "broken")
    assert result.returncode == 1
    assert "Dockerfile:4: RUN echo some output; echo to stderr >&2; exit 7" in result.stderr
    assert "returned a non-zero code: 7" in result.stderr and "to stderr" in result.stderr
    assert palletd.cli("image", "inspect", "broken").returncode == 1
    assert palletd.cli_ok("ps", "-aq") == ""
    # The step that finished is cached.
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo first > /f\n\nRUN cat /f\n")
    out = build_ok(palletd, ctx, "-t", "fixed")
    assert out.count(" ---> Using cache") == 1 and "first\n" in out


HOSTILE = [
    ("COPY link /x", lambda c: os.symlink("/etc/shadow", c / "link"), "forbidden path outside the build context"),
    ("COPY up/shadow /x", lambda c: os.symlink("../../../../../etc", c / "up"), "forbidden path outside the build context"),
    ("COPY ../outside /x", lambda c: None, "forbidden path outside the build context"),
    ("ADD evil.tar /x/", lambda c: (c / "evil.tar").write_bytes(tar_gz({"../../../etc/evil": b"x"})), "climbs out of the destination"),
    ("ADD http://example.com/file /x", lambda c: None, "fetching URLs is not supported"),
    ("FORM busybox", lambda c: None, "dockerfile parse error on line 2: unknown instruction: FORM"),
]


def test_hostile_and_wrong_contexts(palletd: Any, image: str, tmp_path: Path) -> None:
    for n, (dockerfile, make, message) in enumerate(HOSTILE):
        ctx = context(tmp_path / str(n), "FROM busybox\n" + dockerfile + "\n")
        make(ctx)
        result = build(palletd, ctx, "-t", "hostile")
        assert result.returncode == 1 and message in result.stderr, (dockerfile, result.stderr)
        if "parse error" not in message:
            assert f"Dockerfile:2: {dockerfile}: " in result.stderr
        assert palletd.cli("image", "inspect", "hostile").returncode == 1
    assert not Path("/etc/evil").exists()
    assert palletd.cli_ok("ps", "-aq") == ""


def test_kill_9_mid_run_leaves_no_container_and_keeps_finished_steps(fresh_palletd: Any, tmp_path: Path) -> None:
    palletd = fresh_palletd
    ctx = context(tmp_path, "FROM busybox\nRUN echo done > /first\nRUN echo started; sleep 120\n")
    builder = palletd.cli_popen("build", "--progress", "plain", "-t", "cut", str(ctx), text=True)
    while "started" not in (line := palletd.read_line(builder, timeout=60)):
        assert line, "the build ended before its RUN started"
    assert palletd.cli_ok("ps", "-aq").strip()  # the RUN's container
    palletd.proc.send_signal(signal.SIGKILL)
    palletd.proc.wait(10)
    builder.communicate(timeout=30)
    assert builder.returncode != 0
    palletd._close_channel()
    palletd.start()
    palletd.wait_for(lambda: palletd.cli_ok("ps", "-aq") == "", 20, what="the build container removed")
    assert palletd.cli("image", "inspect", "cut").returncode == 1
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo done > /first\nRUN cat /first\n")
    out = build_ok(palletd, ctx, "-t", "cut")
    assert out.count(" ---> Using cache") == 1 and "done\n" in out


def test_build_args_dockerignore_and_a_dockerfile_from_elsewhere(palletd: Any, image: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, "", {"keep.txt": b"kept\n", "secret.key": b"no\n", "logs/a.log": b"no\n",
                                 ".dockerignore": b"*.key\nlogs\n"})
    (ctx / "Dockerfile").unlink()
    outside = tmp_path / "build.Dockerfile"
    outside.write_text(
        "ARG BASE=nothing\nFROM ${BASE}\nARG NAME=default\nARG UNUSED_HERE\n"
        "COPY . /ctx/\nRUN echo \"name=$NAME\" && ls -a /ctx | tr '\\n' ' ' && echo && "
        "echo interfaces: $(tail -n +3 /proc/net/dev | cut -d: -f1)\n"
    )
    out = palletd.cli_ok("build", "--progress", "plain", "-f", str(outside), "--build-arg", "BASE=busybox",
                         "--build-arg", "NAME=given", "--network", "none", "-t", "args", str(ctx), timeout=120)
    assert "interfaces: lo\n" in out  # --network none: RUN had loopback only
    assert "name=given\n" in out
    listed = out.split("name=given\n", 1)[1].splitlines()[0].split()
    # .dockerignore's exclusions never arrived; the Dockerfile from elsewhere is not COPYed.
    assert sorted(listed) == [".", "..", ".dockerignore", "keep.txt"]
    history = palletd.cli_ok("history", "--no-trunc", "args")
    assert "|1 NAME=given /bin/sh -c echo" in history


def test_a_client_that_goes_away_mid_run_leaves_no_container_and_no_image(palletd: Any, image: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo started; sleep 120\n")
    client = palletd.cli_popen("build", "--progress", "plain", "-t", "gone", str(ctx), text=True)
    while "started" not in (line := palletd.read_line(client, timeout=60)):
        assert line, "the build ended before its RUN started"
    client.send_signal(signal.SIGKILL)
    client.wait(10)
    palletd.wait_for(lambda: palletd.cli_ok("ps", "-aq") == "", 30, what="the build container removed")
    assert palletd.cli("image", "inspect", "gone").returncode == 1


def test_an_image_others_were_built_on_is_not_removed_under_them(palletd: Any, image: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo one > /one\nRUN echo two > /two\nLABEL top=yes\n")
    out = build_ok(palletd, ctx, "-t", "layered:1")
    # Step 3's image: the second RUN's, with the LABEL's image built on it.
    mid = re.findall(r" ---> ([0-9a-f]{12})\n", out)[-2]
    for flags in ((), ("-f",)):
        refused = palletd.cli("rmi", *flags, mid)
        assert refused.returncode == 1, refused
        assert f"unable to delete {mid} (cannot be forced) - image has dependent child images" in refused.stderr
    assert palletd.cli_ok("image", "inspect", "--format", "{{.Id}}", mid).startswith("sha256:" + mid)
    # By a name of its own, only the name goes: the image stays for the one built on it.
    palletd.cli_ok("tag", mid, "middle:1")
    assert palletd.cli_ok("rmi", "middle:1") == "Untagged: middle:1\n"
    palletd.cli_ok("image", "inspect", mid)
    assert build_ok(palletd, ctx, "-t", "layered:1").count(" ---> Using cache") == 3
    # The top image goes with the chain under it, as before.
    removed = palletd.cli_ok("rmi", "layered:1")
    assert removed.count("Deleted: ") == 3 and "Untagged: layered:1" in removed
    assert palletd.cli("image", "inspect", mid).returncode == 1
