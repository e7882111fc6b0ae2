"""The network kernel's values and messages, without root: `Attachment` checks, the
requests attach sends (as the kernel would read them), ack parsing, error mapping."""

from __future__ import annotations

import errno
import socket
import struct
from dataclasses import replace
from pathlib import Path

import pytest

from pallet.daemon.networks import netsys
from pallet.daemon.networks.attachment import (
    Attachment,
    address_request,
    check_netns_name,
    default_route_request,
    hairpin_request,
    veth_request,
)
from pallet.daemon.networks.kernel import NetKernel, kernel_error, _message
from pallet.v1.errors import AlreadyExists, FailedPrecondition, Internal, InvalidArgument

GOOD = Attachment(
    host_ifname="pl3f9a0c12de", bridge="plbr0", netns="c0ffee", ifname="eth0",
    address="172.18.0.2/16", mac="02:42:ac:12:00:02", mtu=1450, gateway="172.18.0.1",
)


@pytest.mark.parametrize(
    ("field", "value", "complaint"),
    [
        ("host_ifname", "pl3f9a0c12de0000", "host interface name"),  # 16 characters
        ("host_ifname", "pl/x", "host interface name"),
        ("host_ifname", "", "host interface name"),
        ("bridge", "br 0", "bridge name"),
        ("netns", "../etc", "network namespace name"),
        ("netns", "a/b", "network namespace name"),
        ("netns", ".", "network namespace name"),
        ("ifname", "eth0\n", "interface name"),
        ("address", "172.18.0.2", "with a prefix"),
        ("address", "no", "not an IPv4 address"),
        ("address", "172.18.0.0/16", "host address"),
        ("address", "172.18.255.255/16", "host address"),
        ("address", "172.18.0.2/31", "host address"),
        ("address", "fe80::1/64", "IPv4"),
        ("mac", "02:42:AC:12:00:02", "MAC address"),
        ("mac", "03:42:ac:12:00:02", "multicast"),
        ("mac", "02:42:ac:12:00", "MAC address"),
        ("mtu", 67, "MTU"),
        ("mtu", 65536, "MTU"),
        ("gateway", "172.19.0.1", "not another host of 172.18.0.0/16"),
        ("gateway", "172.18.0.2", "not another host"),
        ("gateway", "gw", "not an IPv4 address"),
    ],
)
def test_a_bad_attachment_is_invalid_argument(field: str, value: object, complaint: str) -> None:
    with pytest.raises(InvalidArgument, match=complaint):
        replace(GOOD, **{field: value})


def test_good_attachments_are_accepted() -> None:
    assert replace(GOOD, gateway="").gateway == ""
    assert replace(GOOD, host_ifname="p" * 15, netns="a" * 64).netns == "a" * 64
    assert check_netns_name("0123abcd-ef_1.x") == "0123abcd-ef_1.x"


def test_netns_path_is_under_the_run_root_and_checked() -> None:
    kernel = NetKernel(Path("/run/x"))
    assert kernel.netns_path("c1") == Path("/run/x/netns/c1")
    with pytest.raises(InvalidArgument):
        kernel.netns_path("../../etc/passwd")


async def test_calls_before_start_fail_clearly() -> None:
    with pytest.raises(Internal, match="not started"):
        await NetKernel(Path("/nonexistent")).links()


def _decode(kind: str, data: bytes) -> dict[str, object]:
    """`data` as the kernel would read it, through pyroute2's decoder."""
    msg = _message(kind, {})
    msg.data = data
    msg.decode()
    return msg  # type: ignore[no-any-return]


def test_the_veth_request_makes_the_peer_inside_named_with_mac_and_mtu() -> None:
    msg = _message("ifinfmsg", veth_request(GOOD, bridge_index=7, netns_fd=42))
    msg.encode()
    got = _decode("ifinfmsg", msg.data)
    assert got["flags"] & netsys.IFF_UP and got["change"] & netsys.IFF_UP
    assert got.get_attr("IFLA_IFNAME") == "pl3f9a0c12de"  # type: ignore[attr-defined]
    assert got.get_attr("IFLA_MASTER") == 7  # type: ignore[attr-defined]
    assert got.get_attr("IFLA_MTU") == 1450  # type: ignore[attr-defined]
    linkinfo = got.get_attr("IFLA_LINKINFO")  # type: ignore[attr-defined]
    assert linkinfo.get_attr("IFLA_INFO_KIND") == "veth"
    peer = linkinfo.get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    # Not up: a veth's peer cannot open before the pair is linked (ENOTCONN).
    assert not peer["flags"] & netsys.IFF_UP
    assert peer.get_attr("IFLA_IFNAME") == "eth0"
    assert peer.get_attr("IFLA_ADDRESS") == "02:42:ac:12:00:02"
    assert peer.get_attr("IFLA_MTU") == 1450
    assert peer.get_attr("IFLA_NET_NS_FD") == 42


def test_the_hairpin_address_and_route_requests() -> None:
    raw = _message("ifinfmsg", hairpin_request(9))
    raw.encode()
    # IFLA_LINKINFO { IFLA_INFO_SLAVE_KIND "bridge", IFLA_INFO_SLAVE_DATA { MODE = 1 } }
    assert raw.data.endswith(b"bridge\x00\x00" + bytes.fromhex("0c000500050004000100000000"[:24]))
    assert _decode("ifinfmsg", raw.data)["index"] == 9

    addr = _message("ifaddrmsg", address_request(GOOD, 3))
    addr.encode()
    got = _decode("ifaddrmsg", addr.data)
    assert (got["family"], got["prefixlen"], got["index"]) == (socket.AF_INET, 16, 3)
    assert got.get_attr("IFA_LOCAL") == "172.18.0.2"  # type: ignore[attr-defined]
    assert got.get_attr("IFA_BROADCAST") == "172.18.255.255"  # type: ignore[attr-defined]

    route = _message("rtmsg", default_route_request(GOOD, 3))
    route.encode()
    got = _decode("rtmsg", route.data)
    assert (got["dst_len"], got["table"]) == (0, 254)
    assert got.get_attr("RTA_GATEWAY") == "172.18.0.1"  # type: ignore[attr-defined]
    assert got.get_attr("RTA_OIF") == 3  # type: ignore[attr-defined]


def _nlmsg(kind: int, seq: int, payload: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(payload), kind, 0, seq, 0) + payload


def test_ack_error_reads_the_answer_to_its_own_request() -> None:
    ok = _nlmsg(netsys.NLMSG_ERROR, 5, struct.pack("=i", 0) + b"\0" * 16)
    refused = _nlmsg(netsys.NLMSG_ERROR, 6, struct.pack("=i", -errno.EEXIST) + b"\0" * 16)
    assert netsys.ack_error(ok, 5) == 0
    assert netsys.ack_error(refused, 6) == errno.EEXIST
    assert netsys.ack_error(ok, 6) is None  # an answer to an earlier request
    assert netsys.ack_error(ok + refused, 6) == errno.EEXIST
    assert netsys.ack_error(_nlmsg(16, 6, b"\0" * 16), 6) is None  # not an ack
    assert netsys.ack_error(b"\x01\x00", 6) is None


def test_kernel_errors_become_pallet_errors_naming_the_action() -> None:
    exists = kernel_error("create veth plx", OSError(errno.EEXIST, "File exists"))
    assert isinstance(exists, AlreadyExists) and str(exists).startswith("create veth plx: ")
    other = kernel_error("list routes", OSError(errno.EPERM, "no"))
    assert isinstance(other, Internal) and "errno 1" in str(other)

    class NetlinkError(Exception):  # pyroute2's carries the errno as .code
        code = errno.EBUSY

    assert "errno 16" in str(kernel_error("x", NetlinkError()))
    mine = FailedPrecondition("bridge b does not exist")
    assert kernel_error("x", mine) is mine
