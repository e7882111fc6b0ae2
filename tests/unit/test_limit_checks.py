"""The sizes palletd accepts for labels, host names and working directories
(`pallet.daemon.limits`), as create and import apply them."""

from __future__ import annotations

import pytest

from pallet.daemon.containers.merge import effective_config
from pallet.daemon.containers.model import ConfigRequest, CreateRequest, HostConfig
from pallet.daemon.images.changes import apply_changes
from pallet.daemon.images.model import Image, ImageConfig
from pallet.daemon.limits import (
    MAX_ARGS_AND_ENV,
    MAX_CHANGES,
    MAX_HOSTNAME,
    MAX_LABEL_KEY,
    MAX_LABEL_VALUE,
    MAX_LABELS_TOTAL,
    MAX_PATH,
)
from pallet.v1.errors import InvalidArgument


def _image(labels: dict[str, str] | None = None) -> Image:
    return Image(
        id="sha256:" + "a" * 64, repo_tags=("app:1",), repo_digests=(), created_ns=0, size=0,
        config=ImageConfig(cmd=("sh",), labels=labels or {}), layers=(),
    )


def _create(image: Image | None = None, hostname: str = "box", **config: object) -> None:
    request = CreateRequest(name="", config=ConfigRequest(image="app:1", **config), host_config=HostConfig())  # type: ignore[arg-type]
    effective_config(request, image or _image(), hostname)


def test_labels_up_to_the_limits_are_taken() -> None:
    _create(labels={"k" * MAX_LABEL_KEY: "v" * MAX_LABEL_VALUE})
    per = MAX_LABEL_VALUE - 8
    count = MAX_LABELS_TOTAL // (per + 8)
    _create(labels={f"key{i:05d}": "v" * per for i in range(count)})


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"k" * (MAX_LABEL_KEY + 1): "v"}, f"is {MAX_LABEL_KEY + 1} bytes: a label key is at most 1024 bytes"),
        ({"big": "v" * (1 << 20)}, "label 'big' on the container has a value of 1048576 bytes: a label value is at most 16384 bytes (16 KiB)"),
        ({"é": "é" * (MAX_LABEL_VALUE // 2 + 1)}, f"has a value of {MAX_LABEL_VALUE + 2} bytes"),
        ({f"k{i}": "v" * 10000 for i in range(7)}, "the labels on the container come to 70014 bytes: all the labels of one object are at most 65536 bytes"),
        ({"": "v"}, "the key is empty"),
    ],
)
def test_labels_over_the_limits_are_refused_at_create(labels: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        _create(labels=labels)
    assert message in refused.value.message


def test_an_images_own_labels_do_not_count_against_the_callers() -> None:
    """A pulled image's labels are not the caller's to fix; only the request's are bounded."""
    _create(image=_image({f"k{i}": "v" * 10000 for i in range(10)}), labels={"mine": "x"})


def test_labels_over_the_limits_are_refused_at_import() -> None:
    apply_changes(ImageConfig(), ["LABEL a=" + "v" * MAX_LABEL_VALUE])
    with pytest.raises(InvalidArgument, match="label 'a' on the image has a value of 16385 bytes"):
        apply_changes(ImageConfig(), ["LABEL a=" + "v" * (MAX_LABEL_VALUE + 1)])
    many = [f"LABEL k{i}=" + "v" * 10000 for i in range(7)]
    with pytest.raises(InvalidArgument, match="the labels on the image come to"):
        apply_changes(ImageConfig(), many)


def test_a_command_and_environment_execve_would_refuse_is_refused_at_create() -> None:
    entry = "x" * 100_000  # under MAX_ARG_STRLEN: each one alone is fine
    fits = MAX_ARGS_AND_ENV // (len(entry) + 1)
    _create(cmd=(entry,) * fits)
    with pytest.raises(InvalidArgument, match=r"the command and environment of the container come to \d+ bytes: Linux runs a process with at most 2097152 bytes"):
        _create(cmd=("sh",), env=tuple(f"V{i}={entry}" for i in range(fits + 1)))
    with pytest.raises(InvalidArgument, match="the command and environment of the container"):
        _create(entrypoint=(entry,) * fits, cmd=(entry,) * 2)


def test_the_changes_of_one_import_are_bounded() -> None:
    apply_changes(ImageConfig(), ["CMD " + "x" * (MAX_CHANGES - 4)])
    with pytest.raises(InvalidArgument, match="the config changes come to 1048584 bytes: one import takes at most 1048576"):
        apply_changes(ImageConfig(), ["CMD " + "x" * (MAX_CHANGES - 4), "USER app"])


def test_hostname_and_working_dir_are_bounded_as_linux_bounds_them() -> None:
    _create(hostname="h" * MAX_HOSTNAME, working_dir="/" + "d" * (MAX_PATH - 1))
    with pytest.raises(InvalidArgument, match="invalid hostname 'hhhh.*it is 65 bytes, and Linux allows at most 64"):
        _create(hostname="h" * (MAX_HOSTNAME + 1))
    with pytest.raises(InvalidArgument, match="the working directory '/ddd.*is 4096 bytes: Linux allows paths of at most 4095"):
        _create(working_dir="/" + "d" * MAX_PATH)
