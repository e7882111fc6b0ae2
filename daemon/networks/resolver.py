"""The embedded DNS resolver: a process of its own that answers on every network's gateway.

Owns: `python -m pallet.daemon.networks.resolver --records FILE --pid-file FILE [--log FILE]`
— reading the records file palletd writes (`pallet.daemon.networks.dns` writes it; the format
is described there and parsed here), UDP and TCP servers on port 53 of each gateway address,
answering container names from the network the query arrived on, forwarding everything else
to the asking container's upstream resolvers, reloading on SIGHUP or when the file changes,
its pid file. Must not: import anything but the standard library and dnspython (it starts on
every palletd boot and lives beside every container: small and fast), nor anything of
pallet's daemon; stop answering because palletd is gone, or because the file is bad.

Why a process of its own (as podman's aardvark-dns) and not a resolver inside palletd (as
Docker's, served on 127.0.0.11 in each container from dockerd): name resolution must keep
working while palletd is down (kill -9, upgrade, restart). palletd starts it detached in its
own session, feeds it through a file, and re-adopts it from its pid file after a restart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import signal
import socket
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

log = logging.getLogger("pallet.resolver")

PORT = 53
#: Version of the records file this resolver reads.
RECORDS_VERSION = 1
#: Local answers are not cached by anyone downstream: containers come and go.
LOCAL_TTL = 0
#: How often the records file is looked at (besides SIGHUP) and unbound gateways retried.
POLL_S = 1.0
#: Per upstream, before the next one is asked. glibc's stub gives up after 5 s.
UPSTREAM_TIMEOUT_S = 2.0
#: Forwarded queries in flight at once; past this, SERVFAIL at once (bounded memory and fds).
MAX_INFLIGHT = 512
#: A TCP client that sends nothing for this long is hung up on.
TCP_IDLE_S = 10.0
#: Linux's IP_FREEBIND (Python 3.11's socket module lacks the name): bind a gateway address
#: before its bridge has it, so a network's DNS works the moment its address comes up.
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)

Upstream = tuple[str, int]


class RecordsError(ValueError):
    """The records file cannot be used (the last good records are kept)."""


@dataclass(frozen=True, slots=True)
class Network:
    """One network as the resolver sees it: names (lower case, no final dot) → IPv4
    addresses, and address → the first name that maps to it (for PTR)."""

    gateway: str
    names: Mapping[str, tuple[str, ...]]
    reverse: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Client:
    """A container's address on some network: where its other queries go, its search list."""

    upstreams: tuple[Upstream, ...]
    search: tuple[str, ...]
    # Gateways of the other networks the container is on: their names answer it too (as
    # Docker's resolver answers every network of the asking container), wherever it asks.
    networks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Records:
    """Everything the resolver answers from. `upstreams` serve clients not listed."""

    networks: Mapping[str, Network]
    clients: Mapping[str, Client]
    upstreams: tuple[Upstream, ...] = ()


EMPTY = Records(networks={}, clients={})


@dataclass(frozen=True, slots=True)
class Forward:
    """The query is not ours to answer: ask these upstreams in order (SERVFAIL if none)."""

    upstreams: tuple[Upstream, ...]


# --------------------------------------------------------------------------- records file


def parse_upstream(text: str) -> Upstream:
    """`1.2.3.4`, `1.2.3.4:5353`, `::1` or `[::1]:5353` → (address, port)."""
    host, port = text, PORT
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise RecordsError(f"bad upstream {text!r}")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if not port_text.isdigit():
            raise RecordsError(f"bad upstream {text!r}")
        port = int(port_text)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise RecordsError(f"bad upstream {text!r}: not an IP address") from None
    if not 0 < port < 65536:
        raise RecordsError(f"bad upstream {text!r}: port out of range")
    return str(address), port


def _name_key(name: str) -> str:
    return name.rstrip(".").lower()


def _ipv4(text: Any, what: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except (ValueError, TypeError):
        raise RecordsError(f"{what}: {text!r} is not an IPv4 address") from None


def _ip(text: Any, what: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except (ValueError, TypeError):
        raise RecordsError(f"{what}: {text!r} is not an IP address") from None


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordsError(f"{what} must be a list of strings")
    return value


def parse_records(data: bytes) -> Records:
    """The records file's JSON → Records; RecordsError says what is wrong."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordsError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != RECORDS_VERSION:
        raise RecordsError(f"not a version {RECORDS_VERSION} records file")
    networks: dict[str, Network] = {}
    for item in doc.get("networks", []):
        if not isinstance(item, dict) or not isinstance(item.get("names", {}), dict):
            raise RecordsError("a network must be an object with gateway and names")
        gateway = _ip(item.get("gateway"), "network gateway")
        if gateway in networks:
            raise RecordsError(f"gateway {gateway} is listed twice")
        names: dict[str, tuple[str, ...]] = {}
        reverse: dict[str, str] = {}
        for name, addresses in item.get("names", {}).items():
            key = _name_key(name)
            if not key:
                raise RecordsError(f"network {gateway}: empty name")
            ips = tuple(_ipv4(a, f"name {name}") for a in _strings(addresses, f"name {name}"))
            names[key] = tuple(dict.fromkeys(names.get(key, ()) + ips))
            for ip in ips:
                reverse.setdefault(ip, key)
        networks[gateway] = Network(gateway=gateway, names=names, reverse=reverse)
    clients: dict[str, Client] = {}
    for item in doc.get("clients", []):
        if not isinstance(item, dict):
            raise RecordsError("a client must be an object with address, upstreams, search")
        address = _ip(item.get("address"), "client address")
        clients[address] = Client(
            upstreams=tuple(parse_upstream(u) for u in _strings(item.get("upstreams", []), "upstreams")),
            search=tuple(_name_key(s) for s in _strings(item.get("search", []), "search") if _name_key(s)),
            networks=tuple(_ip(g, "client network") for g in _strings(item.get("networks", []), "networks")),
        )
    upstreams = tuple(parse_upstream(u) for u in _strings(doc.get("upstreams", []), "upstreams"))
    return Records(networks=networks, clients=clients, upstreams=upstreams)


# --------------------------------------------------------------------------- answering


def _reply(query: dns.message.Message, rcode: dns.rcode.Rcode) -> dns.message.Message:
    response = dns.message.make_response(query, recursion_available=True)
    response.set_rcode(rcode)
    return response


def servfail(query: dns.message.Message) -> dns.message.Message:
    return _reply(query, dns.rcode.SERVFAIL)


def _local_name(network: Network, name: str, search: tuple[str, ...]) -> tuple[str, ...] | None:
    addresses = network.names.get(name)
    if addresses is not None:
        return addresses
    for domain in search:  # `web.corp.example` when corp.example is one of the client's
        if name.endswith("." + domain):
            addresses = network.names.get(name[: -len(domain) - 1])
            if addresses is not None:
                return addresses
    return None


def _reverse_address(name: str) -> str | None:
    """`4.3.2.1.in-addr.arpa` → `1.2.3.4` (None when it is not a whole IPv4 address)."""
    labels = name.split(".")
    if len(labels) != 6 or labels[4:] != ["in-addr", "arpa"]:
        return None
    try:
        return str(ipaddress.IPv4Address(".".join(reversed(labels[:4]))))
    except ValueError:
        return None


def answer(
    records: Records, query: dns.message.Message, gateway: str, client: str
) -> dns.message.Message | Forward:
    """The response to `query`, which `client` sent to `gateway`'s port 53, or where to
    forward it. A container listed with its networks gets their names; anyone else those of
    the network whose gateway was asked."""
    if query.opcode() != dns.opcode.QUERY:
        return _reply(query, dns.rcode.NOTIMP)
    if len(query.question) != 1:
        return _reply(query, dns.rcode.FORMERR)
    question = query.question[0]
    asker = records.clients.get(client)
    # A container is answered the names of its own networks only, wherever it asks (it
    # can reach another network's gateway, an address of the host, but not its names).
    gateways = asker.networks if asker is not None and asker.networks else (gateway,)
    for g in gateways:
        network = records.networks.get(g)
        if network is None or question.rdclass != dns.rdataclass.IN:
            continue
        local = _answer_local(query, question, network, asker)
        if local is not None:
            return local
    upstreams = asker.upstreams if asker is not None and asker.upstreams else records.upstreams
    # An upstream that is one of our own gateways would ask us again: a loop.
    return Forward(tuple(u for u in upstreams if not (u[1] == PORT and u[0] in records.networks)))


def _answer_local(
    query: dns.message.Message, question: Any, network: Network, asker: Client | None
) -> dns.message.Message | None:
    """The answer from one network's names, None when the name is not one of them."""
    name = _name_key(question.name.to_text())
    addresses = _local_name(network, name, asker.search if asker else ())
    if addresses is not None:
        response = _reply(query, dns.rcode.NOERROR)
        response.flags |= dns.flags.AA
        if question.rdtype in (dns.rdatatype.A, dns.rdatatype.ANY):
            response.answer.append(
                dns.rrset.from_text_list(question.name, LOCAL_TTL, "IN", "A", list(addresses))
            )
        # Any other type of a local name: it exists, with no such record (NOERROR, no
        # answer), so the client does not conclude the name is gone (NXDOMAIN would).
        return response
    if question.rdtype == dns.rdatatype.PTR:
        target = network.reverse.get(_reverse_address(name) or "")
        if target is not None:
            response = _reply(query, dns.rcode.NOERROR)
            response.flags |= dns.flags.AA
            response.answer.append(
                dns.rrset.from_text_list(question.name, LOCAL_TTL, "IN", "PTR", [target + "."])
            )
            return response
    return None


def udp_size(query: dns.message.Message) -> int:
    """The largest UDP answer the client takes (RFC 6891; 512 without EDNS)."""
    return max(512, query.payload) if query.edns >= 0 else 512


# --------------------------------------------------------------------------- the servers


def _valid_reply(reply: bytes, query_id: bytes) -> bool:
    return len(reply) >= 12 and reply[:2] == query_id and bool(reply[2] & 0x80)


class _UdpServer(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver, gateway: str) -> None:
        self.resolver = resolver
        self.gateway = gateway
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self.transport is not None:
            self.resolver.on_udp(self.transport, self.gateway, data, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error for an earlier answer: nothing to do


class Resolver:
    """The servers on every gateway, the records they answer from, the forwarding tasks."""

    def __init__(self, records_path: Path, upstream_timeout: float = UPSTREAM_TIMEOUT_S) -> None:
        self.records_path = records_path
        self.upstream_timeout = upstream_timeout
        self.records = EMPTY
        self._stamp: tuple[int, int, int] | None = None
        self._bad_stamp: tuple[int, int, int] | None = None
        self._udp: dict[str, asyncio.DatagramTransport] = {}
        self._tcp: dict[str, asyncio.Server] = {}
        self._bind_errors: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._reload_forced = False
        self._stopping = False

    # ---------------------------------------------------------------- records and sockets

    def request_reload(self) -> None:
        self._reload_forced = True
        self._wake.set()

    def request_stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def load(self, force: bool = False) -> None:
        """Read the records file if it changed (or when forced); a bad file is logged once
        and the last good records stay."""
        try:
            st = os.stat(self.records_path)
        except FileNotFoundError:
            return  # palletd has not written it yet: keep what we have
        except OSError as exc:
            log.error("records %s: %s", self.records_path, exc)
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if not force and stamp in (self._stamp, self._bad_stamp):
            return
        try:
            records = parse_records(self.records_path.read_bytes())
        except (OSError, RecordsError) as exc:
            if stamp != self._bad_stamp:
                log.error("records %s unusable, keeping the last good ones: %s", self.records_path, exc)
            self._bad_stamp = stamp
            return
        self.records, self._stamp, self._bad_stamp = records, stamp, None
        log.info(
            "records: %d networks, %d names, %d clients",
            len(records.networks), sum(len(n.names) for n in records.networks.values()), len(records.clients),
        )

    async def sync_sockets(self) -> None:
        """Close the servers of gone gateways, bind new ones (a failure is retried later)."""
        wanted = set(self.records.networks)
        for gateway in set(self._udp) - wanted:
            self._udp.pop(gateway).close()
            log.info("stopped serving %s", gateway)
        for gateway in set(self._tcp) - wanted:
            self._tcp.pop(gateway).close()
        for gateway in set(self._bind_errors) - wanted:
            del self._bind_errors[gateway]
        for gateway in sorted(wanted - set(self._udp).intersection(self._tcp)):
            try:
                await self._bind(gateway)
            except OSError as exc:
                if self._bind_errors.get(gateway) != str(exc):
                    log.warning("cannot serve %s:%d yet (retrying): %s", gateway, PORT, exc)
                self._bind_errors[gateway] = str(exc)
            else:
                self._bind_errors.pop(gateway, None)
                log.info("serving %s:%d", gateway, PORT)

    def _socket(self, gateway: str, kind: socket.SocketKind) -> socket.socket:
        family = socket.AF_INET6 if ":" in gateway else socket.AF_INET
        sock = socket.socket(family, kind)
        try:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT after a restart
            sock.bind((gateway, PORT))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    async def _bind(self, gateway: str) -> None:
        loop = asyncio.get_running_loop()
        if gateway not in self._udp:
            sock = self._socket(gateway, socket.SOCK_DGRAM)
            transport, _ = await loop.create_datagram_endpoint(lambda: _UdpServer(self, gateway), sock=sock)
            self._udp[gateway] = transport
        if gateway not in self._tcp:
            sock = self._socket(gateway, socket.SOCK_STREAM)
            sock.listen(128)

            async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await self._serve_tcp(gateway, reader, writer)

            self._tcp[gateway] = await asyncio.start_server(serve, sock=sock)

    async def run(self) -> None:
        """Serve until request_stop: reload on request or change, retry unbound gateways."""
        while not self._stopping:
            force, self._reload_forced = self._reload_forced, False
            self.load(force=force)
            await self.sync_sockets()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_S)
            self._wake.clear()

    async def aclose(self) -> None:
        for transport in self._udp.values():
            transport.close()
        for server in self._tcp.values():
            server.close()
        self._udp.clear()
        self._tcp.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------- queries

    def on_udp(self, transport: asyncio.DatagramTransport, gateway: str, data: bytes, addr: Any) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:  # dnspython raises many kinds for garbage: drop it
            return
        result = answer(self.records, query, gateway, addr[0])
        if isinstance(result, dns.message.Message):
            transport.sendto(result.to_wire(max_size=udp_size(query), prefer_truncation=True), addr)
        elif len(self._tasks) >= MAX_INFLIGHT:
            transport.sendto(servfail(query).to_wire(), addr)
        else:
            self._spawn(self._forward_udp(transport, query, data, result, addr))

    async def _forward_udp(
        self, transport: asyncio.DatagramTransport, query: dns.message.Message, data: bytes, forward: Forward, addr: Any
    ) -> None:
        # A truncated upstream answer goes back as it is: the client asks again over TCP.
        reply = await self.forward(data, forward.upstreams, tcp=False)
        transport.sendto(reply if reply is not None else servfail(query).to_wire(), addr)

    async def _serve_tcp(self, gateway: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        client = writer.get_extra_info("peername")[0]
        try:
            while True:
                (length,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_S))
                data = await asyncio.wait_for(reader.readexactly(length), TCP_IDLE_S)
                try:
                    query = dns.message.from_wire(data)
                except Exception:
                    return
                result = answer(self.records, query, gateway, client)
                if isinstance(result, dns.message.Message):
                    reply = result.to_wire(max_size=65535, prefer_truncation=True)
                else:
                    forwarded = await self.forward(data, result.upstreams, tcp=True)
                    reply = forwarded if forwarded is not None else servfail(query).to_wire()
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, OSError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def forward(self, data: bytes, upstreams: tuple[Upstream, ...], tcp: bool) -> bytes | None:
        """Ask each upstream in turn; the first answer with the client's id put back, or
        None when none answered. Over UDP first; a truncated answer to a TCP client is
        asked again over TCP."""
        client_id = data[:2]
        for upstream in upstreams:
            our_id = os.urandom(2)  # not the client's: a fresh id per upstream query
            wire = our_id + data[2:]
            try:
                reply = await self._ask_udp(upstream, wire)
                if tcp and reply[2] & 0x02:  # TC
                    reply = await self._ask_tcp(upstream, wire)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                log.debug("upstream %s:%d: %r", upstream[0], upstream[1], exc)
                continue
            return client_id + reply[2:]
        return None

    async def _ask_udp(self, upstream: Upstream, wire: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in upstream[0] else socket.AF_INET
        # A socket of its own per query, connected: a random source port, and only the
        # upstream's datagrams reach it (ICMP unreachable shows as an error at once).
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.connect(upstream)
            await loop.sock_sendall(sock, wire)
            deadline = loop.time() + self.upstream_timeout
            while True:
                reply = await asyncio.wait_for(loop.sock_recv(sock, 65535), max(0.0, deadline - loop.time()))
                if _valid_reply(reply, wire[:2]):
                    return reply

    async def _ask_tcp(self, upstream: Upstream, wire: bytes) -> bytes:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*upstream), self.upstream_timeout)
        try:
            writer.write(struct.pack("!H", len(wire)) + wire)
            await writer.drain()
            while True:
                (length,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), self.upstream_timeout))
                reply = await asyncio.wait_for(reader.readexactly(length), self.upstream_timeout)
                if _valid_reply(reply, wire[:2]):
                    return reply
        finally:
            writer.close()


# --------------------------------------------------------------------------- the process


def write_pid_file(path: Path, pid: int) -> None:
    """Atomically: a reader sees no pid file or a whole one."""
    tmp = path.with_name(f".{path.name}.{pid}.tmp")
    with open(tmp, "w") as f:
        f.write(f"{pid}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _remove_pid_file(path: Path, pid: int) -> None:
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().strip()) == pid:
            path.unlink()


async def _serve(args: argparse.Namespace) -> None:
    resolver = Resolver(Path(args.records), upstream_timeout=args.upstream_timeout)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, resolver.request_reload)
    loop.add_signal_handler(signal.SIGTERM, resolver.request_stop)
    loop.add_signal_handler(signal.SIGINT, resolver.request_stop)
    resolver.load()
    await resolver.sync_sockets()
    pid_file = Path(args.pid_file)
    # Written once the handlers are in place and the first records are served: whoever
    # reads it may signal us, and may query us.
    write_pid_file(pid_file, os.getpid())
    log.info("resolver %d ready", os.getpid())
    try:
        await resolver.run()
    finally:
        await resolver.aclose()
        _remove_pid_file(pid_file, os.getpid())
        log.info("resolver %d stopped", os.getpid())


def main(argv: list[str] | None = None) -> int:
    # Until the loop's handler is in: a SIGHUP must not kill us (nobody signals us before
    # the pid file exists, but a stale reader might).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    parser = argparse.ArgumentParser(prog="pallet-resolver", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", required=True, help="the records file palletd writes")
    parser.add_argument("--pid-file", required=True)
    parser.add_argument("--log", help="append the log here (default: stderr)")
    parser.add_argument("--upstream-timeout", type=float, default=UPSTREAM_TIMEOUT_S, help="seconds per upstream")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    handler: logging.Handler = logging.FileHandler(args.log) if args.log else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s resolver[%(process)d] %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if args.debug else logging.INFO)
    # One resolver per pid file: a second one would fight over the gateways' ports.
    lock = open(f"{args.pid_file}.lock", "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.error("another resolver holds %s.lock: exiting", args.pid_file)
        return 3
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
