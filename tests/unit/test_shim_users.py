"""Resolving a container's user spec from the image's passwd and group text."""

from __future__ import annotations

import pytest

from pallet.v1.errors import InvalidArgument, NotFound
from pallet.shim.users import ExecUser, resolve_user

PASSWD = """root:x:0:0:root:/root:/bin/sh
# a comment line
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:app:/home/app:/bin/sh
broken line
nohome:x:1001:1001
"""
GROUP = """root:x:0:
staff:x:50:app,other
wheel:x:10:app
app:x:1000:
nohome:x:1001:
"""


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("", ExecUser(0, 0, (0,), "/root")),
        ("root", ExecUser(0, 0, (0,), "/root")),
        ("app", ExecUser(1000, 1000, (1000, 50, 10), "/home/app")),
        ("1000", ExecUser(1000, 1000, (1000, 50, 10), "/home/app")),
        ("app:staff", ExecUser(1000, 50, (50,), "/home/app")),
        ("app:4000", ExecUser(1000, 4000, (4000,), "/home/app")),
        ("4242", ExecUser(4242, 0, (0,), "/")),
        ("4242:4343", ExecUser(4242, 4343, (4343,), "/")),
        ("nohome", ExecUser(1001, 1001, (1001,), "/")),
    ],
)
def test_docker_user_forms(spec: str, expected: ExecUser) -> None:
    assert resolve_user(spec, PASSWD, GROUP) == expected


def test_unknown_user_has_dockers_message() -> None:
    with pytest.raises(NotFound) as exc:
        resolve_user("foo", PASSWD, GROUP)
    assert str(exc.value) == "unable to find user foo: no matching entries in passwd file"


def test_unknown_group_has_a_clear_message() -> None:
    with pytest.raises(NotFound, match="unable to find group nogroup: no matching entries in group file"):
        resolve_user("app:nogroup", PASSWD, GROUP)


def test_missing_files_allow_numeric_ids_only() -> None:
    assert resolve_user("5:6", None, None) == ExecUser(5, 6, (6,), "/")
    with pytest.raises(NotFound):
        resolve_user("app", None, None)


def test_out_of_range_ids_are_invalid() -> None:
    with pytest.raises(InvalidArgument, match="out of range"):
        resolve_user("99999999999", PASSWD, GROUP)
