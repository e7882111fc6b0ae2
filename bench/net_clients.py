"""The traffic ends of bench/net.py, run inside a network namespace by nsenter.

    python bench/net_clients.py sink PORT                  # prints "ready", serves until killed
    python bench/net_clients.py send HOST PORT BYTES       # prints {"seconds": ...}
    python bench/net_clients.py connect HOST PORT COUNT    # prints {"seconds": ..., "count": ...}
    python bench/net_clients.py lookup SERVER NAME COUNT   # prints {"ms": [...]}

Owns: the sink (accepts connections one after another, reads each to its end into a
reused 1 MiB buffer, answers with the byte count as 8 bytes, closes), the sender (one
connection, BYTES from one 1 MiB buffer, half-close, waits for the sink's count: the
time runs from before connect until the count is back, so every byte has arrived), the
connection client (COUNT connections one after another, each `GET / HTTP/1.0` read to the
server's close), and the DNS client (a prebuilt A query over UDP, 50 untimed first).
Standard library only: nothing here should cost more than the path it measures.
Must not: print anything but its one result line (the caller parses it).
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import time

CHUNK = 1 << 20


def sink(port: int) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(16)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        with conn:
            total = 0
            while n := conn.recv_into(view):
                total += n
            conn.sendall(struct.pack(">Q", total))


def send(host: str, port: int, count: int) -> None:
    block = memoryview(bytes(CHUNK))
    started = time.perf_counter()
    with socket.create_connection((host, port), timeout=60) as conn:
        left = count
        while left > 0:
            conn.sendall(block[: min(left, CHUNK)])
            left -= min(left, CHUNK)
        conn.shutdown(socket.SHUT_WR)
        reply = b""
        while len(reply) < 8 and (part := conn.recv(8 - len(reply))):
            reply += part
    elapsed = time.perf_counter() - started
    got = struct.unpack(">Q", reply)[0] if len(reply) == 8 else -1
    if got != count:
        raise SystemExit(f"the sink got {got} bytes of {count}")
    print(json.dumps({"seconds": elapsed}))


def connect(host: str, port: int, count: int) -> None:
    request = f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode()
    started = time.perf_counter()
    for _ in range(count):
        with socket.create_connection((host, port), timeout=10) as conn:
            conn.sendall(request)
            head = b""
            while part := conn.recv(65536):
                head = head or part
        if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise SystemExit(f"bad answer: {head[:80]!r}")
    print(json.dumps({"seconds": time.perf_counter() - started, "count": count}))


def _query(name: str) -> bytearray:
    header = struct.pack(">HHHHHH", 0, 0x0100, 1, 0, 0, 0)  # recursion desired, 1 question
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"
    return bytearray(header + qname + struct.pack(">HH", 1, 1))  # A, IN


def lookup(server: str, name: str, count: int) -> None:
    wire = _query(name)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((server, 53))
    sock.settimeout(5)
    times = []
    for i in range(count + 50):
        wire[0:2] = (i & 0xFFFF).to_bytes(2, "big")
        t0 = time.perf_counter()
        sock.send(wire)
        reply = sock.recv(4096)
        elapsed = time.perf_counter() - t0
        ancount = struct.unpack(">H", reply[6:8])[0] if len(reply) >= 12 else 0
        if reply[:2] != wire[:2] or reply[3] & 0x0F != 0 or ancount < 1:
            raise SystemExit(f"no answer for {name} from {server}: {reply[:12].hex()}")
        if i >= 50:  # warm-up
            times.append(elapsed * 1000)
    print(json.dumps({"ms": times}))


def main(argv: list[str]) -> None:
    mode, *args = argv
    if mode == "sink":
        sink(int(args[0]))
    elif mode == "send":
        send(args[0], int(args[1]), int(args[2]))
    elif mode == "connect":
        connect(args[0], int(args[1]), int(args[2]))
    elif mode == "lookup":
        lookup(args[0], args[1], int(args[2]))
    else:
        raise SystemExit(f"unknown mode {mode!r}: sink, send, connect or lookup")


if __name__ == "__main__":
    main(sys.argv[1:])
