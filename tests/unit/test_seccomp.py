"""Seccomp profiles: Docker's JSON parsed and judged, compiled by libseccomp, and the
compiled filter doing what the profile says (installed in a forked child with
no_new_privs, which needs no root)."""

from __future__ import annotations

import ctypes
import errno
import json
import os
from typing import Any

import pytest

from pallet.daemon.containers.security import DEFAULT_CAPABILITIES
from pallet.daemon.seccomp.compile import Programs, default_profile_text
from pallet.daemon.seccomp.profile import ACTIONS, parse, rules_for
from pallet.shim.syscalls import PR_SET_NO_NEW_PRIVS, LibcSyscalls
from pallet.v1.errors import InvalidArgument

CLONE_NEWUSER = 0x10000000
DEFAULT_CAPS = frozenset(DEFAULT_CAPABILITIES)


def _profile(**changes: Any) -> str:
    raw: dict[str, Any] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}
    raw.update(changes)
    return json.dumps(raw)


def _in_filtered_child(program: bytes, call: str) -> int:
    """The errno `call` gets in a child under the filter (0: it succeeded)."""
    pid = os.fork()
    if pid == 0:
        code = 100
        try:
            sys = LibcSyscalls()
            sys.prctl(PR_SET_NO_NEW_PRIVS, 1)
            sys.seccomp_filter(program)
            libc = ctypes.CDLL(None, use_errno=True)
            if call == "unshare":
                rc = libc.unshare(CLONE_NEWUSER)
            elif call == "mkdir":
                rc = libc.mkdir(b"/proc/no-such-dir/x", 0o755)
            else:
                rc = libc.getpid()
            code = 0 if rc >= 0 else ctypes.get_errno()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_pallets_default_profile_is_dockers_format_and_compiles() -> None:
    profile = parse(default_profile_text())
    assert profile.default_action == ACTIONS["SCMP_ACT_ERRNO"] | errno.EPERM
    raw = Programs().program("", DEFAULT_CAPS)
    assert raw and len(raw) % 8 == 0 and len(raw) // 8 <= 4096


def test_the_default_profile_blocks_unshare_without_cap_sys_admin_only() -> None:
    programs = Programs()
    assert _in_filtered_child(programs.program("", DEFAULT_CAPS), "unshare") == errno.EPERM
    assert _in_filtered_child(programs.program("", DEFAULT_CAPS), "getpid") == 0
    with_admin = programs.program("", DEFAULT_CAPS | {"CAP_SYS_ADMIN"})
    # Allowed by the filter now: whatever the kernel says, it is not the filter's EPERM
    # (a user namespace needs no capability, so it is made).
    assert _in_filtered_child(with_admin, "unshare") == 0


def test_a_custom_profile_with_an_errno() -> None:
    text = _profile(syscalls=[{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}])
    program = Programs().program(text, DEFAULT_CAPS)
    assert _in_filtered_child(program, "mkdir") == errno.EACCES
    assert _in_filtered_child(program, "unshare") == 0


def test_programs_are_compiled_once_per_profile_and_capabilities() -> None:
    programs = Programs()
    assert programs.cached("", DEFAULT_CAPS) is None
    first = programs.program("", DEFAULT_CAPS)
    assert programs.cached("", DEFAULT_CAPS) is first
    assert programs.program("", DEFAULT_CAPS) is first
    assert programs.program("", DEFAULT_CAPS | {"CAP_SYS_ADMIN"}) != first


@pytest.mark.parametrize(
    "text, message",
    [
        ("{nope", "not JSON"),
        ("[]", "must be a JSON object"),
        ('{"syscalls": []}', "defaultAction is missing"),
        (_profile(defaultAction="SCMP_ACT_FROB"), "unknown action 'SCMP_ACT_FROB'"),
        (_profile(syscalls=[{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]), "unknown action"),
        (_profile(syscalls=[{"names": [], "action": "SCMP_ACT_ERRNO"}]), "names must list"),
        (_profile(syscalls=[{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]),
         "errnoRet must be"),
        (_profile(syscalls=[{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                             "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]), "index must be 0 to 5"),
        (_profile(syscalls=[{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]), "unknown op"),
        (_profile(syscalls="read"), "syscalls must be a list"),
        (_profile(syscalls=[{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                             "includes": {"minKernel": "four"}}]), "not a kernel version"),
    ],
)
def test_a_bad_profile_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid seccomp profile") as raised:
        Programs().check(text)
    assert message in raised.value.message


def test_an_unknown_system_call_is_refused_in_a_users_profile() -> None:
    text = _profile(syscalls=[{"names": ["read", "no_such_call"], "action": "SCMP_ACT_ERRNO"}])
    with pytest.raises(InvalidArgument, match="unknown system call 'no_such_call'"):
        Programs().check(text)
    with pytest.raises(InvalidArgument, match="unknown system call 'no_such_call'"):
        Programs().program(text, DEFAULT_CAPS)


def test_unknown_keys_are_ignored_as_go_does() -> None:
    Programs().check(_profile(comment="mine", listenerPath="", syscalls=[
        {"names": ["read"], "action": "SCMP_ACT_ALLOW", "comment": "x"}]))


def test_includes_and_excludes_pick_rules_as_docker_does() -> None:
    profile = parse(_profile(defaultAction="SCMP_ACT_ERRNO", syscalls=[
        {"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["b"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["c"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
        {"names": ["d"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}},
        {"names": ["e"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
    ]))
    pick = lambda caps, arch: [r.names[0] for r in rules_for(profile, frozenset(caps), arch, (6, 1))]  # noqa: E731
    assert pick(set(), "amd64") == ["b", "e"]
    assert pick({"CAP_SYS_ADMIN"}, "amd64") == ["a", "e"]
    assert pick(set(), "arm64") == ["b", "c", "e"]
