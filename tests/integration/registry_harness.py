"""Real registries for the registry tests: Debian's `docker-registry` on 127.0.0.1.

Owns: starting `docker-registry serve` with a temp storage dir on a free port — open,
with htpasswd basic auth, or with token auth backed by a small token server written here
(JWTs signed with a throwaway RSA key through the openssl CLI) — and stopping it by pid.
Must not: listen anywhere but loopback or touch anything outside its temp dir.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

REGISTRY = "/usr/bin/docker-registry"
USER, PASSWORD = "alice", "s3cret-pw"


def registry_problem() -> str | None:
    missing = [tool for tool in (REGISTRY, "openssl", "htpasswd") if not shutil.which(tool)]
    if missing:
        return f"missing {', '.join(missing)}: apt-get install docker-registry openssl apache2-utils"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues registry bearer tokens to USER:PASSWORD; anonymous callers get no access."""

    def __init__(self, base: Path, service: str, issuer: str) -> None:
        self.key = base / "token.key"
        self.cert = base / "token.crt"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
             "-out", str(self.cert), "-days", "2", "-subj", "/CN=pallet-test-token"],
            check=True, capture_output=True, timeout=60,
        )
        der = subprocess.run(
            ["openssl", "x509", "-in", str(self.cert), "-outform", "DER"], check=True, capture_output=True, timeout=30
        ).stdout
        self._x5c = base64.b64encode(der).decode()
        self.service, self.issuer = service, issuer
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                query = parse_qs(urlparse(self.path).query)
                header = self.headers.get("Authorization", "")
                user = ""
                if header.startswith("Basic "):
                    name, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    if (name, password) != (USER, PASSWORD):
                        self.send_response(401)
                        self.end_headers()
                        return
                    user = name
                server.requests.append({"user": user, "scope": query.get("scope", [])})
                access = []
                for scope in query.get("scope", []) if user else []:
                    kind, _, rest = scope.partition(":")
                    name, _, actions = rest.rpartition(":")
                    access.append({"type": kind, "name": name, "actions": actions.split(",")})
                body = json.dumps({"token": server.token(user, access), "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.port = free_port()
        self._http = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def token(self, user: str, access: list[dict[str, Any]]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {
            "iss": self.issuer, "sub": user, "aud": self.service, "exp": now + 300,
            "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access,
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(), check=True, capture_output=True, timeout=30,
        ).stdout
        return f"{signing_input}.{_b64url(signature)}"

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


@dataclass
class Registry:
    """One docker-registry process; `host` is 127.0.0.1:PORT."""

    base: Path
    auth: str = ""  # "", "basic" or "token"
    tls: bool = False  # serve HTTPS with a certificate from a CA made here (`ca`)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    token_server: TokenServer | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def storage(self) -> Path:
        return self.base / "storage"

    def start(self) -> None:
        self.port = free_port()
        auth = ""
        if self.auth == "basic":
            htpasswd = subprocess.run(
                ["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True, text=True, timeout=30
            ).stdout
            (self.base / "htpasswd").write_text(htpasswd)
            auth = f"auth:\n  htpasswd:\n    realm: pallet-test\n    path: {self.base / 'htpasswd'}\n"
        elif self.auth == "token":
            self.token_server = TokenServer(self.base, "pallet-test-registry", "pallet-test-issuer")
            auth = (
                "auth:\n  token:\n"
                f"    realm: {self.token_server.realm}\n"
                "    service: pallet-test-registry\n"
                "    issuer: pallet-test-issuer\n"
                f"    rootcertbundle: {self.token_server.cert}\n"
            )
        tls = ""
        if self.tls:
            tls = self._make_certificates()
        config = self.base / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n  secret: {secrets.token_hex(16)}\n" + tls + auth
        )
        log = open(self.base / "registry.log", "ab")
        try:
            self.proc = subprocess.Popen(
                [REGISTRY, "serve", str(config)], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"docker-registry exited {self.proc.returncode}:\n{self.log()}")
            try:
                if self.tls:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=2):
                        return
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2)
                return
            except urllib.error.HTTPError:
                return  # 401: up, and asking for credentials
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"docker-registry did not answer on {self.host}:\n{self.log()}")

    @property
    def ca(self) -> Path:
        return self.base / "ca.crt"

    def _make_certificates(self) -> str:
        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60, cwd=self.base)

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
                "-days", "2", "-subj", "/CN=pallet-test-ca")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
                "-subj", "/CN=127.0.0.1")
        (self.base / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "server.crt", "-days", "2", "-extfile", "san.ext")
        return f"  tls:\n    certificate: {self.base / 'server.crt'}\n    key: {self.base / 'server.key'}\n"

    def log(self) -> str:
        try:
            return (self.base / "registry.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.token_server is not None:
            self.token_server.close()
        shutil.rmtree(self.base, ignore_errors=True)

    def catalog_tags(self, repository: str) -> list[str]:
        try:
            with urllib.request.urlopen(f"http://{self.host}/v2/{repository}/tags/list", timeout=10) as resp:
                return list(json.load(resp).get("tags") or [])
        except urllib.error.HTTPError:
            return []


def start_registry(auth: str = "", tls: bool = False) -> Registry:
    problem = registry_problem()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run every test, but {problem}")
        pytest.skip(problem)
    registry = Registry(Path(tempfile.mkdtemp(prefix="plt-reg-", dir="/tmp")), auth, tls)
    try:
        registry.start()
    except BaseException:
        registry.stop()
        raise
    return registry
