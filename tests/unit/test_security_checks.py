"""The daemon's judgement of a container's security options, and what the spec gets."""

from __future__ import annotations

import resource

import pytest

from pallet.daemon.containers import security
from pallet.daemon.containers.model import DeviceMapping, HostConfig, Security, Ulimit
from pallet.v1.errors import InvalidArgument


def _check(network_mode: str = "bridge", profile_check=lambda text: None, **fields: object) -> Security:  # type: ignore[no-untyped-def]
    host = HostConfig(network_mode=network_mode, security=Security(**fields))  # type: ignore[arg-type]
    return security.check(host, profile_check).security


def test_capability_names_are_kept_in_cap_form() -> None:
    sec = _check(cap_add=("net_admin", "CAP_SYS_TIME"), cap_drop=("mknod", "all"))
    assert sec.cap_add == ("CAP_NET_ADMIN", "CAP_SYS_TIME")
    assert sec.cap_drop == ("CAP_MKNOD", "ALL")


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"cap_add": ("NET_FROB",)}, "unknown capability 'NET_FROB' in --cap-add"),
        ({"cap_drop": ("",)}, "unknown capability"),
        ({"security_opt": ("apparmor=x",)}, "does not support it"),
        ({"security_opt": ("frob",)}, "invalid --security-opt"),
        ({"security_opt": ("no-new-privileges=maybe",)}, "takes true or false"),
        ({"devices": (DeviceMapping("/dev/no-such", "/dev/x"),)}, "device node"),
        ({"devices": (DeviceMapping("/etc/passwd", "/dev/x"),)}, "not a character or block device"),
        ({"devices": (DeviceMapping("/dev/null", "/etc/x"),)}, "must be a file under /dev"),
        ({"devices": (DeviceMapping("/dev/null", "/dev/x", "rwx"),)}, "invalid permissions"),
        ({"ulimits": (Ulimit("nofrob", 1, 1),)}, "unknown ulimit 'nofrob'"),
        ({"ulimits": (Ulimit("nofile", 10, 5),)}, "soft limit is above the hard one"),
        ({"ulimits": (Ulimit("nofile", 1, 1), Ulimit("nofile", 2, 2))}, "given twice"),
        ({"sysctls": {"kernel.core_pattern": "x"}}, "not namespaced"),
        ({"sysctls": {"kernel.hostname": "x"}}, "not allowed"),
        ({"shm_size": -1}, "--shm-size"),
        ({"group_add": ("a:b",)}, "invalid --group-add"),
        ({"userns_mode": "private"}, "no user namespaces yet"),
    ],
)
def test_bad_options_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        _check(**fields)
    assert message in raised.value.message


def test_a_ulimit_above_the_hosts_hard_limit_is_refused() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard limit on nofile here")
    with pytest.raises(InvalidArgument, match="above this host's hard limit"):
        _check(ulimits=(Ulimit("nofile", 1, hard + 1),))
    assert _check(ulimits=(Ulimit("nofile", 1, hard),)).ulimits == (Ulimit("nofile", 1, hard),)


def test_net_sysctls_need_the_containers_own_network_namespace() -> None:
    assert _check(sysctls={"net.ipv4.ip_forward": "1"}).sysctls == {"net.ipv4.ip_forward": "1"}
    with pytest.raises(InvalidArgument, match="own network namespace"):
        _check("host", sysctls={"net.ipv4.ip_forward": "1"})


def test_the_profile_is_checked_unless_unconfined() -> None:
    seen: list[str] = []
    _check(profile_check=seen.append, security_opt=("seccomp={}",))
    _check(profile_check=seen.append, security_opt=("seccomp=unconfined",))
    assert seen == ["{}"]


def test_shm_size_defaults_to_dockers() -> None:
    assert _check().shm_size == 64 << 20


def test_capabilities_follow_dockers_rules() -> None:
    default = security.DEFAULT_CAPABILITIES
    assert security.capabilities(Security()) == default
    added = security.capabilities(Security(cap_add=("CAP_NET_ADMIN",), cap_drop=("CAP_KILL",)))
    assert "CAP_NET_ADMIN" in added and "CAP_KILL" not in added
    assert security.capabilities(Security(cap_drop=("ALL",), cap_add=("CAP_CHOWN",))) == ("CAP_CHOWN",)
    everything = security.capabilities(Security(cap_add=("ALL",), cap_drop=("CAP_SYS_ADMIN",)))
    assert "CAP_SYS_ADMIN" not in everything and "CAP_NET_ADMIN" in everything
    assert "CAP_SYS_ADMIN" in security.capabilities(Security(privileged=True))


def test_describe_privileged_and_unconfined() -> None:
    assert security.describe(Security()).seccomp_profile == ""
    assert security.describe(Security(security_opt=("seccomp=unconfined",))).seccomp_profile is None
    priv = security.describe(Security(privileged=True))
    assert priv.seccomp_profile is None and not priv.masked
    assert priv.device_rules == security.ALLOW_ALL_DEVICES
    assert not security.describe(Security()).no_new_privileges
    assert security.describe(Security(security_opt=("no-new-privileges",))).no_new_privileges
    assert security.describe(Security(security_opt=("no-new-privileges:true",))).no_new_privileges
