"""Image references: docker's grammar, normalisation and the familiar short form.

Owns: parsing `[domain/]path[:tag][@digest]`, filling in docker's defaults
(`busybox` -> `docker.io/library/busybox:latest`) and printing references the way
people type them (`busybox:latest`, `host:5000/ns/name:tag`). Must not: look anything up;
whether a reference names a stored image is the manager's business.

The grammar follows the distribution project's reference rules: lower-case path
components separated by `.`, `_`, `__` or dashes; an optional registry domain recognised
by a dot, a port or the name `localhost`; tags of at most 128 word characters, dots and
dashes; digests `sha256:<64 hex>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pallet.v1.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
MAX_NAME_LENGTH = 255

_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN = re.compile(
    r"(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
    r"|\[[a-fA-F0-9:]+\])"
    r"(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed, normalised reference; `tag` and `digest` may be empty."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """The full repository name, e.g. `docker.io/library/busybox`."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The repository as people write it, e.g. `busybox` or `host:5000/ns/name`."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        path = self.path
        if path.startswith(OFFICIAL_REPO_PREFIX) and "/" not in path[len(OFFICIAL_REPO_PREFIX) :]:
            return path[len(OFFICIAL_REPO_PREFIX) :]
        return path

    def familiar(self) -> str:
        """The short display form, e.g. `busybox:latest`."""
        return self.familiar_name + self._suffix()

    def __str__(self) -> str:
        return self.name + self._suffix()

    def _suffix(self) -> str:
        out = f":{self.tag}" if self.tag else ""
        return out + (f"@{self.digest}" if self.digest else "")

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag, self.digest)


def _invalid(text: str, rule: str) -> InvalidArgument:
    return InvalidArgument(f"invalid reference format: {rule} (in {text!r})")


def _split_domain(name: str) -> tuple[str, str]:
    """Split off the registry domain the way docker does; `""` when there is none."""
    first, sep, rest = name.partition("/")
    if not sep:
        return "", name
    # A first component is a registry only if it looks like a host: a dot, a port, the
    # name localhost, or upper case (which a repository path may not contain).
    if "." in first or ":" in first or first == "localhost" or first.lower() != first:
        return first, rest
    return "", name


def parse(text: str) -> Reference:
    """Parse and normalise a reference without adding a default tag."""
    if not text:
        raise InvalidArgument("invalid reference format: the reference is empty")
    remainder, at, digest = text.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise _invalid(text, "digest must be 'sha256:' followed by 64 lower-case hex digits")
    name, tag = remainder, ""
    colon = remainder.rfind(":")
    if colon > remainder.rfind("/"):
        name, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise _invalid(
                text, "tag must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
            )
    if not name:
        raise _invalid(text, "repository name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise _invalid(text, f"repository name must not be more than {MAX_NAME_LENGTH} characters")
    domain, path = _split_domain(name)
    if domain and not _DOMAIN.fullmatch(domain):
        raise _invalid(text, f"registry domain {domain!r} is not a valid host[:port]")
    for component in path.split("/"):
        if _PATH_COMPONENT.fullmatch(component):
            continue
        if _PATH_COMPONENT.fullmatch(component.lower()):
            raise _invalid(text, "repository name must be lowercase")
        raise _invalid(
            text,
            "repository path components are lower-case letters and digits separated by "
            "'.', '_', '__' or '-'",
        )
    if not domain and _HEX64.fullmatch(path):
        raise _invalid(text, "a 64-character hexadecimal string is an image id, not a repository name")
    if not domain or domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    return Reference(domain, path, tag, digest)


def parse_tagged(text: str) -> Reference:
    """Parse a reference, adding `:latest` when it has neither tag nor digest."""
    ref = parse(text)
    if not ref.tag and not ref.digest:
        return ref.with_tag(DEFAULT_TAG)
    return ref


def familiar(text: str) -> str:
    """The short display form of a stored (normalised) reference string."""
    return parse(text).familiar()
