"""The image store as palletd uses it: import, load, lookups, tag, remove, list, events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_images_kit import (
    ArchiveImage,
    build_tar,
    chunks,
    dir_,
    docker_archive,
    files_tar,
    oci_archive,
    open_store,
    reg,
    sha,
    StoreEnv,
)

from pallet.v1.errors import FailedPrecondition, InvalidArgument, NotFound
from pallet.daemon.images.model import Image, ImageConfig
from pallet.daemon.images.oci import host_architecture

ROOTFS = build_tar(dir_("bin"), reg("bin/sh", b"#!shell", mode=0o755), reg("etc/os-release", b"ID=test\n"))


async def import_(env: StoreEnv, ref: str, data: bytes = ROOTFS, **kw: object) -> Image:
    return await env.manager.import_rootfs(chunks(data), ref, **kw)  # type: ignore[arg-type]


async def test_import_makes_a_one_layer_oci_image(tmp_path: Path) -> None:
    async with open_store(tmp_path) as env:
        image = await import_(env, "busybox", message="from a tarball")
        assert image.repo_tags == ("busybox:latest",)
        assert image.layers == (sha(ROOTFS),)
        assert image.config == ImageConfig()  # docker import leaves Cmd empty
        assert image.comment == "from a tarball"
        assert image.architecture == host_architecture() and image.os == "linux"
        assert image.size == len(b"#!shell") + len(b"ID=test\n")
        content = env.manager.content
        assert image.id == sha(content.read_verified(image.id))
        manifest = json.loads(content.read_verified(image.manifest_digest))
        assert manifest["config"]["digest"] == image.id
        assert manifest["layers"][0]["digest"] == sha(ROOTFS)  # the blob is the plain tar
        config = json.loads(content.read_verified(image.id))
        assert config["rootfs"] == {"type": "layers", "diff_ids": [sha(ROOTFS)]}
        assert config["history"][0]["comment"] == "from a tarball"
        (layer,) = env.manager.layer_dirs(image)
        assert layer == str(env.root / "layers" / sha(ROOTFS)[7:])
        assert Path(layer, "bin/sh").read_bytes() == b"#!shell"
        assert env.events.actions() == [("import", "busybox:latest")]
        assert await env.manager.get("busybox") == image
        assert (env.root / "content/tmp").exists() and not list((env.root / "content/tmp").iterdir())


async def test_import_gzip_and_changes(tmp_path: Path) -> None:
    changes = [
        'CMD ["sh", "-c", "echo hi"]',
        "ENTRYPOINT /bin/init --flag",
        "ENV A=1 B=\"two words\"",
        "ENV LEGACY value with spaces",
        "WORKDIR /srv",
        "WORKDIR app",
        "USER 1000:1000",
        'LABEL com.example.team=core "version=1.0"',
        "EXPOSE 80 53/udp 8000-8001",
        'VOLUME ["/data"]',
        "VOLUME /cache",
        "stopsignal SIGQUIT",
    ]
    async with open_store(tmp_path) as env:
        image = await import_(env, "app:1", build_tar(reg("x", b"x"), compress=True), changes=changes)
        assert image.layers == (sha(build_tar(reg("x", b"x"))),)
        assert image.config == ImageConfig(
            entrypoint=("/bin/sh", "-c", "/bin/init --flag"),
            cmd=("sh", "-c", "echo hi"),
            env=("A=1", "B=two words", "LEGACY=value with spaces"),
            working_dir="/srv/app",
            user="1000:1000",
            labels={"com.example.team": "core", "version": "1.0"},
            stop_signal="SIGQUIT",
            exposed_ports=("53/udp", "80/tcp", "8000/tcp", "8001/tcp"),
            volumes=("/cache", "/data"),
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("FROM busybox", "unknown change instruction 'FROM'"),
        ("RUN rm -rf /", "unknown change instruction 'RUN'"),
        ("EXPOSE 70000", "ports are 1-65535"),
        ("EXPOSE http", "must be PORT"),
        ("ENV =x", "must be key=value"),
        ("STOPSIGNAL SIGNOPE", "not a signal"),
        ("CMD", "CMD needs a command"),
    ],
)
async def test_bad_change_refused_before_reading(tmp_path: Path, change: str, message: str) -> None:
    read = False

    async def upload() -> AsyncIterator[bytes]:
        nonlocal read
        read = True
        yield ROOTFS

    async with open_store(tmp_path) as env:
        with pytest.raises(InvalidArgument, match=message):
            await env.manager.import_rootfs(upload(), "x", changes=[change])
        assert not read
        assert env.stored_files() == []


async def test_bad_reference_refused(tmp_path: Path) -> None:
    async with open_store(tmp_path) as env:
        with pytest.raises(InvalidArgument, match="repository name must be lowercase"):
            await import_(env, "BusyBox")
        with pytest.raises(InvalidArgument, match="not a digest"):
            await import_(env, "busybox@sha256:" + "a" * 64)
        assert env.stored_files() == []


async def test_same_layer_is_unpacked_once_and_shared(tmp_path: Path) -> None:
    async with open_store(tmp_path) as env:
        first = await import_(env, "one")
        second = await import_(env, "two", changes=["CMD sh"])
        assert first.id != second.id
        assert env.manager.layer_dirs(first) == env.manager.layer_dirs(second)
        layer_dirs = [p for p in (env.root / "layers").iterdir() if p.name != ".tmp"]
        assert len(layer_dirs) == 1
        await env.manager.remove("one")
        assert Path(env.manager.layer_dirs(second)[0], "bin/sh").exists()  # still needed
        await env.manager.remove("two")
        assert [p for p in (env.root / "layers").iterdir() if p.name != ".tmp"] == []
        assert list((env.root / "content/blobs/sha256").iterdir()) == []


async def test_lookup_by_id_prefix_and_ambiguity(tmp_path: Path) -> None:
    async with open_store(tmp_path) as env:
        images = [await import_(env, f"img{i}", changes=[f"LABEL n={i}"]) for i in range(40)]
        image = images[0]
        hex_id = image.id[7:]
        assert await env.manager.get(image.id) == image
        assert await env.manager.get(hex_id) == image
        assert await env.manager.get(hex_id[:12]) == image
        assert await env.manager.get("sha256:" + hex_id[:10]) == image
        # 40 ids over 16 first digits: some first digit is shared.
        firsts = [i.id[7] for i in images]
        shared = max(set(firsts), key=firsts.count)
        count = firsts.count(shared)
        assert count > 1
        with pytest.raises(InvalidArgument) as info:
            await env.manager.get(shared)
        assert str(info.value) == f"image id prefix '{shared}' matches {count} images: give more characters"
        with pytest.raises(NotFound) as missing:
            await env.manager.get("foo")
        assert str(missing.value) == "No such image: foo:latest"
        with pytest.raises(NotFound, match="No such image: sha256:0000"):
            await env.manager.get("sha256:0000" if not hex_id.startswith("0000") else "sha256:ffff")
        with pytest.raises(InvalidArgument):
            await env.manager.get("Not_A-Ref")


async def test_reference_wins_over_id_prefix(tmp_path: Path) -> None:
    async with open_store(tmp_path) as env:
        target = await import_(env, "plain")
        other = await import_(env, "other", changes=["CMD x"])
        prefix = other.id[7:13]
        await env.manager.tag("plain", prefix)  # a repository named like the other's id prefix
        assert (await env.manager.get(prefix)).id == target.id
        assert (await env.manager.get(other.id[7:20])).id == other.id


async def test_tag_and_untag(tmp_path: Path) -> None:
    async with open_store(tmp_path) as env:
        image = await import_(env, "busybox")
        await env.manager.tag("busybox", "registry.local:5000/tools/bb:v1")
        await env.manager.tag(image.id[7:19], "bb")
        got = await env.manager.get("registry.local:5000/tools/bb:v1")
        assert set(got.repo_tags) == {"busybox:latest", "registry.local:5000/tools/bb:v1", "bb:latest"}
        with pytest.raises(InvalidArgument, match="may not contain a digest"):
            await env.manager.tag("busybox", "bb@sha256:" + "a" * 64)
        with pytest.raises(NotFound, match="No such image: nothere:latest"):
            await env.manager.tag("nothere", "x")
        # Removing one of several names only untags, even while a container uses the image.
        env.users[image.id] = ["web"]
        result = await env.manager.remove("bb")
        assert result.untagged == ("bb:latest",) and result.deleted == ()
        assert (await env.manager.get("busybox")).id == image.id
        assert env.events.actions()[-3:] == [
            ("tag", "registry.local:5000/tools/bb:v1"),
            ("tag", "bb:latest"),
            ("untag", "bb:latest"),
        ]


async def test_tag_moves_and_leaves_a_dangling_image(tmp_path: Path) -> None:
    async with open_store(tmp_path) as env:
        old = await import_(env, "app")
        new = await import_(env, "app", changes=["CMD new"])
        assert (await env.manager.get("app")).id == new.id
        dangling = await env.manager.get(old.id)
        assert dangling.repo_tags == ()
        assert [i.id for i in await env.manager.list(filters=["dangling=true"])] == [old.id]
        assert [i.id for i in await env.manager.list(filters=["dangling=false"])] == [new.id]


async def test_remove_in_use_refused_then_forced(tmp_path: Path) -> None:
    async with open_store(tmp_path) as env:
        image = await import_(env, "busybox")
        env.users[image.id] = ["web"]
        with pytest.raises(FailedPrecondition) as info:
            await env.manager.remove("busybox")
        assert str(info.value) == (
            "image busybox:latest is in use by container web: remove the container first, "
            "or use --force"
        )
        with pytest.raises(FailedPrecondition, match="in use by container web"):
            await env.manager.remove(image.id)
        assert (await env.manager.get("busybox")).id == image.id
        layer = Path(env.manager.layer_dirs(image)[0])
        result = await env.manager.remove("busybox", force=True)
        assert result.untagged == ("busybox:latest",) and result.deleted == (image.id,)
        with pytest.raises(NotFound):
            await env.manager.get(image.id)
        assert not layer.exists()
        assert env.stored_files() == []
        assert env.events.actions()[-2:] == [("untag", "busybox:latest"), ("delete", "busybox:latest")]
        assert all(e.actor_id == image.id for e in env.events.events)


async def test_remove_by_id_with_several_repositories_needs_force(tmp_path: Path) -> None:
    async with open_store(tmp_path) as env:
        image = await import_(env, "one:a")
        await env.manager.tag("one:a", "one:b")
        await env.manager.tag("one:a", "two:latest")
        with pytest.raises(FailedPrecondition, match="referenced in multiple repositories"):
            await env.manager.remove(image.id[7:19])
        result = await env.manager.remove(image.id[7:19], force=True)
        assert sorted(result.untagged) == ["one:a", "one:b", "two:latest"]
        assert result.deleted == (image.id,)
        # Several tags of one repository need force too.
        again = await import_(env, "three:a")
        await env.manager.tag("three:a", "three:b")
        with pytest.raises(FailedPrecondition, match=r"\(three:a, three:b\)"):
            await env.manager.remove(again.id)
        # One tag does not.
        await env.manager.remove("three:b")
        assert (await env.manager.remove(again.id)).deleted == (again.id,)
        assert await env.manager.list() == []


async def test_remove_unknown(tmp_path: Path) -> None:
    async with open_store(tmp_path) as env:
        with pytest.raises(NotFound, match="No such image: ghost:latest"):
            await env.manager.remove("ghost")


def ids(images: list[Image]) -> list[str]:
    return [image.id for image in images]


async def test_list_newest_first_and_filters(tmp_path: Path) -> None:
    async with open_store(tmp_path) as env:
        a = await import_(env, "web/front:1", changes=["LABEL tier=web team=a"])
        b = await import_(env, "web/back:1", changes=["LABEL tier=api team=a"])
        c = await import_(env, "db:5", changes=["LABEL tier=db"])
        assert ids(await env.manager.list()) == [c.id, b.id, a.id]
        assert ids(await env.manager.list(filters=["reference=web/*"])) == [b.id, a.id]
        assert ids(await env.manager.list(filters=["reference=*:5"])) == [c.id]
        assert ids(await env.manager.list(filters=["reference=db"])) == [c.id]
        assert ids(await env.manager.list(filters=["label=team=a"])) == [b.id, a.id]
        assert ids(await env.manager.list(filters=["label=team=a", "label=tier=web"])) == [a.id]
        assert ids(await env.manager.list(filters=["label=tier"])) == [c.id, b.id, a.id]
        assert ids(await env.manager.list(filters=["before=db:5"])) == [b.id, a.id]
        assert ids(await env.manager.list(filters=["since=web/front:1"])) == [c.id, b.id]
        with pytest.raises(InvalidArgument, match="invalid image filter 'colour=red'"):
            await env.manager.list(filters=["colour=red"])
        with pytest.raises(InvalidArgument, match="dangling"):
            await env.manager.list(filters=["dangling=maybe"])


async def test_load_docker_archive_multi_layer(tmp_path: Path) -> None:
    base = build_tar(dir_("etc"), reg("etc/a", b"a"), reg("etc/b", b"b"))
    top = build_tar(dir_("etc"), reg("etc/c", b"c"), reg("etc/a", b"A!"))
    archive = docker_archive(
        ArchiveImage([base, top], ["app:1", "app:latest"], labels={"x": "y"}),
        ArchiveImage([base], ["base:1"], created="2020-01-01T00:00:00Z"),
    )
    async with open_store(tmp_path) as env:
        result = await env.manager.load(chunks(archive))
        assert result.references == ("app:1", "app:latest", "base:1")
        app, base_image = result.images
        assert app.layers == (sha(base), sha(top))
        assert app.config.cmd == ("sh",) and app.config.labels == {"x": "y"}
        assert app.created_ns == 1704164645 * 10**9
        assert base_image.layers == (sha(base),)
        dirs = env.manager.layer_dirs(app)
        assert dirs == [str(env.root / "layers" / sha(top)[7:]), str(env.root / "layers" / sha(base)[7:])]
        assert Path(dirs[0], "etc/a").read_bytes() == b"A!"
        assert [i.id for i in await env.manager.list()] == [app.id, base_image.id]
        assert env.events.actions() == [("load", "app:1"), ("load", "app:latest"), ("load", "base:1")]
        for image in result.images:
            env.manager.content.verify(image.id)
            env.manager.content.verify(image.manifest_digest)
        # Loading the same archive again reuses everything.
        again = await env.manager.load(chunks(archive))
        assert [i.id for i in again.images] == [app.id, base_image.id]
        assert len([p for p in (env.root / "layers").iterdir() if p.name != ".tmp"]) == 2


async def test_load_docker_archive_with_blob_paths(tmp_path: Path) -> None:
    layer = build_tar(reg("hello", b"world"))
    async with open_store(tmp_path) as env:
        result = await env.manager.load(chunks(docker_archive(ArchiveImage([layer], ["hi"]), blob_paths=True)))
        assert result.references == ("hi:latest",)


@pytest.mark.parametrize("containerd_names", [False, True])
async def test_load_oci_layout_nested_index(tmp_path: Path, containerd_names: bool) -> None:
    base = build_tar(dir_("srv"), reg("srv/one", b"1"))
    top = build_tar(reg("srv/two", b"2"))
    archive = oci_archive(
        ArchiveImage([base, top], ["registry.local/team/svc:2.0"]),
        ArchiveImage([base], []),
        containerd_names=containerd_names,
    )
    async with open_store(tmp_path) as env:
        result = await env.manager.load(chunks(archive))
        assert result.references == ("registry.local/team/svc:2.0",)
        svc, untagged = result.images
        assert svc.repo_tags == ("registry.local/team/svc:2.0",)
        assert untagged.repo_tags == ()
        assert svc.layers == (sha(base), sha(top))
        assert svc.manifest_digest  # the manifest it came with
        assert Path(env.manager.layer_dirs(svc)[0], "srv/two").read_bytes() == b"2"
        # The gzip blobs are kept as they came.
        manifest = json.loads(env.manager.content.read_verified(svc.manifest_digest))
        assert manifest["layers"][0]["mediaType"].endswith("+gzip")
        assert env.events.actions() == [("load", "registry.local/team/svc:2.0"), ("load", "")]
        # name@digest finds the image that came with that manifest.
        by_digest = await env.manager.get(f"registry.local/team/svc@{svc.manifest_digest}")
        assert by_digest.id == svc.id
        with pytest.raises(NotFound):
            await env.manager.get(f"registry.local/other@{svc.manifest_digest}")


async def test_oci_bare_tag_annotation_leaves_image_untagged(tmp_path: Path) -> None:
    bare = ArchiveImage([build_tar(reg("f"))], annotations={"org.opencontainers.image.ref.name": "1.36"})
    full = ArchiveImage(
        [build_tar(reg("g"))], annotations={"org.opencontainers.image.ref.name": "quay.io/x/y:1.36"}
    )
    async with open_store(tmp_path) as env:
        result = await env.manager.load(chunks(oci_archive(bare, full, nested=False)))
        assert [i.repo_tags for i in result.images] == [(), ("quay.io/x/y:1.36",)]
        assert result.references == ("quay.io/x/y:1.36",)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"hello.txt": b"hi"}, "neither manifest.json"),
        ({"manifest.json": b"{not json"}, "manifest.json is not valid JSON"),
        ({"manifest.json": b"[]"}, "non-empty list"),
        ({"manifest.json": b'[{"Config": "../../etc/passwd", "Layers": []}]'}, "not a path inside the archive"),
        ({"manifest.json": b'[{"Config": "c.json", "Layers": []}]'}, "has no c.json"),
        ({"oci-layout": b"{}", "index.json": b'{"manifests": []}'}, "no imageLayoutVersion"),
    ],
)
async def test_bad_archives(tmp_path: Path, files: dict[str, bytes], message: str) -> None:
    async with open_store(tmp_path) as env:
        with pytest.raises(InvalidArgument, match=message):
            await env.manager.load(chunks(files_tar(files)))
        assert env.stored_files() == []


async def test_archive_with_tampered_blobs_stores_nothing(tmp_path: Path) -> None:
    layer = build_tar(reg("f", b"honest"))
    fake_layer = build_tar(reg("f", b"HACKED"))
    archive = oci_archive(ArchiveImage([layer], ["t"]), gzip_layers=False, nested=False)
    # Same length, different bytes: the blob no longer matches the digest that names it.
    tampered = archive.replace(layer, fake_layer)
    assert tampered != archive
    async with open_store(tmp_path) as env:
        with pytest.raises(InvalidArgument, match="does not match its content|diff id"):
            await env.manager.load(chunks(tampered))
        assert env.stored_files() == []


async def test_docker_archive_layer_not_matching_config(tmp_path: Path) -> None:
    layer = build_tar(reg("f", b"honest"))
    archive = docker_archive(ArchiveImage([layer], ["t"]))
    tampered = archive.replace(layer, build_tar(reg("f", b"HACKED")))
    async with open_store(tmp_path) as env:
        with pytest.raises(InvalidArgument, match="but its image config says"):
            await env.manager.load(chunks(tampered))
        assert env.stored_files() == []


async def test_start_removes_crash_leftovers(tmp_path: Path) -> None:
    async with open_store(tmp_path) as env:
        image = await import_(env, "keep")
        db = env.db
        root = env.root
    await db.aclose()
    # What a crash could leave: temp files, a half-unpacked layer, and a blob and layer
    # that were written but never recorded.
    (root / "content/tmp/blob-1234").write_bytes(b"partial")
    (root / "layers/.tmp/unpack-1234/etc").mkdir(parents=True)
    stray_blob = root / "content/blobs/sha256" / ("ab" * 32)
    stray_blob.write_bytes(b"unrecorded")
    stray_layer = root / "layers" / ("cd" * 32)
    (stray_layer / "bin").mkdir(parents=True)
    async with open_store(tmp_path) as env:
        assert not stray_blob.exists() and not stray_layer.exists()
        assert list((root / "content/tmp").iterdir()) == []
        assert list((root / "layers/.tmp").iterdir()) == []
        kept = await env.manager.get("keep")
        assert kept == image
        assert Path(env.manager.layer_dirs(kept)[0], "bin/sh").exists()


async def test_cancelled_upload_leaves_nothing(tmp_path: Path) -> None:
    async def upload() -> AsyncIterator[bytes]:
        yield ROOTFS[:1000]
        raise ConnectionResetError("client went away")

    async with open_store(tmp_path) as env:
        with pytest.raises(ConnectionResetError):
            await env.manager.import_rootfs(upload(), "x")
        assert env.stored_files() == []



async def test_docker_archive_with_symlinked_duplicate_layer(tmp_path: Path) -> None:
    # docker save stores a layer shared by two images once and links the second path to it.
    from test_images_kit import image_config, sym

    layer = build_tar(reg("shared", b"s"))
    configs = [image_config([sha(layer)], labels={"n": str(i)}) for i in range(2)]
    members = [
        reg("aaa/layer.tar", layer),
        sym("bbb/layer.tar", "../aaa/layer.tar"),
        *(reg(f"{sha(c)[7:]}.json", c) for c in configs),
        reg(
            "manifest.json",
            json.dumps(
                [
                    {"Config": f"{sha(configs[0])[7:]}.json", "RepoTags": ["a:1"], "Layers": ["aaa/layer.tar"]},
                    {"Config": f"{sha(configs[1])[7:]}.json", "RepoTags": ["b:1"], "Layers": ["bbb/layer.tar"]},
                ]
            ).encode(),
        ),
    ]
    async with open_store(tmp_path) as env:
        result = await env.manager.load(chunks(build_tar(*members)))
        assert result.references == ("a:1", "b:1")
        first, second = result.images
        assert env.manager.layer_dirs(first) == env.manager.layer_dirs(second)
        assert first.size == second.size == 1


async def test_concurrent_imports_and_removals_share_one_layer(tmp_path: Path) -> None:
    import asyncio

    async with open_store(tmp_path) as env:
        await import_(env, "seed")
        imports = [import_(env, f"copy{i}", changes=[f"LABEL i={i}"]) for i in range(6)]
        images, _ = await asyncio.gather(asyncio.gather(*imports), env.manager.remove("seed"))
        for image in images:
            (layer,) = env.manager.layer_dirs(image)
            assert Path(layer, "bin/sh").read_bytes() == b"#!shell"
        for image in images:
            await env.manager.remove(image.id)
        assert env.stored_files() == []


async def test_change_instruction_may_be_separated_by_tabs(tmp_path: Path) -> None:
    async with open_store(tmp_path) as env:
        image = await import_(env, "tabs", changes=["WORKDIR\t/srv", "cmd\t[\"a\"]"])
        assert (image.config.working_dir, image.config.cmd) == ("/srv", ("a",))
