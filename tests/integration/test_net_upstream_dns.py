"""Names no container has, from inside containers: forwarded by the embedded resolver to
`--dns` servers, or to the servers of `palletd --host-resolv-conf FILE`.

Two fake upstream DNS servers (dns_helper.py `upstream --zone`) listen on addresses of
palletd's own namespace (on its loopback: a second and third loopback address), each
knowing one zone only. A container on a user network run with `--dns` gets the first
one's names and not the second's; a container on the default network without --dns gets
the upstream of the resolv.conf palletd was started with, and not the --dns one. Both
ask the resolver on their gateway (their resolv.conf says so), never the upstream
directly. (test_net_resolver.py checks forwarding at the resolver's level, from its
records file; this is the path from `run --dns` and `--host-resolv-conf` to a lookup.)
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import BASE_CHANGES, _finish, new_palletd

pytestmark = pytest.mark.integration

HELPER = str(Path(__file__).with_name("dns_helper.py"))
FLAG_UPSTREAM, FLAG_ZONE, FLAG_ANSWER = "10.252.0.53", "dnsflag.test", "198.51.100.53"
HOST_UPSTREAM, HOST_ZONE, HOST_ANSWER = "10.252.0.54", "hostconf.test", "198.51.100.54"


@pytest.fixture
def palletd_with_upstreams(
    busybox_tar: Path, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Any]:
    """A palletd whose host resolv.conf names HOST_UPSTREAM; both fake upstreams run."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"# the test's\nnameserver {HOST_UPSTREAM}\n")
    daemon = new_palletd()
    request.node.palletd_under_test = daemon
    daemon.extra_args = ["--host-resolv-conf", str(resolv)]
    try:
        for addr, zone, answer in ((FLAG_UPSTREAM, FLAG_ZONE, FLAG_ANSWER),
                                   (HOST_UPSTREAM, HOST_ZONE, HOST_ANSWER)):
            daemon.host_run("ip", "addr", "add", f"{addr}/32", "dev", "lo")
            proc = subprocess.Popen(
                [*daemon.in_netns(), sys.executable, HELPER, "upstream", addr,
                 "--zone", zone, "--answer", answer],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            )
            daemon.popens.append(proc)
            assert daemon.read_line(proc) == b'{"ready": true}\n', f"upstream {addr}"
        daemon.start()
        daemon.base_image_id = daemon.import_image(busybox_tar, "busybox:latest", BASE_CHANGES)
        yield daemon
    finally:
        _finish(daemon)


def lookup(palletd: Any, container: str, name: str, tries: int = 20) -> str:
    """busybox nslookup's output for `name` in the container ("" when it fails each time)."""
    for _ in range(tries):
        done = palletd.cli("exec", container, "timeout", "10", "nslookup", name, timeout=30)
        if done.returncode == 0 and "Address" in done.stdout.split("\n\n", 1)[-1]:
            return str(done.stdout)
        time.sleep(0.25)
    return ""


def answer_of(out: str) -> list[str]:
    """The addresses nslookup printed for the name (not the server's own line)."""
    _, _, rest = out.partition("\n\n")
    return [line.split()[-1] for line in rest.splitlines() if line.startswith("Address")]


def test_dns_flag_and_host_resolv_conf_upstreams_answer_containers(
    palletd_with_upstreams: Any,
) -> None:
    palletd = palletd_with_upstreams
    palletd.cli_ok("network", "create", "corp")
    palletd.cli_ok("run", "-d", "--name", "flagged", "--network", "corp", "--dns",
                   FLAG_UPSTREAM, "busybox:latest", "sleep", "1000")
    palletd.cli_ok("run", "-d", "--name", "plain", "busybox:latest", "sleep", "1000")
    palletd.cli_ok("run", "-d", "--name", "neighbour", "--network", "corp", "busybox:latest",
                   "sleep", "1000")

    # Each asks the resolver on its gateway, not the upstream itself.
    for name, network in (("flagged", "corp"), ("plain", "bridge")):
        gateway = palletd.inspect(name)["NetworkSettings"]["Networks"][network]["Gateway"]
        resolv = palletd.cli_ok("exec", name, "cat", "/etc/resolv.conf")
        assert f"nameserver {gateway}\n" in resolv, resolv
        assert FLAG_UPSTREAM not in resolv and HOST_UPSTREAM not in resolv, resolv

    # --dns: that upstream's names, not the host's (--dns replaces them) ...
    assert answer_of(lookup(palletd, "flagged", f"www.{FLAG_ZONE}")) == [FLAG_ANSWER]
    assert lookup(palletd, "flagged", f"www.{HOST_ZONE}", tries=2) == ""
    # ... and the network's own names still answer first.
    neighbour = palletd.inspect("neighbour")["NetworkSettings"]["Networks"]["corp"]["IPAddress"]
    assert answer_of(lookup(palletd, "flagged", "neighbour")) == [neighbour]

    # No --dns, on the default network: the upstream of palletd's --host-resolv-conf.
    assert answer_of(lookup(palletd, "plain", f"www.{HOST_ZONE}")) == [HOST_ANSWER]
    assert lookup(palletd, "plain", f"www.{FLAG_ZONE}", tries=2) == ""
    # A user network container without --dns gets it too.
    assert answer_of(lookup(palletd, "neighbour", f"www.{HOST_ZONE}")) == [HOST_ANSWER]
