"""commit's config: what it takes from the container (docker's rules) and the child image
config it writes (the base's history and layers kept, one entry and layer more)."""

from __future__ import annotations

import asyncio
import json

import pytest

from pallet.daemon.containers.commit import CommitOptions, checked_config, commit_config
from pallet.daemon.containers.model import (
    MOUNT_BIND,
    MOUNT_VOLUME,
    Config,
    Container,
    ContainerState,
    HostConfig,
    MountSpec,
)
from pallet.daemon.images import oci
from pallet.daemon.images.model import Image, ImageConfig
from pallet.v1.errors import InvalidArgument

DIFF_A = "sha256:" + "a" * 64
DIFF_B = "sha256:" + "b" * 64

IMAGE = Image(
    id="sha256:" + "1" * 64, repo_tags=("base:1",), repo_digests=(), created_ns=0, size=0,
    config=ImageConfig(cmd=("sh",), env=("PATH=/bin",), volumes=("/from-image",)),
    layers=(DIFF_A,),
)


def _container() -> Container:
    host = HostConfig(mounts=(
        MountSpec(MOUNT_VOLUME, "/anon", source="f" * 64, anonymous=True),
        MountSpec(MOUNT_VOLUME, "/named", source="data"),
        MountSpec(MOUNT_BIND, "/bound", source="/srv"),
    ))
    config = Config(image="base:1", cmd=("sh", "-c", "echo hi"), env=("PATH=/bin", "HOSTNAME=abc123", "K=v"),
                    working_dir="/", hostname="abc123", labels={"l": "1"})
    return Container(id="c" * 64, name="c", image_id=IMAGE.id, config=config, state=ContainerState(),
                     created_ns=0, state_dir="/nonexistent", host_config=host)


def test_the_containers_config_without_the_runtimes_host_name() -> None:
    cfg = commit_config(_container(), IMAGE)
    assert cfg.cmd == ("sh", "-c", "echo hi")
    assert cfg.env == ("PATH=/bin", "K=v")
    assert cfg.labels == {"l": "1"}
    assert cfg.working_dir == ""  # "/" was only the default
    assert cfg.stop_signal == ""  # SIGTERM was only the default
    # The image's volumes and the container's anonymous ones, not named volumes or binds.
    assert cfg.volumes == ("/from-image", "/anon")


def test_changes_apply_over_it_and_a_bad_one_is_refused() -> None:
    options = CommitOptions(changes=('CMD ["x"]', "ENV MODE=1", "LABEL team=a"))
    cfg = asyncio.run(checked_config(_container(), IMAGE, options))
    assert cfg.cmd == ("x",) and "MODE=1" in cfg.env and cfg.labels == {"l": "1", "team": "a"}
    with pytest.raises(InvalidArgument, match="unknown change instruction 'RUN'"):
        asyncio.run(checked_config(_container(), IMAGE, CommitOptions(changes=("RUN true",))))
    with pytest.raises(InvalidArgument, match="not a digest"):
        asyncio.run(checked_config(_container(), IMAGE, CommitOptions(reference="a/b@sha256:" + "0" * 64)))


def _base_config() -> bytes:
    return oci.build_config(created_ns=1, config=ImageConfig(cmd=("sh",)), diff_ids=[DIFF_A],
                            created_by="pallet import")


def test_the_child_config_keeps_the_bases_history_and_layers() -> None:
    child = json.loads(oci.build_child_config(
        _base_config(), created_ns=2_000_000_000, config=ImageConfig(cmd=("x",)), diff_id=DIFF_B,
        comment="msg", author="me", created_by="sh -c echo hi", container_id="c" * 64,
    ))
    assert child["rootfs"]["diff_ids"] == [DIFF_A, DIFF_B]
    assert [h["created_by"] for h in child["history"]] == ["pallet import", "sh -c echo hi"]
    assert child["history"][1] == {"created": "1970-01-01T00:00:02Z", "created_by": "sh -c echo hi",
                                   "author": "me", "comment": "msg"}
    assert (child["author"], child["comment"], child["container"]) == ("me", "msg", "c" * 64)
    assert child["config"] == {"Cmd": ["x"]}
    assert oci.parse_config(json.dumps(child).encode()).diff_ids == (DIFF_A, DIFF_B)


def test_no_layer_is_an_empty_history_entry() -> None:
    child = json.loads(oci.build_child_config(
        _base_config(), created_ns=2, config=ImageConfig(), diff_id="",
    ))
    assert child["rootfs"]["diff_ids"] == [DIFF_A]
    assert child["history"][-1]["empty_layer"] is True
