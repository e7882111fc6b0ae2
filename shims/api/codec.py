"""One generic codec between frozen dataclasses and JSON-able values.

Owns: turning a dataclass (nested dataclasses, tuples, mappings, enums, optionals and
plain scalars) into dicts, lists and scalars, and back, checking every value against the
field's annotation. The shim's bundle files and the daemon's SQLite records are both
written with it, so a new field is declared once, in its dataclass, and nowhere else.
Must not: know any particular dataclass, or do I/O.

Decoding is strict about types (a string where an int belongs is an error naming the
field's path) and lenient about presence: a field missing from the input takes its
dataclass default (records written before the field existed), and a field without a
default that is missing is an error. Unknown keys are an error unless `ignore_unknown`.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any, TypeVar

from pallet.v1.errors import InvalidArgument

T = TypeVar("T")



def to_json(value: Any) -> Any:
    """A dataclass (or any value it may hold) as dicts, lists and scalars."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (tuple, list, frozenset, set)):
        return [to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot encode {type(value).__name__} {value!r} as JSON")


def dumps(value: Any) -> str:
    """`to_json` as compact JSON text."""
    return json.dumps(to_json(value), separators=(",", ":"), sort_keys=True)


def from_json(cls: type[T], raw: Any, *, ignore_unknown: bool = False, what: str = "") -> T:
    """Build a `cls` from `to_json`'s output; InvalidArgument names the first bad field."""
    try:
        return _decode(cls, raw, what or cls.__name__, ignore_unknown)  # type: ignore[no-any-return]
    except _Bad as bad:
        raise InvalidArgument(f"malformed {what or cls.__name__}: {bad}") from None


def loads(cls: type[T], text: str | bytes, *, ignore_unknown: bool = False, what: str = "") -> T:
    """`from_json` of JSON text."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"malformed {what or cls.__name__}: not JSON: {exc}") from None
    return from_json(cls, raw, ignore_unknown=ignore_unknown, what=what)


class _Bad(Exception):
    pass


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def prepare(*types: Any) -> None:
    """Resolve and cache the type hints of `types` and of every dataclass they hold, as
    the first `from_json` of each would. The shim launcher does it before it forks shims,
    so they share the result instead of each evaluating the annotations anew."""
    seen: set[Any] = set()
    todo = list(types)
    while todo:
        tp = todo.pop()
        if tp in seen:
            continue
        seen.add(tp)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            todo.extend(_hints(tp).values())
        todo.extend(typing.get_args(tp))


def _decode(tp: Any, raw: Any, path: str, ignore_unknown: bool) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return raw
    if origin is typing.Union or origin is types.UnionType:
        options = typing.get_args(tp)
        if raw is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _decode(option, raw, path, ignore_unknown)
            except _Bad as bad:
                errors.append(str(bad))
        raise _Bad(errors[0] if len(errors) == 1 else f"{path}: {raw!r} matches no allowed type")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, raw, path, ignore_unknown)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(raw)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in tp)
            raise _Bad(f"{path}: {raw!r} is not one of {allowed}") from None
    if origin in (tuple, list, frozenset, set):
        if not isinstance(raw, list):
            raise _Bad(f"{path}: expected a list, got {_kind(raw)}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(raw) != len(args):
                raise _Bad(f"{path}: expected {len(args)} items, got {len(raw)}")
            return tuple(
                _decode(a, v, f"{path}[{i}]", ignore_unknown) for i, (a, v) in enumerate(zip(args, raw))
            )
        item = args[0] if args else Any
        items = [_decode(item, v, f"{path}[{i}]", ignore_unknown) for i, v in enumerate(raw)]
        return origin(items)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(raw, dict):
            raise _Bad(f"{path}: expected an object, got {_kind(raw)}")
        key_t, value_t = typing.get_args(tp) or (str, Any)
        if key_t is not str:
            raise _Bad(f"{path}: only string keys are supported")
        return {k: _decode(value_t, v, f"{path}.{k}", ignore_unknown) for k, v in raw.items()}
    if tp is bool:
        if not isinstance(raw, bool):
            raise _Bad(f"{path}: expected true or false, got {_kind(raw)}")
        return raw
    if tp is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise _Bad(f"{path}: expected an integer, got {_kind(raw)}")
        return raw
    if tp is float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise _Bad(f"{path}: expected a number, got {_kind(raw)}")
        return float(raw)
    if tp is str:
        if not isinstance(raw, str):
            raise _Bad(f"{path}: expected a string, got {_kind(raw)}")
        return raw
    if tp is type(None):
        if raw is not None:
            raise _Bad(f"{path}: expected null, got {_kind(raw)}")
        return None
    raise TypeError(f"{path}: the codec does not support the type {tp!r}")


def _decode_dataclass(cls: type, raw: Any, path: str, ignore_unknown: bool) -> Any:
    if not isinstance(raw, dict):
        raise _Bad(f"{path}: expected an object, got {_kind(raw)}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - set(fields))
    if unknown and not ignore_unknown:
        raise _Bad(f"{path}: unknown field {unknown[0]!r}")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name in raw:
            values[name] = _decode(hints[name], raw[name], f"{path}.{name}", ignore_unknown)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _Bad(f"{path}: missing field {name!r}")
    return cls(**values)


def _kind(raw: Any) -> str:
    if raw is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(raw), f"{type(raw).__name__} {raw!r}"
    )
