"""The generic dataclass <-> JSON codec (pallet.shim.api.codec)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from pallet.shim.api import codec
from pallet.v1.errors import InvalidArgument


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True, slots=True)
class Inner:
    name: str
    size: int = 0


@dataclass(frozen=True, slots=True)
class Outer:
    inner: Inner
    items: tuple[Inner, ...]
    tags: Mapping[str, str] = field(default_factory=dict)
    color: Color = Color.RED
    maybe: Inner | None = None
    ratio: float = 1.0
    flag: bool = False
    pair: tuple[str, int] = ("a", 1)


def test_round_trip_keeps_every_value() -> None:
    value = Outer(
        inner=Inner("x", 3),
        items=(Inner("a"), Inner("b", 2)),
        tags={"k": "v"},
        color=Color.BLUE,
        maybe=Inner("m", 9),
        ratio=0.5,
        flag=True,
        pair=("z", 7),
    )
    assert codec.loads(Outer, codec.dumps(value)) == value
    assert codec.to_json(value)["color"] == "blue"


def test_missing_fields_take_their_defaults() -> None:
    decoded = codec.from_json(Outer, {"inner": {"name": "x"}, "items": []})
    assert decoded == Outer(inner=Inner("x"), items=())


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"items": []}, "missing field 'inner'"),
        ({"inner": {"name": 5}, "items": []}, "Outer.inner.name: expected a string, got int 5"),
        ({"inner": {"name": "x", "size": True}, "items": []}, "expected an integer"),
        ({"inner": {"name": "x"}, "items": {}}, "Outer.items: expected a list"),
        ({"inner": {"name": "x"}, "items": [], "color": "green"}, "'green' is not one of"),
        ({"inner": {"name": "x"}, "items": [], "nope": 1}, "unknown field 'nope'"),
        ({"inner": {"name": "x"}, "items": [], "pair": ["a"]}, "expected 2 items"),
        ([], "expected an object"),
    ],
)
def test_bad_input_names_the_field(raw: object, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match="malformed Outer") as info:
        codec.from_json(Outer, raw)
    assert fragment in str(info.value)


def test_unknown_fields_may_be_ignored() -> None:
    raw = {"inner": {"name": "x", "later": 1}, "items": [], "later": 2}
    assert codec.from_json(Outer, raw, ignore_unknown=True).inner == Inner("x")


def test_not_json_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="not JSON"):
        codec.loads(Outer, b"{")



@dataclass(frozen=True, slots=True)
class Leaf:
    n: int


@dataclass(frozen=True, slots=True)
class Branch:
    leaves: tuple[Leaf, ...]
    spare: Leaf | None = None


@dataclass(frozen=True, slots=True)
class Tree:
    branches: Mapping[str, Branch]


def test_prepare_caches_the_hints_of_every_dataclass_held() -> None:
    codec.prepare(Tree)
    hits = codec._hints.cache_info().hits
    for cls in (Tree, Branch, Leaf):
        codec._hints(cls)
    assert codec._hints.cache_info().hits == hits + 3  # all three were cached already
    raw = {"branches": {"b": {"leaves": [{"n": 1}], "spare": None}}}
    assert codec.from_json(Tree, raw) == Tree({"b": Branch((Leaf(1),))})
