"""Where a remote palletd is and which files prove who we are to it.

Owns: parsing `tcp://HOST:PORT` (palletd serves TCP only with mutual TLS), and finding
the client's TLS files as Docker's CLI does: `--tlscacert`, `--tlscert`, `--tlskey`, else
`$PALLET_CERT_PATH/{ca,cert,key}.pem` (Docker's DOCKER_CERT_PATH), else `~/.pallet/…`
(Docker's ~/.docker); TLS is asked for with `--tlsverify`, `$PALLET_TLS_VERIFY` or any
of those three flags, and a tcp:// host without it is refused with the flags named.
Must not: import ssl or open connections (`client.tls` does both, and is imported only
for a tcp:// host, so a command on the unix socket pays nothing for TLS).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

from pallet.v1.errors import InvalidArgument

#: The file names in a certificate directory (Docker's DOCKER_CERT_PATH layout).
CA_FILE, CERT_FILE, KEY_FILE = "ca.pem", "cert.pem", "key.pem"
DEFAULT_CERT_DIR = "~/.pallet"


class TLSOptions(NamedTuple):
    """What the user said about TLS: `--tlsverify` and the three file flags ("": not
    given). `verify` False means "not given": $PALLET_TLS_VERIFY may still ask for TLS."""

    verify: bool = False
    ca: str = ""
    cert: str = ""
    key: str = ""


class TLSFiles(NamedTuple):
    """The files of a mutual-TLS connection: palletd's CA, our certificate and its key."""

    ca: str
    cert: str
    key: str


def is_tcp(host: str) -> bool:
    return host.startswith("tcp://")


def tcp_address(host: str) -> tuple[str, int]:
    """(host, port) of `tcp://HOST:PORT` (`tcp://[::1]:PORT` for IPv6)."""
    rest = host[len("tcp://"):]
    if not rest or "/" in rest.rstrip("/"):
        raise InvalidArgument(f"invalid host {host!r}: expected tcp://HOST:PORT, e.g. tcp://10.0.0.5:2376")
    rest = rest.rstrip("/")
    if rest.startswith("["):
        name, bracket, tail = rest[1:].partition("]")
        if not bracket or not tail.startswith(":"):
            raise InvalidArgument(f"invalid host {host!r}: expected tcp://[IPV6]:PORT")
        port_text = tail[1:]
    else:
        name, colon, port_text = rest.rpartition(":")
        if not colon or ":" in name:
            raise InvalidArgument(f"invalid host {host!r}: give a port, e.g. tcp://{rest}:2376")
    if not name:
        raise InvalidArgument(f"invalid host {host!r}: no host name before the port")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidArgument(f"invalid host {host!r}: the port must be a number from 1 to 65535")
    return name, int(port_text)


def _truthy(value: str) -> bool:
    """$PALLET_TLS_VERIFY: set and not empty is on, as DOCKER_TLS_VERIFY (0/false/no: off)."""
    return value.strip().lower() not in ("", "0", "false", "no", "off")


_NEEDS_TLS = (
    "palletd serves {host} only with mutual TLS: give --tlsverify (or set PALLET_TLS_VERIFY=1) "
    "and the CA, certificate and key with --tlscacert, --tlscert and --tlskey, or put ca.pem, "
    "cert.pem and key.pem in $PALLET_CERT_PATH (default ~/.pallet)"
)


def tls_files(
    host: str, options: TLSOptions | None = None, environ: Mapping[str, str] | None = None
) -> TLSFiles:
    """The TLS files for a tcp:// `host`: each flag's, else the certificate directory's
    (`$PALLET_CERT_PATH`, else ~/.pallet). Raises InvalidArgument, naming the flags, when
    TLS was not asked for or a file is not there."""
    env = os.environ if environ is None else environ
    opts = options or TLSOptions()
    wanted = opts.verify or _truthy(env.get("PALLET_TLS_VERIFY", "")) or any((opts.ca, opts.cert, opts.key))
    if not wanted:
        raise InvalidArgument(_NEEDS_TLS.format(host=host))
    directory = env.get("PALLET_CERT_PATH") or os.path.expanduser(DEFAULT_CERT_DIR)

    def pick(given: str, name: str, flag: str, what: str) -> str:
        path = given or os.path.join(directory, name)
        if given and not os.path.isfile(path):
            raise InvalidArgument(f"no {what} at {path} ({flag})")
        if not os.path.isfile(path):
            raise InvalidArgument(
                f"no {what} at {path}: give {flag}, or put {name} in $PALLET_CERT_PATH "
                "(default ~/.pallet)"
            )
        return path

    return TLSFiles(
        ca=pick(opts.ca, CA_FILE, "--tlscacert", "CA certificate"),
        cert=pick(opts.cert, CERT_FILE, "--tlscert", "client certificate"),
        key=pick(opts.key, KEY_FILE, "--tlskey", "client key"),
    )
