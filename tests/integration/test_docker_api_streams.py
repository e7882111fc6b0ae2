"""Docker's streaming container endpoints (attach, exec, resize, archive, export, stats)
through the real docker CLI, docker-py and raw HTTP: what a user sees (output, exit codes,
files), a client that drops a hijacked connection, and bad input."""

from __future__ import annotations

import io
import json
import socket
import tarfile
import time
from typing import Any

import pytest

from docker_http import request

pytestmark = pytest.mark.integration


def _running(palletd: Any, name: str, *args: str) -> str:
    """A running busybox container made with pallet's own CLI; its full id."""
    palletd.cli_ok("run", "-d", "--name", name, *args, "busybox", "sleep", "3600")
    return str(palletd.inspect(name)["Id"])


def test_docker_py_exec_create_start_inspect(palletd: Any) -> None:
    cid = _running(palletd, "pyex")
    client = palletd.docker_client()
    try:
        api = client.api
        e = api.exec_create(cid, ["sh", "-c", "echo out; echo err >&2; exit 3"])
        info = api.exec_inspect(e["Id"])
        assert info["Running"] is False and info["ExitCode"] is None
        assert info["ProcessConfig"]["entrypoint"] == "sh"
        out = api.exec_start(e["Id"], demux=True)
        assert out == (b"out\n", b"err\n")
        info = api.exec_inspect(e["Id"])
        assert info["ExitCode"] == 3 and info["Running"] is False and info["ContainerID"] == cid
    finally:
        client.close()
