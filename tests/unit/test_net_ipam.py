"""IPAM: subnets from the pool, checks of what the user gives, free addresses."""

from __future__ import annotations

import ipaddress

import pytest

from pallet.daemon.networks import ipam
from pallet.v1.errors import FailedPrecondition, InvalidArgument, ResourceExhausted

N = ipaddress.IPv4Network
A = ipaddress.IPv4Address


def test_the_first_free_subnet_skips_networks_and_host_routes() -> None:
    taken = [("network bridge", N("172.17.0.0/16")), ("the host's route", N("172.18.5.0/24"))]
    assert ipam.choose_subnet(ipam.DEFAULT_POOLS, taken) == N("172.19.0.0/16")


def test_the_default_pools_stay_clear_of_test_net_1() -> None:
    for pool in ipam.DEFAULT_POOLS:
        assert not pool.base.overlaps(N("192.0.2.0/24"))


def test_an_exhausted_pool_says_what_to_do() -> None:
    pool = ipam.Pool(N("10.9.0.0/23"), 24)
    taken = [("network a", N("10.9.0.0/24")), ("network b", N("10.9.1.0/24"))]
    with pytest.raises(ResourceExhausted, match="--default-address-pool") as info:
        ipam.choose_subnet([pool], taken)
    assert "pools (10.9.0.0/23 in /24s)" in str(info.value)  # which pool is full


@pytest.mark.parametrize("text, words", [
    ("10.300.0.0/16", "CIDR"), ("10.0.0.0", "prefix length"), ("10.0.0.1/24", "host bits"),
    ("fd00::/64", "IPv4"), ("10.0.0.0/31", "too small"),
])
def test_bad_subnets(text: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        ipam.parse_subnet(text)


def test_user_subnet_overlap_gateway_and_range() -> None:
    taken = [("network web", N("10.1.0.0/16"))]
    with pytest.raises(FailedPrecondition, match="overlaps network web"):
        ipam.check_user_subnet(N("10.1.2.0/24"), "", "", taken)
    with pytest.raises(InvalidArgument, match="not a usable address"):
        ipam.check_user_subnet(N("10.2.0.0/24"), "10.2.0.255", "", taken)
    with pytest.raises(InvalidArgument, match="not inside"):
        ipam.check_user_subnet(N("10.2.0.0/24"), "", "10.3.0.0/25", taken)
    gw, rng = ipam.check_user_subnet(N("10.2.0.0/24"), "", "10.2.0.128/25", taken)
    assert gw == A("10.2.0.1") and rng == N("10.2.0.128/25")


def test_addresses_go_up_and_a_freed_one_is_not_handed_out_at_once() -> None:
    subnet, gw = N("10.5.0.0/29"), A("10.5.0.1")
    assert ipam.choose_address(subnet, gw, None, set()) == A("10.5.0.2")
    assert ipam.choose_address(subnet, gw, None, {A("10.5.0.2")}) == A("10.5.0.3")
    # .2 was freed, .3 is in use: .4 comes next, then the scan wraps to .2.
    assert ipam.choose_address(subnet, gw, None, {A("10.5.0.3")}) == A("10.5.0.4")
    full_top = {A(f"10.5.0.{i}") for i in (3, 4, 5, 6)}
    assert ipam.choose_address(subnet, gw, None, full_top) == A("10.5.0.2")
    with pytest.raises(ResourceExhausted, match="all in use"):
        ipam.choose_address(subnet, gw, None, full_top | {A("10.5.0.2")})
    with pytest.raises(ResourceExhausted, match="no free address is left on network tiny"):
        ipam.choose_address(subnet, gw, None, full_top | {A("10.5.0.2")}, "tiny")


def test_the_range_bounds_the_addresses() -> None:
    subnet, gw = N("10.6.0.0/24"), A("10.6.0.1")
    got = ipam.choose_address(subnet, gw, N("10.6.0.128/25"), set())
    assert got == A("10.6.0.128")  # a host address of the subnet, though the range starts there
    top = ipam.choose_address(subnet, gw, N("10.6.0.128/25"), {A("10.6.0.253")})
    assert top == A("10.6.0.254")  # never the broadcast


def test_static_addresses() -> None:
    subnet, gw = N("10.7.0.0/24"), A("10.7.0.1")
    assert ipam.check_static_address("10.7.0.9", subnet, gw, set(), "n") == A("10.7.0.9")
    with pytest.raises(InvalidArgument, match="not in the subnet"):
        ipam.check_static_address("10.8.0.9", subnet, gw, set(), "n")
    with pytest.raises(FailedPrecondition, match="gateway"):
        ipam.check_static_address("10.7.0.1", subnet, gw, set(), "n")
    with pytest.raises(FailedPrecondition, match="in use"):
        ipam.check_static_address("10.7.0.9", subnet, gw, {A("10.7.0.9")}, "n")
    with pytest.raises(InvalidArgument, match="IPv4 address"):
        ipam.check_static_address("nope", subnet, gw, set(), "n")


def test_macs() -> None:
    assert ipam.mac_for(A("172.17.0.2")) == "02:42:ac:11:00:02"
    assert ipam.check_mac("02-42-AC-11-00-02") == "02:42:ac:11:00:02"
    with pytest.raises(InvalidArgument, match="multicast"):
        ipam.check_mac("01:00:5e:00:00:01")
    with pytest.raises(InvalidArgument, match="six hex bytes"):
        ipam.check_mac("02:42:ac")


def test_pools_parse_docker_syntax() -> None:
    assert ipam.parse_pool("base=10.10.0.0/16,size=24") == ipam.Pool(N("10.10.0.0/16"), 24)
    with pytest.raises(InvalidArgument, match="base=CIDR"):
        ipam.parse_pool("10.10.0.0/16")
    with pytest.raises(InvalidArgument, match="size"):
        ipam.parse_pool("base=10.10.0.0/16,size=8")
