"""--init: finding the init binary on the host, and the init's argv."""

from __future__ import annotations

from pathlib import Path

import pytest

from pallet.daemon.containers import initproc
from pallet.daemon.containers.initproc import find_init, init_args
from pallet.v1.errors import FailedPrecondition


def _executable(path: Path) -> Path:
    path.write_bytes(b"\x7fELF")
    path.chmod(0o755)
    return path


@pytest.fixture
def no_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A host where only `tmp_path/bin` is searched (no libexec dirs, PATH=that)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setattr(initproc, "_LIBEXEC", ())
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def test_the_defaults_are_tini_static_then_docker_init(no_defaults: Path) -> None:
    with pytest.raises(FailedPrecondition, match="apt-get install tini"):
        find_init()
    docker_init = _executable(no_defaults / "docker-init")
    assert find_init() == docker_init
    tini = _executable(no_defaults / "tini-static")
    assert find_init() == tini


def test_init_path_is_a_path_or_a_name_and_must_be_executable(
    no_defaults: Path, tmp_path: Path
) -> None:
    tini = _executable(tmp_path / "my-tini")
    assert find_init(str(tini)) == tini
    _executable(no_defaults / "my-init")
    assert find_init("my-init") == no_defaults / "my-init"
    plain = tmp_path / "not-executable"
    plain.write_bytes(b"")
    for bad in (str(plain), str(tmp_path), str(tmp_path / "missing"), "nosuch-init"):
        with pytest.raises(FailedPrecondition, match="palletd --init-path"):
            find_init(bad)


def test_the_init_runs_the_command_after_a_double_dash() -> None:
    assert init_args(("sh", "-c", "--help")) == ("/sbin/docker-init", "--", "sh", "-c", "--help")
