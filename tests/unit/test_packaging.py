"""The wheel installs everything under the `pallet` package and the three console scripts.

Owns: building a wheel from a copy of the source tree and checking its file list and entry
points. Must not: build inside the source tree (other work is going on there; pip would
leave build/ and *.egg-info behind).
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "daemon", "client", "shims", "protos")
CONSOLE_SCRIPTS = {
    "pallet": "pallet.client.cli:main",
    "palletd": "pallet.daemon.main:main",
    "pallet-shim": "pallet.shim.main:main",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(
                path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        elif path.exists():
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: the installed setuptools builds it, so the test needs no network.
    result = subprocess.run(
        [
            sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
            "--disable-pip-version-check", "-q", "-w", str(out), str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"pip wheel failed:\n{result.stdout}\n{result.stderr}"
    wheels = list(out.glob("pallet-*.whl"))
    assert len(wheels) == 1, f"expected one pallet wheel, got {wheels}"
    with zipfile.ZipFile(wheels[0]) as archive:
        assert archive.testzip() is None, "the wheel is corrupt"
        yield archive


def test_wheel_holds_only_the_pallet_package(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    strays = [
        n for n in names if not n.startswith("pallet/") and not n.startswith("pallet-")
    ]
    assert not strays, f"files outside pallet/ (would collide with other packages): {strays}"
    assert not any(n.startswith(("daemon/", "client/", "shims/", "protos/")) for n in names)


def test_wheel_holds_each_subpackage(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for module in (
        "pallet/daemon/__init__.py",
        "pallet/v1/errors.py",
        "pallet/shim/api/spec.py",
        "pallet/client/__init__.py",
        "pallet/shim/__init__.py",
        "pallet/v1/containers_pb2.py",
        "pallet/v1/containers_pb2_grpc.py",
        "pallet/v1/containers.proto",
        "pallet/v1/containers_pb2.pyi",
    ):
        assert module in names, f"{module} missing from the wheel"
    # `pallet` is a namespace package assembled from several directories: no __init__.
    assert "pallet/__init__.py" not in names


def test_wheel_declares_the_three_console_scripts(wheel: zipfile.ZipFile) -> None:
    [entry_points] = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    parser = configparser.ConfigParser()
    parser.read_string(wheel.read(entry_points).decode())
    assert dict(parser["console_scripts"]) == CONSOLE_SCRIPTS


@pytest.mark.parametrize("script", sorted(CONSOLE_SCRIPTS))
def test_installed_console_script_answers_help(script: str) -> None:
    # Each entry point imports and parses its command line without root or a daemon.
    module, _, function = CONSOLE_SCRIPTS[script].partition(":")
    result = subprocess.run(
        [sys.executable, "-c", f"import sys; from {module} import {function}; "
         f"sys.argv[0] = {script!r}; {function}()", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {script}")


def test_readme_starts_with_the_demo_and_test_commands() -> None:
    text = (REPO / "README.md").read_text()
    assert text.startswith("```sh\n"), "README.md must open with its two commands"
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip()]
    assert commands == ["bash .ci/demo", "bash .ci/test"]
    for script in ("demo", "test", "install", "run"):
        assert (REPO / ".ci" / script).is_file(), f".ci/{script} is missing"
    # CI runs .ci/run, which must be the README's test command.
    assert "exec bash" in (REPO / ".ci" / "run").read_text()
    assert "/test" in (REPO / ".ci" / "run").read_text()


def test_ci_scripts_parse() -> None:
    for script in sorted((REPO / ".ci").iterdir()):
        if script.is_file():
            result = subprocess.run(
                ["bash", "-n", str(script)], capture_output=True, text=True, timeout=30
            )
            assert result.returncode == 0, f"{script.name}: {result.stderr}"
