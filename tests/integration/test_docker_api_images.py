"""Docker's image endpoints on `<run-root>/docker.sock`: the real docker CLI and docker-py
list, inspect, tag, remove, prune, save, load, import, commit, build, pull and push (against
a real registry), and raw HTTP's bad input (malformed references, unknown images, hostile
archives) gets dockerd's statuses with nothing half-made."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from docker_http import request
from registry_harness import PASSWORD, USER, Registry, start_registry

pytestmark = pytest.mark.integration
# The registries these tests start listen on the host's loopback.
PALLETD_ON_HOST_LOOPBACK = True
# The docker CLI's classic builder (POST /build).
CLASSIC = {"DOCKER_BUILDKIT": "0"}


@pytest.fixture
def image(palletd: Any) -> str:
    """The id of busybox:latest, which the fixture imported."""
    return str(palletd.base_image_id)


def _tar(files: dict[str, bytes | str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            raw = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


def _ids(palletd: Any) -> set[str]:
    return {i.id for i in palletd.images()}


def _lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


# --------------------------------------------------------------------------- reading


def test_docker_images_lists_filters_and_formats(palletd: Any, image: str) -> None:
    palletd.docker_ok("tag", "busybox", "localhost:5000/team/app:v1")
    out = palletd.docker_ok("images")
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["REPOSITORY", "TAG", "IMAGE"]
    repos = {tuple(r.split()[:2]) for r in rows}
    assert {("busybox", "latest"), ("localhost:5000/team/app", "v1")} <= repos
    short = image.removeprefix("sha256:")[:12]
    assert palletd.docker_ok("images", "-q").split() == [short, short]
    assert palletd.docker_ok("images", "-q", "--no-trunc").split()[0] == image
    refs = palletd.docker_ok("images", "--filter", "reference=localhost:5000/*/*",
                             "--format", "{{.Repository}}:{{.Tag}}").split()
    assert refs == ["localhost:5000/team/app:v1"]
    assert palletd.docker_ok("images", "--filter", "dangling=true", "-q") == ""
    digests = palletd.docker_ok("images", "--digests", "--format", "{{.Repository}} {{.Digest}}")
    assert "busybox <none>" in digests
    as_json = json.loads(palletd.docker_ok("images", "--format", "{{json .}}").splitlines()[0])
    assert as_json["ID"] == short and as_json["Size"].endswith("MB")
    bad = palletd.docker("images", "--filter", "nonsense=1")
    assert bad.returncode != 0 and "nonsense" in bad.stderr


def test_image_summary_json_and_its_old_version(palletd: Any, image: str) -> None:
    sock = palletd.docker_socket
    (summary,) = request(sock, "GET", "/v1.47/images/json").json()
    assert summary["Id"] == image and summary["RepoTags"] == ["busybox:latest"]
    assert isinstance(summary["Created"], int) and summary["Created"] > 1_000_000_000
    assert summary["Size"] > 0 and summary["SharedSize"] == -1 and summary["Containers"] == -1
    assert summary["ParentId"] == "" and "VirtualSize" not in summary
    (old,) = request(sock, "GET", "/v1.41/images/json").json()
    assert old["VirtualSize"] == old["Size"]
    assert request(sock, "GET", "/images/json?filters=%7Bbad").status == 400


def test_inspect_and_history(palletd: Any, image: str) -> None:
    palletd.docker_ok("tag", "busybox", "localhost:5000/a/b:c")
    doc = json.loads(palletd.docker_ok("image", "inspect", "localhost:5000/a/b:c"))[0]
    assert doc["Id"] == image and doc["Config"]["Cmd"] == ["sh"]
    assert sorted(doc["RepoTags"]) == ["busybox:latest", "localhost:5000/a/b:c"]
    assert doc["RootFS"]["Type"] == "layers" and doc["Os"] == "linux"
    assert palletd.docker_ok("image", "inspect", "--format", "{{.Id}}", image[7:19]).strip() == image
    missing = palletd.docker("image", "inspect", "nothing:here")
    assert missing.returncode != 0 and "No such image: nothing:here" in missing.stderr
    history = palletd.docker_ok("history", "--no-trunc", "--format", "{{.ID}} {{.Size}}", "busybox")
    assert history.splitlines()[0].startswith(image)
    raw = request(palletd.docker_socket, "GET", "/images/busybox/history").json()
    assert raw[0]["Id"] == image and raw[0]["Tags"] and isinstance(raw[0]["Created"], int)


def test_unknown_and_malformed_names_over_raw_http(palletd: Any) -> None:
    sock = palletd.docker_socket
    for method, path in (("GET", "/images/nope/json"), ("GET", "/images/nope/history"),
                         ("DELETE", "/images/nope"), ("POST", "/images/nope/tag?repo=x"),
                         ("GET", "/images/nope/get")):
        reply = request(sock, method, path)
        assert (reply.status, reply.message) == (404, "No such image: nope:latest"), path
    bad = request(sock, "POST", "/images/busybox/tag?repo=UPPER/Case")
    assert bad.status == 400 and "UPPER/Case" in bad.message
    assert request(sock, "POST", "/images/busybox/tag").status == 400
    assert request(sock, "GET", "/images/Bad%20Name/json").status == 400
    assert request(sock, "DELETE", "/images/busybox?force=maybe").status == 400


def test_docker_search_is_a_clear_error(palletd: Any) -> None:
    result = palletd.docker("search", "busybox")
    assert result.returncode != 0
    assert "no image index to search" in result.stderr


# --------------------------------------------------------------------------- names


def test_tag_rmi_and_prune(palletd: Any, image: str, tmp_path: Path) -> None:
    palletd.docker_ok("tag", image, "one:1")
    palletd.docker_ok("tag", "one:1", "two")
    out = palletd.docker_ok("rmi", "one:1")
    assert out.strip() == "Untagged: one:1"
    assert {"busybox:latest", "two:latest"} <= {t for i in palletd.images() for t in i.repo_tags}
    # An id naming several tags is refused unless forced (dockerd's 409).
    refused = palletd.docker("rmi", image[7:19])
    assert refused.returncode != 0 and "must be forced" in refused.stderr
    palletd.docker_ok("rmi", "two")
    # An untagged image: pruned by `image prune` (dangling), and only it.
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(_tar({"hello.txt": "hi"}))
    imported = palletd.import_image(rootfs, "")
    out = palletd.docker_ok("image", "prune", "-f")
    assert f"deleted: {imported}" in out and "Total reclaimed space" in out
    assert imported not in _ids(palletd) and image in _ids(palletd)
    palletd.docker_ok("tag", image, "kept:1")
    pruned = request(palletd.docker_socket, "POST", "/images/prune?filters=" + quote(
        json.dumps({"dangling": ["false"], "label": ["x=y"]})))
    assert pruned.status == 200 and pruned.json() == {"ImagesDeleted": None, "SpaceReclaimed": 0}


def test_docker_py_images(palletd: Any, image: str) -> None:
    client = palletd.docker_client()
    try:
        found = client.images.get("busybox")
        assert found.id == image and "busybox:latest" in found.tags
        assert found.tag("py/tagged", "v2") is True
        assert {t for i in client.images.list() for t in i.tags} >= {"busybox:latest", "py/tagged:v2"}
        assert client.images.list(name="py/tagged")[0].id == image
        assert found.history()[0]["Id"] == image
        client.images.remove("py/tagged:v2")
        assert "py/tagged:v2" not in client.images.get(image).tags
        assert client.images.prune()["SpaceReclaimed"] == 0
        import docker.errors

        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get("nothing:here")
    finally:
        client.close()


# --------------------------------------------------------------------------- archives


def test_save_and_load_round_trip(palletd: Any, image: str, tmp_path: Path) -> None:
    palletd.docker_ok("tag", image, "saved:v1")
    archive = tmp_path / "saved.tar"
    palletd.docker_ok("save", "-o", str(archive), "saved:v1")
    with tarfile.open(archive) as tar:
        assert "manifest.json" in tar.getnames()
    palletd.docker_ok("rmi", "saved:v1")
    out = palletd.docker_ok("load", "-i", str(archive))
    assert out.strip() == "Loaded image: saved:v1"
    assert palletd.docker_ok("image", "inspect", "--format", "{{.Id}}", "saved:v1").strip() == image
    # Several at once through GET /images/get?names=...
    reply = request(palletd.docker_socket, "GET", "/images/get?names=saved:v1&names=busybox")
    assert reply.status == 200 and reply.headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(reply.body)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert sorted(t for m in manifest for t in m["RepoTags"]) == ["busybox:latest", "saved:v1"]
    assert request(palletd.docker_socket, "GET", "/images/get").status == 400


def test_docker_py_save_and_load(palletd: Any, image: str) -> None:
    client = palletd.docker_client()
    try:
        palletd.docker_ok("tag", image, "pysave:1")
        data = b"".join(client.images.get("pysave:1").save(named="pysave:1"))
        client.images.remove("pysave:1")
        (loaded,) = client.images.load(data)
        assert loaded.id == image and "pysave:1" in loaded.tags
    finally:
        client.close()


def test_hostile_and_broken_archives_load_nothing(palletd: Any) -> None:
    sock = palletd.docker_socket
    before = _ids(palletd)
    escape = io.BytesIO()
    with tarfile.open(fileobj=escape, mode="w") as tar:
        info = tarfile.TarInfo("../../etc/evil")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    for body in (b"not a tar at all" * 100, escape.getvalue(), b""):
        reply = request(sock, "POST", "/images/load", body,
                        headers={"Content-Type": "application/x-tar"})
        assert reply.status == 400, (body[:20], reply.body)
        assert reply.message
    result = palletd.docker("load", input=b"garbage")
    assert result.returncode != 0
    assert _ids(palletd) == before


# --------------------------------------------------------------------------- import, commit


def test_docker_import_from_a_file_and_stdin(palletd: Any, tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(_tar({"etc/motd": "imported\n"}))
    out = palletd.docker_ok("import", "-c", "CMD [\"/bin/true\"]", "-m", "from a file",
                            str(rootfs), "imported:v1")
    image_id = out.strip()
    assert image_id.startswith("sha256:")
    doc = json.loads(palletd.docker_ok("image", "inspect", "imported:v1"))[0]
    assert doc["Id"] == image_id and doc["Config"]["Cmd"] == ["/bin/true"]
    assert doc["Comment"] == "from a file"
    again = palletd.docker("import", "-", "imported:v2", input=rootfs.read_bytes())
    assert again.returncode == 0 and again.stdout.strip().startswith(b"sha256:")
    url = request(palletd.docker_socket, "POST", "/images/create?fromSrc=http://example.com/x.tar")
    assert url.status == 400 and "does not fetch URLs" in url.message
    before = _ids(palletd)
    broken = request(palletd.docker_socket, "POST", "/images/create?fromSrc=-&repo=broken",
                     b"\x1f\x8b not really gzip")
    assert broken.status == 400 and _ids(palletd) == before
    bad_ref = request(palletd.docker_socket, "POST", "/images/create?fromSrc=-&repo=Bad:Ref:x",
                      rootfs.read_bytes())
    assert bad_ref.status == 400 and "Bad:Ref:x" in bad_ref.message and _ids(palletd) == before


def test_docker_commit_and_docker_py_commit(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "--name", "tocommit", "busybox", "sh", "-c", "echo made > /made")
    out = palletd.docker_ok("commit", "-c", "ENV FROM_COMMIT=1", "-m", "a message",
                            "-a", "Someone <s@example.com>", "tocommit", "committed:v1")
    image_id = out.strip()
    doc = json.loads(palletd.docker_ok("image", "inspect", "committed:v1"))[0]
    assert doc["Id"] == image_id and "FROM_COMMIT=1" in doc["Config"]["Env"]
    assert doc["Comment"] == "a message" and doc["Author"] == "Someone <s@example.com>"
    assert palletd.cli_ok("run", "--rm", "committed:v1", "cat", "/made").strip() == "made"
    client = palletd.docker_client()
    try:
        reply = client.api.commit("tocommit", "pycommit", "v2",
                                  conf={"Cmd": ["cat", "/made"], "Labels": {"k": "v w"}})
        committed = client.images.get("pycommit:v2")
        assert committed.id == reply["Id"] and committed.labels == {"k": "v w"}
        assert palletd.cli_ok("run", "--rm", "pycommit:v2").strip() == "made"
    finally:
        client.close()
    assert request(palletd.docker_socket, "POST", "/commit?container=nope").status == 404
    assert request(palletd.docker_socket, "POST", "/commit").status == 400
    bad = request(palletd.docker_socket, "POST", "/commit?container=tocommit", {"Cmd": 5})
    assert bad.status == 400 and "Cmd" in bad.message


# --------------------------------------------------------------------------- registries


def test_docker_push_and_pull_against_a_registry(palletd: Any, image: str, registry: Registry) -> None:
    ref = f"{registry.host}/dapi/busybox:1"
    palletd.docker_ok("tag", "busybox", ref)
    out = palletd.docker_ok("push", ref)
    assert f"The push refers to repository [{registry.host}/dapi/busybox]" in out
    digest_line = [line for line in out.splitlines() if line.startswith("1: digest: sha256:")]
    assert digest_line and " size: " in digest_line[0]
    digest = digest_line[0].split()[2]
    assert registry.catalog_tags("dapi/busybox") == ["1"]
    palletd.docker_ok("rmi", ref)
    pulled = palletd.docker_ok("pull", ref)
    assert f"1: Pulling from {registry.host}/dapi/busybox" in pulled
    assert f"Digest: {digest}" in pulled
    assert f"Status: Downloaded newer image for {ref}" in pulled
    assert pulled.strip().splitlines()[-1] == ref
    again = palletd.docker_ok("pull", ref)
    assert f"Status: Image is up to date for {ref}" in again
    doc = json.loads(palletd.docker_ok("image", "inspect", ref))[0]
    assert f"{registry.host}/dapi/busybox@{digest}" in doc["RepoDigests"]
    # By digest, and a tag that is not there: the CLI exits non-zero with the registry's words.
    palletd.docker_ok("pull", f"{registry.host}/dapi/busybox@{digest}")
    missing = palletd.docker("pull", f"{registry.host}/dapi/busybox:nope")
    assert missing.returncode != 0 and "nope" in missing.stderr
    # Push of every tag of a repository (no tag given).
    palletd.docker_ok("tag", "busybox", f"{registry.host}/dapi/all:a")
    palletd.docker_ok("tag", "busybox", f"{registry.host}/dapi/all:b")
    reply = request(palletd.docker_socket, "POST", f"/images/{registry.host}/dapi/all/push",
                    headers={"X-Registry-Auth": "e30="})
    assert reply.status == 200
    auxes = [m["aux"]["Tag"] for m in _lines(reply.body) if "aux" in m]
    assert auxes == ["a", "b"] and sorted(registry.catalog_tags("dapi/all")) == ["a", "b"]


def test_pull_errors_and_bad_input_over_raw_http(palletd: Any, registry: Registry) -> None:
    sock = palletd.docker_socket
    assert request(sock, "POST", "/images/create").status == 400
    every = request(sock, "POST", f"/images/create?fromImage={registry.host}/x")
    assert every.status == 400 and "every tag" in every.message
    bad = request(sock, "POST", "/images/create?fromImage=Not/Valid&tag=x")
    assert bad.status == 400 and "Not/Valid" in bad.message
    garbled = request(sock, "POST", f"/images/create?fromImage={registry.host}/x&tag=1",
                      headers={"X-Registry-Auth": "%%%not base64"})
    assert garbled.status == 400 and "X-Registry-Auth" in garbled.message
    unknown = request(sock, "POST", f"/images/create?fromImage={registry.host}/none/such&tag=1")
    if unknown.status == 200:  # the error came after the stream began: its last line
        last = _lines(unknown.body)[-1]
        assert last["error"] and last["errorDetail"]["message"] == last["error"]
    else:
        assert unknown.status in (404, 400) and unknown.message
    push_missing = request(sock, "POST", f"/images/{registry.host}/none/such/push?tag=1")
    assert push_missing.status == 404 and "No such image" in push_missing.message


def test_docker_login_then_push_and_pull_with_basic_auth(palletd: Any, image: str, tmp_path: Path) -> None:
    reg = start_registry("basic")
    try:
        ref = f"{reg.host}/private/bb:1"
        palletd.docker_ok("tag", "busybox", ref)
        denied = palletd.docker("push", ref)
        assert denied.returncode != 0 and "unauthorized" in denied.stderr.lower()
        wrong = palletd.docker("login", "-u", USER, "--password-stdin", reg.host, input="wrong\n")
        assert wrong.returncode != 0
        ok = palletd.docker("login", "-u", USER, "--password-stdin", reg.host, input=PASSWORD + "\n")
        assert ok.returncode == 0, ok.stderr
        assert "Login Succeeded" in ok.stdout
        palletd.docker_ok("push", ref)
        palletd.docker_ok("rmi", ref)
        palletd.docker_ok("pull", ref)
        # A build FROM the private image pulls it with the login's credentials (the
        # CLI's X-Registry-Config).
        palletd.docker_ok("rmi", ref)
        context = tmp_path / "ctx"
        context.mkdir()
        (context / "Dockerfile").write_text(f"FROM {ref}\nRUN echo private > /p\n")
        palletd.docker_ok("build", "-t", "from-private:1", str(context), env=CLASSIC, timeout=180)
        palletd.docker_ok("rmi", "from-private:1", ref)
        palletd.docker_ok("logout", reg.host)
        anonymous = palletd.docker("build", str(context), env=CLASSIC, timeout=180)
        assert anonymous.returncode != 0 and "could not be pulled" in anonymous.stderr
        assert palletd.docker("pull", ref).returncode != 0
        # docker-py, with the credentials per call.
        client = palletd.docker_client()
        try:
            auth = {"username": USER, "password": PASSWORD}
            pulled = client.images.pull(f"{reg.host}/private/bb", tag="1", auth_config=auth)
            assert pulled.id == image
            pulled.tag(f"{reg.host}/private/py", "2")
            lines = list(client.images.push(f"{reg.host}/private/py", tag="2", auth_config=auth,
                                            stream=True, decode=True))
            assert any("aux" in line and line["aux"]["Tag"] == "2" for line in lines), lines
            assert not any("error" in line for line in lines)
            refused = client.api.push(f"{reg.host}/private/py", tag="2",
                                      auth_config={"username": USER, "password": "bad"})
            assert "error" in refused
        finally:
            client.close()
    finally:
        reg.stop()


def test_docker_py_pull_and_push(palletd: Any, image: str, registry: Registry) -> None:
    client = palletd.docker_client()
    try:
        client.images.get("busybox").tag(f"{registry.host}/py/bb", "v1")
        out = client.images.push(f"{registry.host}/py/bb", tag="v1")
        assert "digest: sha256:" in out
        client.images.remove(f"{registry.host}/py/bb:v1")
        pulled = client.images.pull(f"{registry.host}/py/bb", tag="v1")
        assert pulled.id == image and f"{registry.host}/py/bb:v1" in pulled.tags
        import docker.errors

        with pytest.raises(docker.errors.APIError):
            client.images.pull(f"{registry.host}/py/none", tag="v1")
    finally:
        client.close()


# --------------------------------------------------------------------------- build


def _context(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (context / name).write_text(text)
    return context


def test_docker_build_with_the_classic_builder(palletd: Any, image: str, tmp_path: Path) -> None:
    context = _context(tmp_path, (
        "FROM busybox\n"
        "ENV GREETING=hello\n"
        "COPY note.txt /note.txt\n"
        "RUN echo \"built $GREETING\" > /built && echo ran-the-step\n"
        "CMD [\"cat\", \"/built\", \"/note.txt\"]\n"
    ), {"note.txt": "a note\n"})
    iid = tmp_path / "iid"
    out = palletd.docker_ok("build", "-t", "built:v1", "-t", "built:v2", "--iidfile", str(iid),
                            "--label", "made=by-test", str(context), env=CLASSIC, timeout=180)
    assert "Sending build context to Docker daemon" in out
    assert "Step 1/6 : FROM busybox" in out and "Step 5/6 : CMD" in out
    assert "ran-the-step" in out
    image_id = iid.read_text().strip()
    assert image_id.startswith("sha256:")
    assert f"Successfully built {image_id[7:19]}" in out
    assert "Successfully tagged built:v1" in out and "Successfully tagged built:v2" in out
    doc = json.loads(palletd.docker_ok("image", "inspect", "built:v1"))[0]
    assert doc["Id"] == image_id and "GREETING=hello" in doc["Config"]["Env"]
    assert doc["Config"]["Labels"] == {"made": "by-test"}
    assert palletd.cli_ok("run", "--rm", "built:v1").splitlines() == ["built hello", "a note"]
    # Again: every step from the cache; -q prints only the id.
    cached = palletd.docker_ok("build", "-t", "built:v1", str(context), env=CLASSIC, timeout=180)
    assert "Using cache" in cached
    unlabelled = palletd.docker_ok("image", "inspect", "--format", "{{.Id}}", "built:v1").strip()
    assert unlabelled != image_id  # the label was the build's last step
    quiet = palletd.docker_ok("build", "-q", str(context), env=CLASSIC, timeout=180)
    assert quiet.strip() == unlabelled


def test_a_failing_run_exits_non_zero_and_tags_nothing(palletd: Any, image: str, tmp_path: Path) -> None:
    context = _context(tmp_path, "FROM busybox\nRUN echo before-failing && exit 3\n")
    result = palletd.docker("build", "-t", "broken:v1", str(context), env=CLASSIC, timeout=180)
    assert result.returncode == 3, result.stderr
    assert "before-failing" in result.stdout
    assert "returned a non-zero code: 3" in result.stderr
    assert palletd.docker("image", "inspect", "broken:v1").returncode != 0
    bad = _context(tmp_path / "x", "FROMM busybox\n") if (tmp_path / "x").mkdir() is None else None
    assert bad is not None
    unknown = palletd.docker("build", str(bad), env=CLASSIC, timeout=60)
    assert unknown.returncode != 0 and "FROMM" in unknown.stderr


def test_build_args_target_and_a_dockerfile_by_another_name(palletd: Any, image: str, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "build.df").write_text(
        "FROM busybox AS first\nARG WHO=nobody\nRUN echo $WHO > /who\n"
        "FROM first AS second\nRUN echo second > /second\n")
    palletd.docker_ok("build", "-f", str(context / "build.df"), "--build-arg", "WHO=arg",
                      "--target", "first", "-t", "staged:first", str(context), env=CLASSIC, timeout=180)
    assert palletd.cli_ok("run", "--rm", "staged:first", "cat", "/who").strip() == "arg"
    assert palletd.cli("run", "--rm", "staged:first", "cat", "/second").returncode != 0
    # A Dockerfile on stdin (the CLI puts it into the context under a name of its own).
    out = palletd.docker_ok("build", "-t", "stdin:df", "-f", "-", str(context),
                            input="FROM busybox\nRUN echo from-stdin > /s\n", env=CLASSIC, timeout=180)
    assert "Successfully tagged stdin:df" in out


def test_docker_py_build(palletd: Any, image: str, tmp_path: Path) -> None:
    client = palletd.docker_client()
    try:
        built, logs = client.images.build(
            fileobj=io.BytesIO(b"FROM busybox\nRUN echo from-fileobj > /f\n"), tag="pyb:fileobj", rm=True)
        assert "pyb:fileobj" in built.tags
        assert any("from-fileobj" in entry.get("stream", "") for entry in logs)
        context = _context(tmp_path, "FROM busybox\nCOPY a.txt /a.txt\n", {"a.txt": "A\n"})
        built2, _ = client.images.build(path=str(context), tag="pyb:path", buildargs={"X": "1"},
                                        labels={"l": "v"}, nocache=True)
        assert built2.labels == {"l": "v"}
        # A gzip-compressed context, as docker-py sends with gzip=True.
        built3, _ = client.images.build(path=str(context), tag="pyb:gzip", gzip=True)
        assert built3.id == built2.id or "pyb:gzip" in built3.tags
        # A failing step: the stream's last message is the error (read to its end here:
        # images.build raises BuildError at it and leaves the connection unread, which
        # this suite's warnings-as-errors would report as an unclosed socket).
        messages = list(client.api.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 7\n"),
                                         tag="pyb:bad", decode=True))
        assert messages[-1]["errorDetail"]["code"] == 7
        assert "non-zero code: 7" in messages[-1]["error"]
        assert not client.images.list(name="pyb:bad")
    finally:
        client.close()


def test_hostile_contexts_and_bad_build_options(palletd: Any, image: str) -> None:
    sock = palletd.docker_socket
    before = _ids(palletd)

    def build(body: bytes, query: str = "t=hostile:1") -> Any:
        return request(sock, "POST", f"/build?{query}", body, headers={"Content-Type": "application/x-tar"})

    escape = io.BytesIO()
    with tarfile.open(fileobj=escape, mode="w") as tar:
        df = b"FROM busybox\nCOPY . /x\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(df)
        tar.addfile(info, io.BytesIO(df))
        evil = tarfile.TarInfo("../../escape")
        evil.size = 1
        tar.addfile(evil, io.BytesIO(b"x"))
    for body in (b"not a tar" * 50, escape.getvalue(), b"\x1f\x8bnot gzip at all", b""):
        reply = build(body)
        if reply.status == 200:
            last = _lines(reply.body)[-1]
            assert last.get("error"), reply.body
        else:
            assert reply.status == 400 and reply.message, reply.body
    dockerfile_only = _tar({"Dockerfile": "FROM busybox\n"})
    for query, word in (("buildargs=notjson", "buildargs"), ("labels=%5B1%5D", "labels"),
                        ("platform=linux/arm64", "platform"), ("nocache=perhaps", "nocache"),
                        ("cachefrom=%5B%22x%22%5D", "cachefrom"), ("extrahosts=a:1.2.3.4", "extrahosts"),
                        ("remote=https://example.com/x.git", "remote"), ("t=Bad:Tag:x", "Bad:Tag:x")):
        reply = build(dockerfile_only, query)
        assert reply.status == 400 and word in reply.message, (query, reply.body)
    garbled = request(sock, "POST", "/build", dockerfile_only, headers={"X-Registry-Config": "!!"})
    assert garbled.status == 400 and "X-Registry-Config" in garbled.message
    assert _ids(palletd) == before
    assert (palletd.root / "..").exists()
