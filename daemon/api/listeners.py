"""Who may reach palletd's listeners: unix socket permissions and mutual TLS for tcp://.

Owns, for every listener palletd opens (the gRPC API's and the Docker API gateway's):
- `chown_socket(path, group)`: a unix socket made reachable by root and, with
  `palletd --group NAME`, that group's members (root:NAME, mode 0660: Docker's `docker`
  group); without a group root:root 0660.
- `group_id(name)`: the gid of `--group`, or a clear error for a group that is not there.
- `require_tls(cfg, host)`/`tls_material(cfg, host)`: a tcp:// listener is refused
  unless `--tlscert`, `--tlskey` and `--tlscacert` are all given and readable.
- `server_ssl_context(cfg)`: an `ssl.SSLContext` for a tcp:// listener served by
  asyncio (mutual TLS: client certificates required and checked against --tlscacert,
  TLS 1.2 or later).
Must not: bind or serve anything (the servers do), or decide which listeners exist.
"""

from __future__ import annotations

import grp
import os
import ssl
from pathlib import Path

from pallet.daemon.config import Config
from pallet.v1.errors import InvalidArgument

#: Read and write for the owner (root) and the group: connecting needs write permission.
SOCKET_MODE = 0o660


def group_id(name: str) -> int:
    """The gid of the group `name` (or a number: that gid); InvalidArgument if unknown."""
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise InvalidArgument(
            f"unknown group {name!r} for --group: create it (groupadd {name}) or give an existing one"
        ) from None


def chown_socket(path: Path, group: str = "") -> None:
    """Give the unix socket at `path` to root and `group` ("" : root's group) with mode
    0660, so members of that group may use palletd without being root."""
    gid = group_id(group) if group else 0
    os.chown(path, 0, gid, follow_symlinks=False)
    os.chmod(path, SOCKET_MODE)


def require_tls(cfg: Config, host: str) -> tuple[Path, Path, Path]:
    """(cert, key, ca) for the tcp:// listener `host`; InvalidArgument naming the flags
    unless all three are given."""
    if cfg.tls_cert is None or cfg.tls_key is None or cfg.tls_ca is None:
        raise InvalidArgument(
            f"refusing to listen on {host} without mutual TLS: give --tlscert, --tlskey and --tlscacert"
        )
    return cfg.tls_cert, cfg.tls_key, cfg.tls_ca


def tls_material(cfg: Config, host: str) -> tuple[bytes, bytes, bytes]:
    """The PEM bytes of (cert, key, ca) for `host`, each file's problem named."""
    out = []
    for path, flag in zip(require_tls(cfg, host), ("--tlscert", "--tlskey", "--tlscacert")):
        try:
            out.append(path.read_bytes())
        except OSError as exc:
            raise InvalidArgument(f"cannot read {flag} {path}: {exc.strerror or exc}") from None
    return out[0], out[1], out[2]


def server_ssl_context(cfg: Config, host: str = "tcp://") -> ssl.SSLContext:
    """The SSLContext of a tcp:// listener (`host` names it in errors): our --tlscert and
    --tlskey, clients' certificates required (CERT_REQUIRED) and verified against
    --tlscacert, TLS 1.2 or later. Raises InvalidArgument naming the flag at fault."""
    cert, key, ca = require_tls(cfg, host)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgument(f"cannot use --tlscert {cert} with --tlskey {key}: {_why(exc)}") from None
    try:
        context.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgument(f"cannot use --tlscacert {ca}: {_why(exc)}") from None
    return context


def _why(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc).lower().replace("_", " ")
    return exc.strerror or str(exc)
