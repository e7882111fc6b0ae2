"""Networks as docker users meet them at the edges: events, host names, inspect, warnings.

Every daemon here runs in a throwaway network namespace of its own (the harness's
`Palletd.netns`), as in test_networks.py; its teardown fails a test that leaks a veth,
lease, rule or namespace.
"""

from __future__ import annotations

import os
import re
import signal
import socket
from typing import Any

import pytest

pytestmark = pytest.mark.integration

# `[seq] time type action actor (k=v, k=v)`, as `pallet events --since-seq` prints them.
EVENT = re.compile(r"^\[(\d+)\] \S+ (\S+) (\S+) (\S+)(?: \((.*)\))?$")


def _events(palletd: Any, since_seq: int, *filters: str) -> list[tuple[str, str, str, dict[str, str]]]:
    """(type, action, actor, attributes) journalled after `since_seq`, in seq order."""
    args = ["events", "--since-seq", str(since_seq), "--until", "0s"]
    for f in filters:
        args += ["--filter", f]
    out = []
    for line in palletd.cli_ok(*args, timeout=30).splitlines():
        match = EVENT.match(line)
        assert match, line
        attrs = dict(kv.split("=", 1) for kv in match.group(5).split(", ")) if match.group(5) else {}
        out.append((match.group(2), match.group(3), match.group(4), attrs))
    return out


def _last_seq(palletd: Any) -> int:
    out = palletd.cli_ok("events", "--since-seq", "0", "--until", "0s", timeout=30)
    seqs = [int(m.group(1)) for m in re.finditer(r"^\[(\d+)\] ", out, re.M)]
    return max(seqs, default=0)


def _network_id(palletd: Any, name: str) -> str:
    return str(palletd.cli_ok("network", "inspect", "-f", "{{.Id}}", name).strip())


# ---- network events of endpoints attached and released ---------------------------------


def test_a_run_connects_its_endpoint_at_start_and_disconnects_it_at_its_end(palletd: Any) -> None:
    palletd.cli_ok("network", "create", "evnet")
    net = _network_id(palletd, "evnet")
    seq = _last_seq(palletd)
    palletd.cli_ok("run", "--name", "evrun", "--network", "evnet", "busybox:latest", "true")
    cid = palletd.inspect("evrun")["Id"]
    attrs = {"container": cid, "name": "evnet", "type": "bridge"}
    assert _events(palletd, seq, "type=network") == [
        ("network", "connect", net, attrs), ("network", "disconnect", net, attrs)]
    # Docker's order: the endpoint is connected before the start, released after the exit.
    order = [(t, a) for t, a, _, _ in _events(palletd, seq)]
    assert order.index(("network", "connect")) < order.index(("container", "start"))
    assert order.index(("container", "die")) < order.index(("network", "disconnect"))
    # Each run announces its own pair; the default network's endpoint too.
    seq = _last_seq(palletd)
    palletd.cli_ok("network", "connect", "bridge", "evrun")  # not running: the record's event
    palletd.cli_ok("start", "evrun")
    assert palletd.cli_ok("wait", "evrun") == "0\n"
    bridge = _network_id(palletd, "bridge")
    actions = [(a, actor) for _, a, actor, x in _events(palletd, seq, "type=network")
               if x["container"] == cid]
    assert actions == [("connect", bridge), ("connect", net), ("connect", bridge),
                       ("disconnect", net), ("disconnect", bridge)]
    palletd.cli_ok("rm", "evrun")


def test_a_live_connect_and_disconnect_announce_once(palletd: Any) -> None:
    palletd.cli_ok("network", "create", "evlive")
    net = _network_id(palletd, "evlive")
    palletd.cli_ok("run", "-d", "--name", "evmover", "busybox:latest", "sleep", "1000")
    cid = palletd.inspect("evmover")["Id"]
    seq = _last_seq(palletd)
    palletd.cli_ok("network", "connect", "evlive", "evmover")
    palletd.cli_ok("network", "disconnect", "evlive", "evmover")
    assert _events(palletd, seq, "type=network") == [
        ("network", "connect", net, {"container": cid, "name": "evlive", "type": "bridge"}),
        ("network", "disconnect", net, {"container": cid, "name": "evlive", "type": "bridge"})]
    palletd.cli_ok("rm", "-f", "evmover")


def test_an_exit_while_palletd_is_down_is_disconnected_at_boot_once(palletd: Any) -> None:
    palletd.cli_ok("network", "create", "evdown")
    net = _network_id(palletd, "evdown")
    palletd.cli_ok("run", "-d", "--name", "evgoner", "--network", "evdown", "busybox:latest", "sleep", "1000")
    palletd.cli_ok("run", "-d", "--name", "evstayer", "--network", "evdown", "busybox:latest", "sleep", "1000")
    goner = palletd.inspect("evgoner")
    seq = _last_seq(palletd)
    palletd.proc.kill()
    palletd.proc.wait(10)
    os.kill(goner["State"]["Pid"], signal.SIGKILL)
    palletd.start()
    palletd.wait_for(lambda: palletd.inspect("evgoner")["State"]["Status"] == "exited", 20,
                     what="evgoner recorded exited")
    palletd.restart()  # and again, cleanly: nothing is announced twice
    assert _events(palletd, seq, "type=network") == [
        ("network", "disconnect", net, {"container": goner["Id"], "name": "evdown", "type": "bridge"})]
    palletd.cli_ok("rm", "-f", "evstayer", "evgoner")


# ---- --network host: the host's name ----------------------------------------------------


def test_host_network_takes_the_hosts_name_unless_one_is_given(palletd: Any) -> None:
    host_name = socket.gethostname()  # palletd's UTS namespace is the test's
    out = palletd.cli_ok("run", "--name", "hostnamed", "--network", "host", "busybox:latest",
                         "sh", "-c", "hostname; echo $HOSTNAME")
    assert out == f"{host_name}\n{host_name}\n"
    assert palletd.inspect("hostnamed")["Config"]["Hostname"] == host_name
    palletd.cli_ok("rm", "hostnamed")
    given = palletd.cli_ok("run", "--rm", "--network", "host", "--hostname", "x", "busybox:latest", "hostname")
    assert given == "x\n"
    # Its UTS namespace is still its own: the host's name is untouched.
    assert socket.gethostname() == host_name
    assert palletd.cli_ok("run", "--rm", "busybox:latest", "hostname") != f"{host_name}\n"


# ---- static addresses in inspect ----------------------------------------------------------


def test_static_addresses_show_as_ipam_config(palletd: Any) -> None:
    palletd.cli_ok("network", "create", "--subnet", "10.91.0.0/24", "ipfront")
    palletd.cli_ok("network", "create", "--subnet", "10.92.0.0/24", "ipback")
    palletd.cli_ok("network", "create", "ipauto")
    palletd.cli_ok("create", "--name", "fixed", "--network", "ipfront", "--ip", "10.91.0.9",
                   "busybox:latest", "sleep", "1000")
    palletd.cli_ok("network", "connect", "--ip", "10.92.0.7", "ipback", "fixed")
    palletd.cli_ok("network", "connect", "ipauto", "fixed")

    def ipam() -> dict[str, Any]:
        nets = palletd.inspect("fixed")["NetworkSettings"]["Networks"]
        return {name: nets[name]["IPAMConfig"] for name in nets}

    want = {"ipfront": {"IPv4Address": "10.91.0.9"}, "ipback": {"IPv4Address": "10.92.0.7"},
            "ipauto": None}
    assert ipam() == want  # created, not started: what was asked for
    palletd.cli_ok("start", "fixed")
    assert ipam() == want
    nets = palletd.inspect("fixed")["NetworkSettings"]["Networks"]
    assert (nets["ipfront"]["IPAddress"], nets["ipback"]["IPAddress"]) == ("10.91.0.9", "10.92.0.7")
    palletd.cli_ok("run", "-d", "--name", "mover", "busybox:latest", "sleep", "1000")
    palletd.cli_ok("network", "connect", "--ip", "10.92.0.8", "ipback", "mover")  # live
    moved = palletd.inspect("mover")["NetworkSettings"]["Networks"]
    assert moved["ipback"]["IPAMConfig"] == {"IPv4Address": "10.92.0.8"}
    assert moved["ipback"]["IPAddress"] == "10.92.0.8" and moved["bridge"]["IPAMConfig"] is None
    palletd.cli_ok("rm", "-f", "fixed", "mover")


# ---- warnings from create ------------------------------------------------------------------


def test_ports_published_with_the_host_network_are_a_warning_on_stderr(palletd: Any) -> None:
    warning = "WARNING: Published ports are discarded when using host network mode\n"
    ran = palletd.cli("run", "--rm", "--network", "host", "-p", "8080:80", "busybox:latest", "echo", "ran")
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "ran\n", warning)
    created = palletd.cli("create", "--name", "warned", "--network", "host", "-P", "busybox:latest", "true")
    assert created.returncode == 0 and created.stderr == warning
    assert palletd.inspect("warned")["HostConfig"]["PortBindings"] == {}
    quiet = palletd.cli("create", "--name", "quiet", "-p", "80", "busybox:latest", "true")
    assert quiet.returncode == 0 and quiet.stderr == ""
    palletd.cli_ok("rm", "warned", "quiet")


# ---- published ports as the daemon parsed them ---------------------------------------------


def test_inspect_port_bindings_are_the_daemons_parse_of_the_publish_flags(palletd: Any) -> None:
    palletd.cli_ok("create", "--name", "pub", "-p", "127.0.0.1:18080:80", "-p", "18000-18010:443",
                   "-p", "53/udp", "-p", "0.0.0.0:19000-19001:90-91", "-p", "18081:80",
                   "busybox:latest", "sleep", "1000")
    want = {
        "443/tcp": [{"HostIp": "", "HostPort": "18000-18010"}],
        "53/udp": [{"HostIp": "", "HostPort": ""}],
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}, {"HostIp": "", "HostPort": "18081"}],
        "90/tcp": [{"HostIp": "", "HostPort": "19000"}],
        "91/tcp": [{"HostIp": "", "HostPort": "19001"}],
    }
    assert palletd.inspect("pub")["HostConfig"]["PortBindings"] == want
    palletd.cli_ok("start", "pub")
    assert palletd.inspect("pub")["HostConfig"]["PortBindings"] == want  # as asked, not as picked
    ports = palletd.cli_ok("ps", "--filter", "name=pub", "--format", "{{.Ports}}").strip()
    assert "127.0.0.1:18080->80/tcp" in ports and "0.0.0.0:19001->91/tcp" in ports
    # A -p the daemon cannot read is its error, named; nothing is created.
    bad = palletd.cli("create", "--name", "badpub", "-p", "80/sctp", "busybox:latest", "true")
    assert bad.returncode != 0 and "-p '80/sctp': sctp is not supported" in bad.stderr
    assert palletd.cli("inspect", "badpub").returncode != 0
    palletd.cli_ok("rm", "-f", "pub")
