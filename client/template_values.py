"""Go values for templates: printing (%v), truth, quoting, json, printf and the functions.

Owns: what a Python value looks like when Go's fmt prints it, Go's template truth, and the
built-in functions (Go's and docker's). Must not: parse or walk templates; a function
failure raises FuncError, which the executor turns into a TemplateError with a position.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any


class _NoValue:
    """Marks "no value" (Go's invalid reflect.Value), printed as "<no value>"."""

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()


def truth(value: Any) -> bool:
    """Go template truth: false, 0, nil, and empty strings/lists/maps are false."""
    if value is None or value is NO_VALUE:
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return bool(value)
    return True


def go_str(value: Any, top: bool = True) -> str:
    """Format a value as Go's fmt %v does (top-level nil prints "<no value>")."""
    if value is NO_VALUE or (value is None and top):
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_str(v, top=False) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return "map[" + " ".join(f"{go_str(k, False)}:{go_str(v, False)}" for k, v in items) + "]"
    return str(value)


def _go_float(value: float) -> str:
    """Go's %v for float64 (strconv 'g', shortest): %e form when the exponent is < -4 or >= 6."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    text = repr(abs(value))
    mant, _, exp_text = text.partition("e")
    int_part, _, frac = mant.partition(".")
    digits = int_part + frac
    point = len(int_part) + int(exp_text or 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0") or "0"
    exp = point - 1
    sign = "-" if value < 0 else ""
    if exp < -4 or exp >= 6:
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{body}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    whole = digits[:point].ljust(point, "0")
    rest = digits[point:]
    return f"{sign}{whole}{'.' + rest if rest else ''}"


def go_quote(text: str) -> str:
    """strconv.Quote: a double-quoted Go string literal."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                        "\t": "\\t", "\v": "\\v"}[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif unicodedata.category(ch)[0] in "CZ" and ch != " ":
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_json(value: Any) -> str:
    """json.Marshal: compact, HTML-escaped like Go; callables (Go methods) are left out."""
    text = json.dumps(_plain(value), separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _plain(value: Any) -> Any:
    if value is NO_VALUE or value is None:
        return None
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if not callable(v)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    raise FuncError(f"json: unsupported type: {type(value).__name__}")


def type_name(value: Any) -> str:
    if value is None or value is NO_VALUE:
        return "<nil>"
    return {bool: "bool", int: "int", float: "float64", str: "string", list: "[]interface {}",
            tuple: "[]interface {}", dict: "map[string]interface {}"}.get(type(value), type(value).__name__)


# ---------------------------------------------------------------------------------------------
# printf: Go's fmt verbs
# ---------------------------------------------------------------------------------------------


def go_sprintf(fmt: str, *args: Any) -> str:
    """fmt.Sprintf for the common verbs (v s q d x X o b c t e E f F g G %), with flags."""
    out: list[str] = []
    argi = 0
    i = 0
    n = len(fmt)
    while i < n:
        ch = fmt[i]
        if ch != "%":
            j = fmt.find("%", i)
            j = n if j < 0 else j
            out.append(fmt[i:j])
            i = j
            continue
        i += 1
        flags = ""
        while i < n and fmt[i] in "-+# 0":
            flags += fmt[i]
            i += 1
        width = ""
        while i < n and fmt[i].isdigit():
            width += fmt[i]
            i += 1
        prec: str | None = None
        if i < n and fmt[i] == ".":
            i += 1
            prec = ""
            while i < n and fmt[i].isdigit():
                prec += fmt[i]
                i += 1
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        out.append(_format_one(verb, flags, width, prec, arg))
    if argi < len(args):
        extra = ", ".join(f"{type_name(a)}={go_str(a, False)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _format_one(verb: str, flags: str, width: str, prec: str | None, arg: Any) -> str:
    bad = f"%!{verb}({type_name(arg)}={go_str(arg, False)})"
    body: str
    if verb == "v":
        body = go_str(arg, top=False)
    elif verb == "s":
        if isinstance(arg, (int, float, bool)) and not isinstance(arg, str):
            return bad
        body = go_str(arg, top=False)
        if prec is not None:
            body = body[: int(prec or 0)]
    elif verb == "q":
        if not isinstance(arg, str):
            return bad
        body = go_quote(arg)
    elif verb == "t":
        if not isinstance(arg, bool):
            return bad
        body = "true" if arg else "false"
    elif verb in "dxXobc":
        if isinstance(arg, bool) or not isinstance(arg, int):
            if verb in "xX" and isinstance(arg, str):
                body = arg.encode().hex()
                body = body.upper() if verb == "X" else body
                return _pad(body, flags, width)
            return bad
        if verb == "c":
            body = chr(arg)
        else:
            spec = {"d": "d", "x": "x", "X": "X", "o": "o", "b": "b"}[verb]
            body = format(abs(arg), spec)
            if "#" in flags and verb in "xXo":
                body = {"x": "0x", "X": "0X", "o": "0"}[verb] + body
            sign = "-" if arg < 0 else ("+" if "+" in flags else (" " if " " in flags else ""))
            if "0" in flags and "-" not in flags and width and len(sign + body) < int(width):
                body = body.rjust(int(width) - len(sign), "0")
            body = sign + body
    elif verb in "eEfFgG":
        if isinstance(arg, bool) or not isinstance(arg, (int, float)):
            return bad
        value = float(arg)
        if verb in "gG" and prec is None:
            body = _go_float(value)
            if verb == "G":
                body = body.upper()
        else:
            p = 6 if prec is None else int(prec or 0)
            body = format(value, f"{'+' if '+' in flags else ''}.{p}{verb.lower() if verb in 'fF' else verb}")
            if verb in "eE":
                mant, _, exp = body.partition("e" if verb == "e" else "E")
                body = f"{mant}{'e' if verb == 'e' else 'E'}{exp[0]}{int(exp[1:]):02d}"
        if "0" in flags and "-" not in flags and width and len(body) < int(width):
            sign = body[0] if body[0] in "+-" else ""
            body = sign + body[len(sign):].rjust(int(width) - len(sign), "0")
    else:
        return f"%!{verb}({type_name(arg)}={go_str(arg, False)})"
    return _pad(body, flags, width)


def _pad(body: str, flags: str, width: str) -> str:
    if not width:
        return body
    w = int(width)
    return body.ljust(w) if "-" in flags else body.rjust(w)


def _go_sprint(args: Sequence[Any]) -> str:
    """fmt.Sprint: spaces between operands when neither side is a string."""
    out: list[str] = []
    for k, arg in enumerate(args):
        if k > 0 and not isinstance(arg, str) and not isinstance(args[k - 1], str):
            out.append(" ")
        out.append(go_str(arg, top=False))
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------------------------


class FuncError(Exception):
    """Raised by a template function; the executor adds the position."""


def _fn_index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, dict):
            if key in item:
                item = item[key]
            else:
                # Go returns the map's zero value: "" for docker's map[string]string labels.
                item = "" if all(isinstance(v, str) for v in item.values()) else None
        elif isinstance(item, (list, tuple, str)):
            if isinstance(key, bool) or not isinstance(key, int):
                raise FuncError(f"cannot index slice/array with type {type_name(key)}")
            if not 0 <= key < len(item):
                raise FuncError(f"index out of range: {key}")
            item = item[key] if not isinstance(item, str) else ord(item[key])
        elif item is None or item is NO_VALUE:
            raise FuncError("index of untyped nil")
        else:
            raise FuncError(f"can't index item of type {type_name(item)}")
    return item


def _fn_slice(item: Any, *bounds: Any) -> Any:
    if not isinstance(item, (list, tuple, str)):
        raise FuncError(f"can't slice item of type {type_name(item)}")
    if len(bounds) > 2:
        raise FuncError("too many slice indexes")
    nums = [int(b) for b in bounds]
    start = nums[0] if nums else 0
    end = nums[1] if len(nums) > 1 else len(item)
    if not 0 <= start <= end <= len(item):
        raise FuncError(f"slice index out of range: {start}:{end}")
    return item[start:end]


def _fn_len(item: Any) -> int:
    if isinstance(item, (str, list, tuple, dict)):
        return len(item.encode()) if isinstance(item, str) else len(item)
    raise FuncError(f"len of type {type_name(item)}")


def _fn_join(items: Any, sep: Any) -> str:
    if not isinstance(items, (list, tuple)) or not isinstance(sep, str):
        raise FuncError(f"wrong type for value; expected []string; got {type_name(items)}")
    return sep.join(go_str(v, top=False) for v in items)


def _fn_split(text: Any, sep: Any) -> list[str]:
    if not isinstance(text, str) or not isinstance(sep, str):
        raise FuncError(f"wrong type for value; expected string; got {type_name(text)}")
    if sep == "":
        return list(text)
    return text.split(sep)


def _string_fn(op: Callable[[str], str]) -> Callable[[Any], str]:
    def fn(text: Any) -> str:
        if not isinstance(text, str):
            raise FuncError(f"wrong type for value; expected string; got {type_name(text)}")
        return op(text)

    return fn


def _title(text: str) -> str:
    out: list[str] = []
    prev = " "
    for ch in text:
        out.append(ch.upper() if not (prev.isalnum() or prev == "_") else ch)
        prev = ch
    return "".join(out)


def _fn_truncate(value: Any, length: Any) -> str:
    text = go_str(value, top=False)
    n = int(length)
    return text if len(text) <= n else text[:n]


def _fn_pad(text: Any, left: Any, right: Any) -> str:
    return " " * int(left) + go_str(text, top=False) + " " * int(right)


def _comparable(a: Any, b: Any) -> tuple[Any, Any]:
    """Go's template comparisons: same basic kind, ints and floats compare by value."""
    num = (int, float)
    if isinstance(a, bool) != isinstance(b, bool):
        raise FuncError("incompatible types for comparison")
    if isinstance(a, num) and isinstance(b, num):
        return a, b
    if a is None or b is None or a is NO_VALUE or b is NO_VALUE:
        return (None if a is NO_VALUE else a), (None if b is NO_VALUE else b)
    if type(a) is not type(b):
        raise FuncError("incompatible types for comparison")
    if isinstance(a, (list, tuple, dict)):
        raise FuncError("non-comparable type")
    return a, b


def _fn_eq(a: Any, *others: Any) -> bool:
    if not others:
        raise FuncError("missing argument for comparison")
    for b in others:
        x, y = _comparable(a, b)
        if x == y:
            return True
    return False


def _fn_ne(a: Any, b: Any) -> bool:
    x, y = _comparable(a, b)
    return bool(x != y)


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def fn(a: Any, b: Any) -> bool:
        x, y = _comparable(a, b)
        if x is None or y is None or isinstance(x, bool):
            raise FuncError("invalid type for comparison")
        return op(x, y)

    return fn


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": go_json,
    "index": _fn_index,
    "slice": _fn_slice,
    "len": _fn_len,
    "join": _fn_join,
    "split": _fn_split,
    "lower": _string_fn(str.lower),
    "upper": _string_fn(str.upper),
    "title": _string_fn(_title),
    "truncate": _fn_truncate,
    "pad": _fn_pad,
    "printf": lambda fmt, *args: go_sprintf(fmt, *args) if isinstance(fmt, str) else _bad_printf(fmt),
    "print": lambda *args: _go_sprint(args),
    "println": lambda *args: " ".join(go_str(a, top=False) for a in args) + "\n",
    "eq": _fn_eq,
    "ne": _fn_ne,
    "lt": _ordered(lambda a, b: bool(a < b)),
    "le": _ordered(lambda a, b: bool(a <= b)),
    "gt": _ordered(lambda a, b: bool(a > b)),
    "ge": _ordered(lambda a, b: bool(a >= b)),
    "not": lambda value: not truth(value),
    # and/or are evaluated lazily by the executor; these entries make them "defined".
    "and": lambda *args: args[-1],
    "or": lambda *args: args[-1],
}


def _bad_printf(fmt: Any) -> str:
    raise FuncError(f"wrong type for value; expected string; got {type_name(fmt)}")


# ---------------------------------------------------------------------------------------------
# Executor
# ---------------------------------------------------------------------------------------------


