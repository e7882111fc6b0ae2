"""Registry credentials on disk, in docker's config.json format.

Owns: reading and writing `auths` entries (`{"auths": {"host:port": {"auth": base64}}}`)
in one file that only its owner can read (mode 0600, written atomically), and the key a
registry is stored under (Docker Hub's is `https://index.docker.io/v1/`). Must not: talk to
the daemon or print.

The file is `$PALLET_CONFIG/config.json` when set, else `~/.config/pallet/config.json`.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pallet.v1.errors import InvalidArgument

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_NAMES = {"", "docker.io", "index.docker.io", "registry-1.docker.io", DOCKER_HUB_KEY, DOCKER_HUB_KEY.rstrip("/")}


@dataclass(frozen=True, slots=True)
class StoredAuth:
    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)


def config_path() -> Path:
    base = os.environ.get("PALLET_CONFIG")
    if base:
        return Path(base) / "config.json"
    return Path.home() / ".config" / "pallet" / "config.json"


def registry_key(registry: str) -> str:
    name = registry.strip().removeprefix("https://").removeprefix("http://").rstrip("/")
    if registry.strip() in _HUB_NAMES or name in _HUB_NAMES:
        return DOCKER_HUB_KEY
    return name


def registry_of(reference: str) -> str:
    """The registry part of an image reference, as docker splits it."""
    first, sep, _ = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return DOCKER_HUB_KEY


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot read credentials from {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{path} is not a JSON object")
    return doc


def lookup(registry: str, path: Path | None = None) -> StoredAuth:
    doc = _load(path or config_path())
    auths = doc.get("auths")
    entry = auths.get(registry_key(registry)) if isinstance(auths, dict) else None
    if not isinstance(entry, dict):
        return StoredAuth()
    identity = str(entry.get("identitytoken", ""))
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgument(f"credentials for {registry} in {path or config_path()} are not valid base64") from None
        return StoredAuth(user, password, identity)
    return StoredAuth(str(entry.get("username", "")), str(entry.get("password", "")), identity)


def _write(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (json.dumps(doc, indent="\t") + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)


def store(registry: str, auth: StoredAuth, path: Path | None = None) -> Path:
    path = path or config_path()
    doc = _load(path)
    auths = doc.setdefault("auths", {})
    if not isinstance(auths, dict):
        auths = doc["auths"] = {}
    entry: dict[str, str] = {"auth": base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()}
    if auth.identity_token:
        entry["identitytoken"] = auth.identity_token
    auths[registry_key(registry)] = entry
    _write(path, doc)
    return path


def remove(registry: str, path: Path | None = None) -> bool:
    path = path or config_path()
    doc = _load(path)
    auths = doc.get("auths")
    key = registry_key(registry)
    if not isinstance(auths, dict) or key not in auths:
        return False
    del auths[key]
    _write(path, doc)
    return True
