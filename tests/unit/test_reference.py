"""Image reference parsing and normalisation, as docker users type references."""

from __future__ import annotations

import pytest

from pallet.v1.errors import InvalidArgument
from pallet.daemon.images.reference import familiar, parse, parse_tagged

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "full", "short"),
    [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
        ("library/busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
        ("docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("user/app:v2", "docker.io/user/app:v2", "user/app:v2"),
        ("docker.io/library/a/b:x", "docker.io/library/a/b:x", "library/a/b:x"),
        ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
        ("localhost:5000/app:1", "localhost:5000/app:1", "localhost:5000/app:1"),
        ("host:5000/ns/name:tag", "host:5000/ns/name:tag", "host:5000/ns/name:tag"),
        ("Registry.Example.com/ns/x", "Registry.Example.com/ns/x:latest", "Registry.Example.com/ns/x:latest"),
        (f"host:5000/ns/name@{DIGEST}", f"host:5000/ns/name@{DIGEST}", f"host:5000/ns/name@{DIGEST}"),
        (f"busybox:1.36@{DIGEST}", f"docker.io/library/busybox:1.36@{DIGEST}", f"busybox:1.36@{DIGEST}"),
        ("a__b-c---d/f_g.h", "docker.io/a__b-c---d/f_g.h:latest", "a__b-c---d/f_g.h:latest"),
        ("app:V1_x.y-z", "docker.io/library/app:V1_x.y-z", "app:V1_x.y-z"),
        ("[::1]:5000/app", "[::1]:5000/app:latest", "[::1]:5000/app:latest"),
    ],
)
def test_normalises_and_shortens(text: str, full: str, short: str) -> None:
    ref = parse_tagged(text)
    assert str(ref) == full
    assert ref.familiar() == short
    assert familiar(full) == short


def test_parse_keeps_missing_tag_empty() -> None:
    ref = parse("busybox")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("docker.io", "library/busybox", "", "")
    assert parse(f"busybox@{DIGEST}").tag == ""
    assert parse_tagged(f"busybox@{DIGEST}").tag == ""  # a digest needs no default tag


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("", "empty"),
        ("BusyBox", "repository name must be lowercase"),
        ("library/BusyBox:1", "repository name must be lowercase"),
        ("busybox:", "tag must be"),
        ("busybox:.hidden", "tag must be"),
        ("busybox:" + "x" * 129, "tag must be"),
        ("busybox:a b", "tag must be"),
        ("busy--box_", "repository path components"),
        ("-busybox", "repository path components"),
        ("a//b", "repository path components"),
        ("busybox@sha256:abc", "digest must be"),
        ("busybox@md5:" + "a" * 32, "digest must be"),
        ("a" * 64, "image id"),
        ("x/" + "a" * 260, "more than 255"),
        ("bad_host:5000/x", "registry domain"),
    ],
)
def test_rejects_malformed_with_the_rule(text: str, rule: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_tagged(text)
    message = str(info.value)
    assert message.startswith("invalid reference format")
    assert rule in message
    if text:
        assert repr(text) in message
