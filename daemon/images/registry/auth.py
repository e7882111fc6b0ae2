"""Registry authentication: credentials, `WWW-Authenticate` challenges and bearer tokens.

Owns: parsing challenges (RFC 7235 as registries send them), the Basic header, asking a
token server for a bearer token (GET with basic credentials, or the OAuth refresh-token
POST when login handed out an identity token), and caching tokens per scope. Must not:
log or keep credentials beyond the one request that carries them.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import httpx

from pallet.daemon.images.model import Credentials
from pallet.v1.errors import FailedPrecondition, InvalidArgument, Unavailable

_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')
MAX_TOKEN_RESPONSE = 1 << 20


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # "basic" or "bearer" (lower case)
    params: dict[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """`Bearer realm="...",service="...",scope="..."` (one or more schemes)."""
    out: list[Challenge] = []
    rest = header.strip()
    while rest:
        rest = rest.lstrip(" ,")
        match = re.match(r"([A-Za-z]+)\s*", rest)
        if match is None:
            break
        scheme = match[1].lower()
        rest = rest[match.end() :]
        params: dict[str, str] = {}
        while rest:
            param = _PARAM.match(rest)
            if param is None or (param.end() == 0):
                break
            # A bare word followed by a space is the next scheme, not a parameter.
            if "=" not in rest[: param.end()]:
                break
            value = param[2] if param[2] is not None else param[3]
            params[param[1].lower()] = re.sub(r"\\(.)", r"\1", value or "")
            rest = rest[param.end() :]
        out.append(Challenge(scheme, params))
    return out


class TokenCache:
    """Bearer tokens by (realm, service, scope); one per registry client."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}

    def get(self, key: tuple[str, str, str]) -> str:
        token, expires = self._tokens.get(key, ("", 0.0))
        return token if token and time.monotonic() < expires else ""

    def put(self, key: tuple[str, str, str], token: str, expires_in: float) -> None:
        # Refresh a little early: a token that dies mid-request costs a retry.
        self._tokens[key] = (token, time.monotonic() + max(expires_in - 10, 5))


async def fetch_token(
    http: httpx.AsyncClient,
    challenge: Challenge,
    scopes: list[str],
    credentials: Credentials,
    registry: str,
) -> tuple[str, float]:
    """Ask the challenge's token server for a bearer token for `scopes`."""
    realm = challenge.params.get("realm", "")
    if not realm.startswith(("http://", "https://")):
        raise Unavailable(f"registry {registry} sent a bearer challenge without a usable realm")
    service = challenge.params.get("service", "")
    try:
        if credentials.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": credentials.identity_token,
                "service": service,
                "client_id": "pallet",
                "scope": " ".join(scopes),
            }
            response = await http.post(realm, data=form)
        else:
            query: list[tuple[str, str | int | float | bool | None]] = [("service", service)] if service else []
            query += [("scope", scope) for scope in scopes]
            headers = {"Authorization": credentials.basic()} if credentials else {}
            response = await http.get(realm, params=query, headers=headers)
        body = response.content[:MAX_TOKEN_RESPONSE]
    except httpx.HTTPError as exc:
        raise Unavailable(f"token server of {registry} ({realm}) failed: {exc}") from None
    if response.status_code in (401, 403):
        raise FailedPrecondition(
            f"unauthorized: {registry} refused the credentials"
            + (f" of {credentials.username}" if credentials.username else "")
            + f": check them with `pallet login {registry}`"
        )
    if response.status_code != 200:
        raise Unavailable(f"token server of {registry} answered HTTP {response.status_code}")
    try:
        doc = response.json() if body else {}
    except ValueError:
        doc = {}
    token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
    if not isinstance(token, str) or not token:
        raise Unavailable(f"token server of {registry} answered without a token")
    expires = doc.get("expires_in", 60)
    return token, float(expires) if isinstance(expires, (int, float)) else 60.0


def check_header_safe(value: str) -> None:
    if "\n" in value or "\r" in value:
        raise InvalidArgument("credentials may not contain line breaks")
