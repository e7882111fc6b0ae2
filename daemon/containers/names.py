"""Container names: validation and docker-style generated names ("brave_turing").

Owns: the name rules. Must not: check uniqueness (the manager and the store do).
"""

from __future__ import annotations

import random
import re

from pallet.v1.errors import InvalidArgument

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

_ADJECTIVES = (
    "agile bold brave calm clever cosy crisp eager fair fond gentle happy jolly keen kind "
    "lucid merry modest nimble noble plucky proud quick quiet sharp steady sunny swift tidy "
    "trusty upbeat vivid warm wise zesty"
).split()
_NAMES = (
    "babbage borg cerf curie dijkstra engelbart euler fermi galois hamilton hopper kare "
    "knuth lamport liskov lovelace mccarthy meitner noether pike ritchie shannon stallman "
    "thompson torvalds turing wirth wozniak yonath"
).split()


def validate_name(name: str, what: str = "container name") -> str:
    """Return the name without docker's optional leading slash, or refuse it."""
    bare = name[1:] if name.startswith("/") else name
    if not NAME_RE.match(bare):
        raise InvalidArgument(
            f"invalid {what} {name!r}: use at least two characters from "
            "[a-zA-Z0-9_.-], starting with a letter or digit"
        )
    return bare


def generate_name(taken: set[str]) -> str:
    """A random adjective_name not in `taken` (a numeric suffix after many collisions)."""
    rng = random.SystemRandom()
    for attempt in range(100):
        name = f"{rng.choice(_ADJECTIVES)}_{rng.choice(_NAMES)}"
        if attempt > 10:
            name += str(rng.randint(0, 9999))
        if name not in taken:
            return name
    raise RuntimeError("could not generate a free container name")
