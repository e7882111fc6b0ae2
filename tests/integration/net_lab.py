"""A throwaway network lab for firewall tests: a "host" netns with bridges, "containers" and
an "outside" machine, all namespaces the test makes and deletes.

Owns: building the lab with `ip` (namespaces, bridges, veths, addresses, routes, the host
netns's sysctls), starting small servers in it (busybox httpd, Python TCP/UDP peers), running
clients and pallet's Firewall inside it, and deleting everything, failing on leaks.
Must not: touch the real host's namespace, links, sysctls or nftables tables; kill anything
it did not start (by pid only).

Run as a script (`python net_lab.py SUBCOMMAND ...`) it is the program the lab runs inside
its namespaces through `ip netns exec`: the servers, the clients and the firewall driver.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve()
BUSYBOX = "/bin/busybox"
#: A client that should fail gives up after this long (a dropped SYN is never answered).
CLIENT_TIMEOUT_S = 2

OUTSIDE_HOST_IP = "198.51.100.1"  # the host's non-loopback address, facing "outside"
OUTSIDE_IP = "198.51.100.2"


@dataclass
class Lab:
    """The namespaces and processes of one test; `close()` removes them all."""

    tmp: Path
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    namespaces: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def ns(self, role: str) -> str:
        return f"pfw{self.tag}-{role}"

    # ---------------------------------------------------------------- building

    def add_ns(self, role: str) -> str:
        name = self.ns(role)
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def add_bridge(self, bridge: str, gateway_cidr: str) -> None:
        host = self.ns("host")
        run("ip", "-n", host, "link", "add", bridge, "type", "bridge")
        run("ip", "-n", host, "addr", "add", gateway_cidr, "dev", bridge)
        run("ip", "-n", host, "link", "set", bridge, "up")
        # What the kernel module does for each bridge: DNAT from 127.0.0.1 into it.
        sysctl(host, f"net.ipv4.conf.{bridge}.route_localnet=1")

    def add_container(self, role: str, bridge: str, cidr: str, gateway: str) -> str:
        host, name = self.ns("host"), self.add_ns(role)
        veth = f"v{role}"
        run("ip", "-n", host, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
        run("ip", "-n", host, "link", "set", veth, "master", bridge, "up")
        # What the kernel module does for each port: a container reaching itself through a
        # published port gets its own packet back out of the port it came in on.
        run("ip", "-n", host, "link", "set", veth, "type", "bridge_slave", "hairpin", "on")
        run("ip", "-n", name, "addr", "add", cidr, "dev", "eth0")
        run("ip", "-n", name, "link", "set", "eth0", "up")
        run("ip", "-n", name, "route", "add", "default", "via", gateway)
        return name

    def add_outside(self) -> str:
        """Another machine on the host's network: it reaches the host at OUTSIDE_HOST_IP."""
        host, name = self.ns("host"), self.add_ns("outside")
        run("ip", "-n", host, "link", "add", "ext0", "type", "veth", "peer", "name", "eth0", "netns", name)
        run("ip", "-n", host, "addr", "add", f"{OUTSIDE_HOST_IP}/24", "dev", "ext0")
        run("ip", "-n", host, "link", "set", "ext0", "up")
        run("ip", "-n", name, "addr", "add", f"{OUTSIDE_IP}/24", "dev", "eth0")
        run("ip", "-n", name, "link", "set", "eth0", "up")
        # It knows where the container networks are: only the firewall keeps it out.
        run("ip", "-n", name, "route", "add", "172.16.0.0/12", "via", OUTSIDE_HOST_IP)
        return name

    # ---------------------------------------------------------------- servers

    def httpd(self, role: str, text: str) -> None:
        root = self.tmp / f"www-{role}"
        root.mkdir()
        (root / "index.html").write_text(text)
        self.spawn(role, BUSYBOX, "httpd", "-f", "-p", "80", "-h", str(root))
        deadline = time.monotonic() + 10
        while self.fetch(role, "127.0.0.1", 80) is None:
            assert time.monotonic() < deadline, f"httpd in {role} did not start"
            time.sleep(0.05)

    def peer_server(self, role: str, proto: str, port: int) -> None:
        """A server that answers every message with the address it came from."""
        proc = self.spawn(role, sys.executable, str(HERE), f"serve-{proto}", str(port), stdout=True)
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n", f"{proto} server in {role} did not start"

    def spawn(self, role: str, *argv: str, stdout: bool = False) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(role), *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc

    # ---------------------------------------------------------------- clients

    def fetch(self, role: str, addr: str, port: int | str) -> str | None:
        """GET / with busybox wget from `role`; the body, or None when it cannot connect."""
        url = f"http://{addr}:{port}/"
        # No -T: Debian's static busybox 1.35 wget crashes with it; `client` bounds the wait.
        return client(self.ns(role), BUSYBOX, "wget", "-q", "-O", "-", url)

    def ask(self, role: str, proto: str, addr: str, port: int) -> str | None:
        """One message to a peer server: the address it says the message came from."""
        out = client(self.ns(role), sys.executable, str(HERE), proto, addr, str(port))
        return out.strip() if out is not None else None

    def held_connection(self, role: str, addr: str, port: int) -> subprocess.Popen[bytes]:
        """A TCP connection kept open: each line written to its stdin is one round trip."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(role), sys.executable, str(HERE), "hold", addr, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc

    # ---------------------------------------------------------------- firewall

    def firewall(self, action: str, bridges: object = (), ports: object = ()) -> None:
        """Run Firewall.apply/remove inside the host netns (the library call palletd makes)."""
        state = json.dumps({"bridges": bridges, "ports": ports})
        run("ip", "netns", "exec", self.ns("host"), sys.executable, str(HERE), "firewall", action, state)

    def nft(self, *args: str) -> str:
        return run("ip", "netns", "exec", self.ns("host"), "nft", *args)

    # ---------------------------------------------------------------- teardown

    def close(self) -> list[str]:
        """Stop the processes, delete the namespaces; return what leaked."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], check=False)
        leaks = [name for name in netns_names() if name.startswith(f"pfw{self.tag}-")]
        leaks += [f"pid {p.pid}" for p in self.procs if p.poll() is None]
        return leaks


def run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def client(ns: str, *argv: str) -> str | None:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, "timeout", str(CLIENT_TIMEOUT_S + 1), *argv],
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT_S + 30,
    )
    return done.stdout if done.returncode == 0 else None


def sysctl(ns: str, setting: str) -> None:
    run("ip", "netns", "exec", ns, "sysctl", "-qw", setting)


def netns_names() -> list[str]:
    out = run("ip", "netns", "list")
    return [line.split()[0] for line in out.splitlines() if line.strip()]


# -------------------------------------------------------------------- inside the lab


def _serve_tcp(port: int) -> None:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(64)
    print("ready", flush=True)
    while True:
        conn, peer = srv.accept()
        # A thread, not a fork: killing the server by pid must end every connection too.
        threading.Thread(target=_answer, args=(conn, peer[0]), daemon=True).start()


def _answer(conn: socket.socket, peer: str) -> None:
    with conn, conn.makefile("rwb") as f:
        for _line in f:
            f.write(f"{peer}\n".encode())
            f.flush()


def _serve_udp(port: int) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("0.0.0.0", port))
    print("ready", flush=True)
    while True:
        _data, peer = srv.recvfrom(2048)
        srv.sendto(f"{peer[0]}\n".encode(), peer)


def _ask(proto: str, addr: str, port: int) -> int:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.settimeout(CLIENT_TIMEOUT_S)
        try:
            s.connect((addr, port))
            s.send(b"hello\n")
            reply = s.recv(2048)
        except OSError:
            return 1
    sys.stdout.write(reply.decode())
    return 0 if reply else 1


def _hold(addr: str, port: int) -> int:
    with socket.create_connection((addr, port), timeout=CLIENT_TIMEOUT_S) as s:
        s.settimeout(CLIENT_TIMEOUT_S)
        for line in sys.stdin:
            try:
                s.send(line.encode())
                reply = s.recv(2048).decode() or "closed\n"
            except OSError as exc:
                reply = f"error {exc}\n"
            sys.stdout.write(reply)
            sys.stdout.flush()
    return 0


def _firewall(action: str, state: str) -> int:
    from pallet.daemon.networks.firewall import BridgeRules, Firewall, PortRule

    spec = json.loads(state)
    fw = Firewall()
    if action == "apply":
        fw.apply([BridgeRules(**b) for b in spec["bridges"]], [PortRule(**p) for p in spec["ports"]])
    elif action == "remove":
        fw.remove()
    else:
        raise SystemExit(f"unknown firewall action {action}")
    return 0


def main(argv: list[str]) -> int:
    cmd, *args = argv
    if cmd == "serve-tcp":
        _serve_tcp(int(args[0]))
    elif cmd == "serve-udp":
        _serve_udp(int(args[0]))
    elif cmd in ("tcp", "udp"):
        return _ask(cmd, args[0], int(args[1]))
    elif cmd == "hold":
        return _hold(args[0], int(args[1]))
    elif cmd == "firewall":
        return _firewall(args[0], args[1])
    else:
        raise SystemExit(f"unknown command {cmd}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
