"""The committed generated code in protos/pallet/v1 is exactly what the pinned protoc makes.

Owns: regenerating every `protos/pallet/v1/*.proto` into a temporary directory with
grpcio-tools and comparing each generated file byte for byte with the committed one.
Must not: write into the source tree.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "protos"
PACKAGE_DIR = PROTO_ROOT / "pallet" / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def _pinned_grpcio_tools() -> str:
    """The exact grpcio-tools version the `test` extra of pyproject.toml pins."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    for requirement in pyproject["project"]["optional-dependencies"]["test"]:
        match = re.fullmatch(r"\s*grpcio-tools\s*==\s*([\w.]+)\s*", requirement)
        if match:
            return match.group(1)
    raise AssertionError("pyproject.toml's `test` extra does not pin grpcio-tools with ==")


def _protos() -> list[Path]:
    protos = sorted(PACKAGE_DIR.glob("*.proto"))
    assert protos, f"no .proto files in {PACKAGE_DIR}"
    return protos


def test_grpcio_tools_is_the_pinned_version() -> None:
    # A different protoc makes different bytes, so a mismatch here explains the next test's.
    assert metadata.version("grpcio-tools") == _pinned_grpcio_tools()


def test_generated_code_matches_the_protos(tmp_path: Path) -> None:
    protos = _protos()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            *(str(p) for p in protos),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"protoc failed:\n{result.stderr}"

    fresh_dir = tmp_path / "pallet" / "v1"
    stale: list[str] = []
    for proto in protos:
        for suffix in GENERATED_SUFFIXES:
            name = proto.stem + suffix
            fresh = fresh_dir / name
            committed = PACKAGE_DIR / name
            assert fresh.is_file(), f"protoc did not make {name}"
            if not committed.is_file():
                stale.append(f"{name}: not committed")
            elif committed.read_bytes() != fresh.read_bytes():
                stale.append(f"{name}: differs from what protoc makes now")
    assert not stale, (
        "generated code is stale; regenerate it (see README.md, 'Regenerating the API "
        "code'):\n  " + "\n  ".join(stale)
    )


def test_no_generated_file_without_its_proto() -> None:
    stems = {p.stem for p in _protos()}
    orphans = [
        path.name
        for path in PACKAGE_DIR.iterdir()
        if path.name.endswith(GENERATED_SUFFIXES)
        and path.name.split("_pb2")[0] not in stems
    ]
    assert not orphans, f"generated files whose .proto is gone: {orphans}"


def test_generated_modules_import_as_pallet_v1() -> None:
    # The generated modules import each other as `pallet.v1.x`, the installed name.
    for proto in _protos():
        for suffix in ("_pb2", "_pb2_grpc"):
            importlib.import_module(f"pallet.v1.{proto.stem}{suffix}")
