"""Mutual TLS (issue 15): what a gRPC call costs on palletd's tcp:// listener with mutual
TLS, minus the same call on its unix socket, on an open channel: `sudo python bench/tls.py`.

Owns: a palletd of its own serving both (`--bridge none`, so it makes nothing in the
host's network namespace; tcp:// on 127.0.0.1), certificates made for the run with the
openssl CLI (a CA, palletd's for 127.0.0.1, a client's), and these figures:
- grpcio, open channel: the median of many `SystemService.Ping` calls on each transport,
  taken in alternating batches so drift of the machine falls on both alike; the
  difference is the issue's figure (target ≤ 1 ms);
- the CLI's own transport (`client.wire`, with `client.tls` for tcp://), the same way;
- a new connection: TCP, the TLS handshake (both certificates checked) and the first
  call, against a new unix connection and its first call;
- `pallet version` as a whole command on each (the CLI's start, ssl's import included),
  wall time and the command's CPU time (which other load on the machine moves less).
Must not: use any engine the machine runs, or leave anything behind (OwnPalletd).

    sudo python bench/tls.py                 # 3000 calls a transport
    sudo python bench/tls.py --calls 500 --json out.json
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from palletd import OwnPalletd, console_script, stub  # noqa: E402

BATCH = 100


def make_certs(directory: Path) -> dict[str, Path]:
    """A CA, palletd's certificate (for 127.0.0.1) and a client's, with openssl."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60, cwd=directory)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *key, "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=pallet bench CA")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        (directory / f"{name}.ext").write_text(ext + "\n")
        openssl("req", *key, "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
                "-CAcreateserial", "-out", f"{name}-cert.pem", "-days", "2", "-extfile", f"{name}.ext")
    return {n: directory / n for n in ("ca.pem", "server-cert.pem", "server-key.pem",
                                        "client-cert.pem", "client-key.pem")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def per_call(call: Callable[[], Any], calls: int, warm: int = 50) -> list[float]:
    """Seconds of each of `calls` calls (after `warm` untimed ones)."""
    for _ in range(warm):
        call()
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def alternating(
    calls: dict[str, Callable[[], Any]], total: int, batch: int = BATCH, warm: int = 50
) -> dict[str, list[float]]:
    """Per-call times of each call, `total` of each, in alternating batches."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        per_call(call, 0, warm)  # warm up every channel before anything is timed
    for _ in range(max(total // batch, 1)):
        for name, call in calls.items():
            times[name] += per_call(call, batch, 0)
    return times


def ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls timed per transport (default 3000)")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON too")
    options = parser.parse_args()

    import grpc

    from pallet.client.api import PalletClient
    from pallet.client.remote import TLSOptions
    from pallet.v1 import system_pb2

    with tempfile.TemporaryDirectory(prefix="plt-bench-tls-") as tmp:
        certs = make_certs(Path(tmp))
        tcp = f"tcp://127.0.0.1:{free_port()}"
        args = ["--host", tcp, "--tlscert", str(certs["server-cert.pem"]),
                "--tlskey", str(certs["server-key.pem"]), "--tlscacert", str(certs["ca.pem"])]
        with OwnPalletd(args=args) as daemon:
            # Whole commands first, unix and tcp:// in turns, before this process has
            # channels of its own open (their threads share the two cores with the CLI).
            cpu: dict[str, list[float]] = {"unix": [], "tcp+mtls": []}

            def command(name: str, *flags: str) -> Callable[[], None]:
                argv = [*console_script("pallet"), *flags, "version"]

                def run() -> None:
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    subprocess.run(argv, check=True, capture_output=True, timeout=30)
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpu[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
                return run

            tls_flags = ["-H", tcp, "--tlsverify", "--tlscacert", str(certs["ca.pem"]),
                         "--tlscert", str(certs["client-cert.pem"]), "--tlskey", str(certs["client-key.pem"])]
            cli_times = alternating({"unix": command("unix", "-H", daemon.host),
                                     "tcp+mtls": command("tcp+mtls", *tls_flags)}, 40, 10, 3)
            creds = grpc.ssl_channel_credentials(
                root_certificates=certs["ca.pem"].read_bytes(),
                private_key=certs["client-key.pem"].read_bytes(),
                certificate_chain=certs["client-cert.pem"].read_bytes(),
            )
            unix_channel = grpc.insecure_channel(daemon.host)
            tls_channel = grpc.secure_channel(tcp[len("tcp://"):], creds)
            ping = system_pb2.PingRequest()
            unix_stub, tls_stub = stub("SystemService", unix_channel), stub("SystemService", tls_channel)
            grpc_times = alternating({"unix": lambda: unix_stub.Ping(ping, timeout=10),
                                      "tcp+mtls": lambda: tls_stub.Ping(ping, timeout=10)}, options.calls)

            tls = TLSOptions(True, str(certs["ca.pem"]), str(certs["client-cert.pem"]), str(certs["client-key.pem"]))
            cli_unix, cli_tls = PalletClient(daemon.host), PalletClient(tcp, tls=tls)
            wire_times = alternating({"unix": cli_unix.ping, "tcp+mtls": cli_tls.ping}, options.calls)
            cli_unix.close()
            cli_tls.close()

            def fresh(host: str, opts: TLSOptions | None) -> Callable[[], None]:
                def connect_and_call() -> None:
                    with PalletClient(host, tls=opts) as client:
                        client.ping()
                return connect_and_call

            connect_times = alternating({"unix": fresh(daemon.host, None), "tcp+mtls": fresh(tcp, tls)}, 200)

            unix_channel.close()
            tls_channel.close()

    rows = [
        ("grpcio Ping, open channel", grpc_times),
        ("CLI transport (client.wire) Ping, open connection", wire_times),
        ("new connection + first Ping (CLI transport)", connect_times),
        ("`pallet version`, whole command, wall", cli_times),
        ("`pallet version`, whole command, CPU (user+sys)", cpu),
    ]
    figures: dict[str, dict[str, float]] = {}
    print(f"{'figure':52} {'unix':>10} {'tcp+mTLS':>10} {'difference':>11}")
    for title, times in rows:
        unix, secure = ms(times["unix"]), ms(times["tcp+mtls"])
        figures[title] = {"unix_ms": unix, "tcp_mtls_ms": secure, "difference_ms": secure - unix}
        print(f"{title:52} {unix:8.3f}ms {secure:8.3f}ms {secure - unix:+9.3f}ms")
    cost = figures["grpcio Ping, open channel"]["difference_ms"]
    print(f"\ngRPC call cost with mutual TLS, minus without, on an open channel: {cost:.3f} ms "
          f"(target ≤ 1 ms; medians of {options.calls} calls each)")
    if options.json:
        options.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
