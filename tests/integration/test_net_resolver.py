"""The embedded DNS resolver for real: its own process on real sockets, in a throwaway netns.

Owns: a network namespace per test (`ip netns add`, a veth pair whose one end holds two
"gateway" addresses, two "container" addresses and three "upstream" ones), the resolver
started through DnsSupervisor from a helper process inside it, queries from another helper
inside it, a fake upstream DNS server. Checks: local names per network, A/PTR/AAAA, the
search suffix, forwarding (UDP, TCP, truncation, the next upstream), SERVFAIL, reload on
publish (a new network, a new name, a gateway whose address comes later), a corrupt file,
surviving the parent's kill -9, adoption, restart of a dead resolver, stop, never
signalling a stranger named by a stale pid file. Must not: touch the host's namespace;
teardown kills only processes in the test's namespace (all started by the test) and fails
the test if any resolver was left running.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import pid_alive, wait_for

pytestmark = pytest.mark.integration

HELPER = str(Path(__file__).with_name("dns_helper.py"))
GW_A, CLIENT_A = "10.89.0.1", "10.89.0.2"
GW_B, CLIENT_B = "10.89.1.1", "10.89.1.2"
LATE_GW = "10.89.3.1"  # put on the interface only after the resolver serves it
UPSTREAM, SILENT, CLOSED = "10.89.9.1", "10.89.9.2", "10.89.9.3"
UPSTREAM_ANSWER = "198.51.100.7"
RESOLVER = "pallet.daemon.networks.resolver"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class Helper:
    proc: subprocess.Popen[str]

    def call(self, doc: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(doc) + "\n")
        self.proc.stdin.flush()
        return self.read(timeout)

    def read(self, timeout: float = 30.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, f"helper {self.proc.args} did not answer within {timeout}s"
        line = self.proc.stdout.readline()
        assert line, f"helper {self.proc.args} exited ({self.proc.poll()})"
        result: dict[str, Any] = json.loads(line)
        return result


@dataclass
class Netns:
    name: str
    run_root: Path
    helpers: list[Helper] = field(default_factory=list)
    _client: Helper | None = None

    def spawn(self, *args: str) -> Helper:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.name, sys.executable, HELPER, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        helper = Helper(proc)
        self.helpers.append(helper)
        return helper

    def supervisor(self) -> Helper:
        """A process driving a DnsSupervisor for this run root (upstream timeout 0.3 s)."""
        return self.spawn("supervise", str(self.run_root), "0.3")

    def query(self, name: str, rdtype: str = "A", server: str = GW_A, source: str = CLIENT_A,
              tcp: bool = False, timeout: float = 5.0) -> dict[str, Any]:
        if self._client is None:
            self._client = self.spawn("client")
        return self._client.call(
            {"name": name, "type": rdtype, "server": server, "source": source, "tcp": tcp, "timeout": timeout}
        )

    def answers(self, name: str, **kw: Any) -> list[str] | str:
        """The A answers, or the rcode / error when there are none."""
        result = self.query(name, **kw)
        return result["error"] or result["answers"] or result["rcode"]

    def pids(self) -> set[int]:
        """Live processes in this namespace."""
        ns = os.stat(f"/run/netns/{self.name}")
        found = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                st = os.stat(entry / "ns" / "net")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (ns.st_dev, ns.st_ino) and pid_alive(int(entry.name)):
                found.add(int(entry.name))
        return found

    def resolver_pids(self) -> set[int]:
        return {p for p in self.pids() if RESOLVER in _cmdline(p)}

    @property
    def pid_file(self) -> Path:
        return self.run_root / "dns" / "resolver.pid"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.fixture
def ns(tmp_path: Path) -> Iterator[Netns]:
    name = f"pallet-dns-{secrets.token_hex(4)}"
    _ip("netns", "add", name)
    netns = Netns(name, tmp_path / "run")
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        for address in (GW_A, CLIENT_A, GW_B, CLIENT_B, UPSTREAM, SILENT, CLOSED):
            _ip("-n", name, "addr", "add", f"{address}/24", "dev", "v0")
        _ip("-n", name, "link", "set", "v0", "up")
        _ip("-n", name, "link", "set", "v1", "up")
        for address, mode in ((UPSTREAM, ()), (SILENT, ("--silent",))):
            assert netns.spawn("upstream", address, *mode).read() == {"ready": True}
        yield netns
    finally:
        for helper in netns.helpers:
            if helper.proc.poll() is None:
                helper.proc.kill()
            helper.proc.wait()
            for pipe in (helper.proc.stdin, helper.proc.stdout):
                if pipe is not None:
                    pipe.close()
        leaked = {pid: _cmdline(pid) for pid in netns.pids()}
        for pid in leaked:  # in our throwaway namespace: started by this test
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not netns.pids(), what="the namespace's processes to go")
        subprocess.run(["ip", "netns", "del", name], check=True)
        assert name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        if leaked:
            pytest.fail(f"processes left in the namespace: {leaked}")


def records(*, extra_networks: list[dict[str, Any]] | None = None, **names: list[str]) -> dict[str, Any]:
    return {
        "upstreams": [UPSTREAM],
        "networks": [
            {"gateway": GW_A, "names": {"web": ["10.89.0.2"], "db": ["10.89.0.3", "10.89.0.4"],
                                        "db-alias": ["10.89.0.3"], **names}},
            *(extra_networks or []),
        ],
        "clients": [
            {"address": CLIENT_A, "upstreams": [CLOSED, UPSTREAM], "search": ["corp.internal"]},
            {"address": CLIENT_B, "upstreams": [SILENT]},
        ],
    }


NET_B = {"gateway": GW_B, "names": {"cache": ["10.89.1.2"], "web": ["10.89.1.9"]}}


def start(ns: Netns, doc: dict[str, Any]) -> tuple[Helper, int]:
    supervisor = ns.supervisor()
    pid = supervisor.call({"op": "publish", "records": doc})["pid"]
    assert pid and pid in ns.resolver_pids()
    return supervisor, pid


def stop(ns: Netns, supervisor: Helper) -> None:
    assert supervisor.call({"op": "stop"}) == {"pid": None}
    assert not ns.resolver_pids()
    assert not ns.pid_file.exists()


def test_local_names_are_answered_per_network(ns: Netns) -> None:
    supervisor, _ = start(ns, records(extra_networks=[NET_B]))
    assert ns.answers("web") == ["10.89.0.2"]
    assert ns.answers("WEB.") == ["10.89.0.2"]
    assert ns.answers("db") == ["10.89.0.3", "10.89.0.4"]
    assert ns.answers("db-alias") == ["10.89.0.3"]
    assert ns.answers("web.corp.internal") == ["10.89.0.2"]  # CLIENT_A's search domain
    result = ns.query("web")
    assert result["aa"] and result["rcode"] == "NOERROR"
    aaaa = ns.query("web", "AAAA")
    assert (aaaa["rcode"], aaaa["answers"]) == ("NOERROR", [])
    assert ns.query("3.0.89.10.in-addr.arpa", "PTR")["answers"] == ["db."]
    # The same name on network B is B's address; B's names are not A's.
    assert ns.answers("web", server=GW_B, source=CLIENT_B) == ["10.89.1.9"]
    assert ns.answers("cache", server=GW_B, source=CLIENT_B) == ["10.89.1.2"]
    assert ns.answers("cache") == "NXDOMAIN"  # forwarded from A: the upstream knows no `cache`
    assert ns.answers("web", tcp=True) == ["10.89.0.2"]
    # A real client: busybox's nslookup.
    out = subprocess.run(["ip", "netns", "exec", ns.name, "busybox", "nslookup", "db", GW_A],
                         capture_output=True, text=True, timeout=30)
    assert "10.89.0.3" in out.stdout and "10.89.0.4" in out.stdout, out
    stop(ns, supervisor)


def test_other_names_are_forwarded_to_the_clients_upstreams(ns: Netns) -> None:
    supervisor, _ = start(ns, records(extra_networks=[NET_B]))
    # CLIENT_A's first upstream has nothing on port 53 (refused): the next one answers.
    assert ns.answers("www.example") == [UPSTREAM_ANSWER]
    assert ns.answers("www.example", tcp=True) == [UPSTREAM_ANSWER]
    assert ns.answers("nosuch") == "NXDOMAIN"
    # Too big for UDP: truncated to a UDP client, whole over TCP.
    udp = ns.query("big.example")
    assert udp["tc"] and len(udp["answers"]) < 100
    assert len(ns.query("big.example", tcp=True)["answers"]) == 100
    # An address that is no listed client uses the default upstreams.
    assert ns.answers("www.example", source=GW_A) == [UPSTREAM_ANSWER]
    stop(ns, supervisor)


def test_servfail_when_no_upstream_answers(ns: Netns) -> None:
    doc = records(extra_networks=[NET_B])
    doc["clients"].append({"address": UPSTREAM, "upstreams": [GW_A, f"{GW_B}:53"]})  # only ourselves
    supervisor, _ = start(ns, doc)
    assert ns.answers("www.example", server=GW_B, source=CLIENT_B) == "SERVFAIL"  # SILENT never answers
    assert ns.answers("www.example", server=GW_B, source=CLIENT_B, tcp=True) == "SERVFAIL"
    assert ns.answers("www.example", source=UPSTREAM) == "SERVFAIL"  # no loop through our own gateways
    assert ns.answers("web") == ["10.89.0.2"]  # still answering
    stop(ns, supervisor)


def test_publish_reloads_networks_and_names(ns: Netns) -> None:
    supervisor, pid = start(ns, records())
    assert ns.answers("web", server=GW_B, source=CLIENT_B, timeout=1) in ("Timeout", "ConnectionRefusedError")
    assert ns.answers("api") == "NXDOMAIN"
    late = {"gateway": LATE_GW, "names": {"late": ["10.89.3.2"]}}
    assert supervisor.call({"op": "publish", "records": records(extra_networks=[NET_B, late], api=["10.89.0.5"])})["pid"] == pid
    wait_for(lambda: ns.answers("api") == ["10.89.0.5"], what="the new name")
    wait_for(lambda: ns.answers("cache", server=GW_B, source=CLIENT_B) == ["10.89.1.2"], what="the new network")
    # A gateway whose address comes up after the publish is served once it is there.
    _ip("-n", ns.name, "addr", "add", f"{LATE_GW}/24", "dev", "v0")
    wait_for(lambda: ns.answers("late", server=LATE_GW, source=LATE_GW) == ["10.89.3.2"], what="the late gateway")
    # A network that goes away stops being served.
    supervisor.call({"op": "publish", "records": records()})
    wait_for(lambda: ns.answers("cache", server=GW_B, source=CLIENT_B, timeout=1) != ["10.89.1.2"], what="B to go")
    assert pid in ns.resolver_pids()  # the same process all along
    stop(ns, supervisor)


def test_a_corrupt_records_file_keeps_the_last_good_records(ns: Netns) -> None:
    supervisor, pid = start(ns, records())
    records_file = ns.run_root / "dns" / "records.json"
    records_file.write_text('{"version": 1, "networks": [')
    os.kill(pid, signal.SIGHUP)
    log = ns.run_root / "dns" / "resolver.log"
    wait_for(lambda: "unusable" in log.read_text(), what="the resolver to log the bad file")
    assert ns.answers("web") == ["10.89.0.2"]
    assert pid in ns.resolver_pids()
    supervisor.call({"op": "publish", "records": records(api=["10.89.0.5"])})
    wait_for(lambda: ns.answers("api") == ["10.89.0.5"], what="good records again")
    stop(ns, supervisor)


def test_the_resolver_outlives_its_parent_is_adopted_and_restarted(ns: Netns) -> None:
    first, pid = start(ns, records())
    assert os.getsid(pid) == pid  # its own session: detached from palletd's
    first.proc.send_signal(signal.SIGKILL)  # palletd's kill -9
    first.proc.wait()
    assert ns.answers("web") == ["10.89.0.2"]
    assert ns.answers("www.example") == [UPSTREAM_ANSWER]

    second = ns.supervisor()  # the restarted palletd
    assert second.call({"op": "ensure"}) == {"pid": pid}
    assert ns.resolver_pids() == {pid}  # adopted, no second process
    second.call({"op": "publish", "records": records(api=["10.89.0.5"])})
    wait_for(lambda: ns.answers("api") == ["10.89.0.5"], what="the adopted resolver to reload")

    os.kill(pid, signal.SIGKILL)  # the resolver crashes
    wait_for(lambda: not pid_alive(pid), what="the resolver to die")
    restarted = second.call({"op": "ensure"})["pid"]
    assert restarted != pid and ns.resolver_pids() == {restarted}
    assert ns.answers("api") == ["10.89.0.5"]  # from the file, as it was
    stop(ns, second)


def test_a_stale_pid_file_naming_a_stranger_is_not_signalled(ns: Netns) -> None:
    stranger = ns.spawn("client")  # a live process that is not a resolver
    ns.pid_file.parent.mkdir(parents=True)
    ns.pid_file.write_text(f"{stranger.proc.pid}\n")
    supervisor = ns.supervisor()
    assert supervisor.call({"op": "pid"}) == {"pid": None}
    pid = supervisor.call({"op": "ensure"})["pid"]
    assert pid != stranger.proc.pid and ns.resolver_pids() == {pid}
    supervisor.call({"op": "publish", "records": records()})
    assert ns.answers("web") == ["10.89.0.2"]
    stop(ns, supervisor)
    assert stranger.proc.poll() is None  # neither SIGHUP nor SIGTERM reached it


def test_a_second_resolver_for_the_same_pid_file_refuses_to_run(ns: Netns) -> None:
    supervisor, pid = start(ns, records())
    dns_dir = ns.run_root / "dns"
    second = subprocess.run(
        ["ip", "netns", "exec", ns.name, sys.executable, "-m", RESOLVER, "--records", str(dns_dir / "records.json"),
         "--pid-file", str(ns.pid_file)],
        capture_output=True, text=True, timeout=30,
    )
    assert second.returncode == 3 and "another resolver" in second.stderr
    assert ns.resolver_pids() == {pid} and ns.pid_file.read_text().strip() == str(pid)
    stop(ns, supervisor)


def test_sigterm_removes_the_pid_file(ns: Netns) -> None:
    supervisor, pid = start(ns, records())
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not ns.pid_file.exists(), what="the pid file to go")
    wait_for(lambda: not pid_alive(pid), what="the resolver to exit")
    assert supervisor.call({"op": "pid"}) == {"pid": None}
    assert ns.answers("web", timeout=1) in ("Timeout", "ConnectionRefusedError")
