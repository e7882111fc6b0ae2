"""A subset of Go's text/template, enough for docker's `--format` strings.

Owns: lexing, parsing and executing templates over plain Python data (dicts, lists, str,
int, float, bool, None, and callables standing in for Go methods such as `.Label "k"`).
Must not: know about containers, images or gRPC; the caller builds the data.

Supported: text and `{{ }}` actions with `{{-`/`-}}` trimming, comments, fields (`.A.B`),
dot, variables (`$`, `$x := ...`, `$x = ...`), string/raw-string/number/bool/nil literals,
parenthesised pipelines (also with a field chain after them), pipelines with `|`,
`if`/`else if`/`else`, `range` (with `$i, $v :=`, `else`, `break`, `continue`), `with`/`else`,
and the functions in FUNCTIONS (docker's: json, join, split, lower, upper, title, truncate,
pad; Go's: index, len, printf, print, println, eq, ne, lt, le, gt, ge, and, or, not, slice).
Errors are TemplateError, a pallet InvalidArgument whose message starts with "template: ".
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Union

from pallet.daemon.errors import InvalidArgument

__all__ = ["Template", "TemplateError", "go_quote", "go_sprintf", "go_str", "parse", "render"]


class TemplateError(InvalidArgument):
    """A template that cannot be parsed, or that failed while executing."""


# ---------------------------------------------------------------------------------------------
# Lexer
# ---------------------------------------------------------------------------------------------

# Token kinds.
TEXT = "text"
LEFT = "{{"
RIGHT = "}}"
FIELD = "field"  # ".Name" (one segment; chains are consecutive FIELD tokens without space)
DOT = "dot"
VARIABLE = "variable"  # "$" or "$name"
IDENT = "ident"
STRING = "string"
NUMBER = "number"
PIPE = "|"
LPAREN = "("
RPAREN = ")"
DECLARE = ":="
ASSIGN = "="
COMMA = ","
SPACE = "space"
EOF = "eof"

_KEYWORDS = frozenset(
    {"if", "else", "end", "range", "with", "break", "continue", "define", "template", "block"}
)
_SPACE_CHARS = " \t\r\n"
_ALNUM_EXTRA = "_"


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    value: str
    pos: int


def _is_alnum(ch: str) -> bool:
    return ch.isalnum() or ch in _ALNUM_EXTRA


class _Lexer:
    """Turns template source into tokens; text between actions is one TEXT token."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0
        self.tokens: list[Token] = []

    def error(self, pos: int, message: str) -> NoReturn:
        line, col = _line_col(self.src, pos)
        raise TemplateError(f"template: :{line}:{col}: {message}")

    def run(self) -> list[Token]:
        src = self.src
        while self.pos < len(src):
            start = src.find("{{", self.pos)
            if start < 0:
                self._text(src[self.pos :], self.pos)
                self.pos = len(src)
                break
            text_end = start
            trim_left = (
                start + 2 < len(src)
                and src[start + 2] == "-"
                and start + 3 < len(src)
                and src[start + 3] in _SPACE_CHARS
            )
            text = src[self.pos : text_end]
            if trim_left:
                text = text.rstrip(_SPACE_CHARS)
            self._text(text, self.pos)
            self.pos = start + (4 if trim_left else 2)
            self._action(start)
        self.tokens.append(Token(EOF, "", len(src)))
        return self.tokens

    def _text(self, text: str, pos: int) -> None:
        if text:
            self.tokens.append(Token(TEXT, text, pos))

    def _action(self, open_pos: int) -> None:
        src = self.src
        # A comment must fill the whole action: {{/* ... */}}, optionally with trim markers.
        if src.startswith("/*", self.pos):
            end = src.find("*/", self.pos + 2)
            if end < 0:
                self.error(open_pos, "unclosed comment")
            after = end + 2
            if src.startswith("}}", after):
                self.pos = after + 2
            elif after < len(src) and src[after] in _SPACE_CHARS and src.startswith("-}}", after + 1):
                self.pos = after + 4
                self._trim_following()
            else:
                self.error(end, "comment ends before closing delimiter")
            return
        self.tokens.append(Token(LEFT, "{{", open_pos))
        while True:
            if self.pos >= len(src):
                self.error(open_pos, "unclosed action")
            ch = src[self.pos]
            # " -}}" closes with right trim; "-}}" without a space before is a number's sign.
            if ch in _SPACE_CHARS:
                end = self.pos
                while end < len(src) and src[end] in _SPACE_CHARS:
                    end += 1
                if src.startswith("-}}", end):
                    self.tokens.append(Token(RIGHT, "}}", end))
                    self.pos = end + 3
                    self._trim_following()
                    return
                self.tokens.append(Token(SPACE, src[self.pos : end], self.pos))
                self.pos = end
                continue
            if src.startswith("}}", self.pos):
                self.tokens.append(Token(RIGHT, "}}", self.pos))
                self.pos += 2
                return
            self._token_in_action()

    def _trim_following(self) -> None:
        src = self.src
        while self.pos < len(src) and src[self.pos] in _SPACE_CHARS:
            self.pos += 1

    def _token_in_action(self) -> None:
        src = self.src
        start = self.pos
        ch = src[start]
        if ch == "|":
            self._emit(PIPE, "|", start, 1)
        elif ch == "(":
            self._emit(LPAREN, "(", start, 1)
        elif ch == ")":
            self._emit(RPAREN, ")", start, 1)
        elif ch == ",":
            self._emit(COMMA, ",", start, 1)
        elif src.startswith(":=", start):
            self._emit(DECLARE, ":=", start, 2)
        elif ch == "=":
            self._emit(ASSIGN, "=", start, 1)
        elif ch == '"':
            self._quoted(start)
        elif ch == "`":
            end = src.find("`", start + 1)
            if end < 0:
                self.error(start, "unterminated raw quoted string")
            self.tokens.append(Token(STRING, src[start + 1 : end], start))
            self.pos = end + 1
        elif ch == "'":
            self.error(start, "character constants are not supported")
        elif ch == "$":
            end = start + 1
            while end < len(src) and _is_alnum(src[end]):
                end += 1
            self.tokens.append(Token(VARIABLE, src[start:end], start))
            self.pos = end
        elif ch == ".":
            if start + 1 < len(src) and src[start + 1].isdigit():
                self._number(start)
                return
            end = start + 1
            while end < len(src) and _is_alnum(src[end]):
                end += 1
            if end == start + 1:
                self.tokens.append(Token(DOT, ".", start))
            else:
                self.tokens.append(Token(FIELD, src[start + 1 : end], start))
            self.pos = end
        elif ch.isdigit() or (ch in "+-" and start + 1 < len(src) and (src[start + 1].isdigit() or src[start + 1] == ".")):
            self._number(start)
        elif _is_alnum(ch):
            end = start
            while end < len(src) and _is_alnum(src[end]):
                end += 1
            self.tokens.append(Token(IDENT, src[start:end], start))
            self.pos = end
        else:
            self.error(start, f"unexpected {ch!r} in command")

    def _emit(self, kind: str, value: str, start: int, width: int) -> None:
        self.tokens.append(Token(kind, value, start))
        self.pos = start + width

    def _quoted(self, start: int) -> None:
        src = self.src
        i = start + 1
        while i < len(src):
            ch = src[i]
            if ch == "\\":
                i += 2
                continue
            if ch == "\n":
                break
            if ch == '"':
                self.tokens.append(Token(STRING, _unquote(src[start + 1 : i], self, start), start))
                self.pos = i + 1
                return
            i += 1
        self.error(start, "unterminated quoted string")

    def _number(self, start: int) -> None:
        src = self.src
        end = start
        if src[end] in "+-":
            end += 1
        while end < len(src) and (src[end].isalnum() or src[end] in "._" or (src[end] in "+-" and src[end - 1] in "eEpP")):
            end += 1
        self.tokens.append(Token(NUMBER, src[start:end], start))
        self.pos = end


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
            "\\": "\\", '"': '"', "'": "'"}


def _unquote(body: str, lexer: _Lexer, pos: int) -> str:
    """Go's strconv.Unquote for a double-quoted string's body."""
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= len(body):
            lexer.error(pos, "invalid syntax in quoted string")
        esc = body[i + 1]
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            i += 2
        elif esc in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or any(c not in "0123456789abcdefABCDEF" for c in digits):
                lexer.error(pos, "invalid syntax in quoted string")
            out.append(chr(int(digits, 16)))
            i += 2 + width
        elif esc in "01234567":
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or any(c not in "01234567" for c in digits):
                lexer.error(pos, "invalid syntax in quoted string")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            lexer.error(pos, "invalid syntax in quoted string")
    return "".join(out)


def _line_col(src: str, pos: int) -> tuple[int, int]:
    line = src.count("\n", 0, pos) + 1
    col = pos - (src.rfind("\n", 0, pos) + 1)
    return line, col


# ---------------------------------------------------------------------------------------------
# Syntax tree
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldNode:
    """`.A.B`: fields looked up from dot."""

    chain: tuple[str, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class DotNode:
    pos: int


@dataclass(frozen=True, slots=True)
class VariableNode:
    """`$x.A.B` (chain may be empty)."""

    name: str
    chain: tuple[str, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class LiteralNode:
    value: Any
    pos: int


@dataclass(frozen=True, slots=True)
class FunctionNode:
    name: str
    pos: int


@dataclass(frozen=True, slots=True)
class ChainNode:
    """`(pipeline).A.B`."""

    pipe: "PipeNode"
    chain: tuple[str, ...]
    pos: int


Operand = Union[FieldNode, DotNode, VariableNode, LiteralNode, FunctionNode, ChainNode]


@dataclass(frozen=True, slots=True)
class CommandNode:
    args: tuple[Operand, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class PipeNode:
    decl: tuple[str, ...]
    is_assign: bool
    cmds: tuple[CommandNode, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class TextNode:
    text: str


@dataclass(frozen=True, slots=True)
class ActionNode:
    pipe: PipeNode


@dataclass(frozen=True, slots=True)
class BranchNode:
    """if / range / with."""

    kind: str
    pipe: PipeNode
    body: "ListNode"
    else_body: "ListNode | None"


@dataclass(frozen=True, slots=True)
class LoopControlNode:
    kind: str  # "break" or "continue"
    pos: int


Node = Union[TextNode, ActionNode, BranchNode, LoopControlNode]


@dataclass(frozen=True, slots=True)
class ListNode:
    nodes: tuple[Node, ...] = field(default_factory=tuple)


# ---------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the token list, following text/template/parse."""

    def __init__(self, source: str, tokens: list[Token]) -> None:
        self.src = source
        self.tokens = tokens
        self.i = 0
        self.vars: list[list[str]] = [["$"]]
        self.range_depth = 0

    # -- token helpers ------------------------------------------------------------------------
    def peek(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def peek_non_space(self) -> Token:
        j = self.i
        while self.tokens[j].kind == SPACE:
            j += 1
        return self.tokens[j]

    def next_non_space(self) -> Token:
        tok = self.next()
        while tok.kind == SPACE:
            tok = self.next()
        return tok

    def error(self, pos: int, message: str) -> NoReturn:
        line, col = _line_col(self.src, pos)
        raise TemplateError(f"template: :{line}:{col}: {message}")

    def expect(self, kind: str, context: str) -> Token:
        tok = self.next_non_space()
        if tok.kind != kind:
            self.error(tok.pos, f"unexpected {_describe(tok)} in {context}")
        return tok

    # -- structure ----------------------------------------------------------------------------
    def parse(self) -> ListNode:
        body, end = self.item_list(top=True)
        if end is not None:
            self.error(end.pos, f"unexpected {{{{{end.value}}}}}")
        return body

    def item_list(self, top: bool = False) -> tuple[ListNode, Token | None]:
        """Items until EOF (top) or until {{end}}/{{else}}; returns the stopping keyword."""
        nodes: list[Node] = []
        while True:
            tok = self.peek()
            if tok.kind == EOF:
                if not top:
                    self.error(tok.pos, "unexpected EOF")
                return ListNode(tuple(nodes)), None
            if tok.kind == TEXT:
                self.next()
                nodes.append(TextNode(tok.value))
                continue
            self.next()  # LEFT
            key = self.peek_non_space()
            if key.kind == IDENT and key.value in ("end", "else"):
                self.next_non_space()
                if top:
                    self.error(key.pos, f"unexpected {{{{{key.value}}}}}")
                return ListNode(tuple(nodes)), key
            nodes.append(self.action())

    def action(self) -> Node:
        tok = self.peek_non_space()
        if tok.kind == IDENT and tok.value in _KEYWORDS:
            self.next_non_space()
            if tok.value in ("if", "range", "with"):
                return self.branch(tok.value, tok)
            if tok.value in ("break", "continue"):
                if self.range_depth == 0:
                    self.error(tok.pos, f"{{{{{tok.value}}}}} outside {{{{range}}}}")
                self.expect(RIGHT, tok.value)
                return LoopControlNode(tok.value, tok.pos)
            self.error(tok.pos, f"{{{{{tok.value}}}}} is not supported")
        return ActionNode(self.pipeline("command", RIGHT))

    def branch(self, kind: str, tok: Token) -> BranchNode:
        self.vars.append(list(self.vars[-1]))
        try:
            pipe = self.pipeline(kind, RIGHT)
            if kind == "range":
                self.range_depth += 1
            try:
                body, stop = self.item_list()
            finally:
                if kind == "range":
                    self.range_depth -= 1
            else_body: ListNode | None = None
            assert stop is not None
            if stop.value == "else":
                nxt = self.peek_non_space()
                # "{{else if ...}}" is shorthand for "{{else}}{{if ...}}...{{end}}" sharing our end.
                if kind == "if" and nxt.kind == IDENT and nxt.value == "if":
                    self.next_non_space()
                    nested = self.branch("if", nxt)
                    return BranchNode(kind, pipe, body, ListNode((nested,)))
                self.expect(RIGHT, "else")
                else_body, stop = self.item_list()
                assert stop is not None
                if stop.value != "end":
                    self.error(stop.pos, "expected end; found {{else}}")
            self.expect(RIGHT, "end")
            return BranchNode(kind, pipe, body, else_body)
        finally:
            self.vars.pop()

    def pipeline(self, context: str, end: str) -> PipeNode:
        start = self.peek_non_space()
        decl: list[str] = []
        is_assign = False
        # Variable declarations: "$x :=", "$x =", "$i, $v :=" (the last only in range).
        save = self.i
        tok = self.next_non_space()
        if tok.kind == VARIABLE:
            after = self.next_non_space()
            if after.kind in (DECLARE, ASSIGN):
                decl = [tok.value]
                is_assign = after.kind == ASSIGN
            elif after.kind == COMMA and context == "range":
                second = self.expect(VARIABLE, "range declaration")
                self.expect(DECLARE, "range declaration")
                decl = [tok.value, second.value]
            else:
                self.i = save
        else:
            self.i = save
        for name in decl:
            if is_assign:
                if name not in self.vars[-1]:
                    self.error(tok.pos, f"undefined variable {name!r}")
            else:
                self.vars[-1].append(name)
        cmds: list[CommandNode] = []
        while True:
            tok = self.peek_non_space()
            if tok.kind == end:
                self.next_non_space()
                break
            cmds.append(self.command(end))
            tok = self.peek_non_space()
            if tok.kind == PIPE:
                self.next_non_space()
                if self.peek_non_space().kind == end:
                    self.error(tok.pos, "missing command after |")
                continue
            if tok.kind != end:
                self.error(tok.pos, f"unexpected {_describe(tok)} in {context}")
        if not cmds:
            self.error(start.pos, f"missing value for {context}")
        for stage, extra in enumerate(cmds[1:], start=2):
            if isinstance(extra.args[0], (LiteralNode, DotNode)):
                self.error(extra.pos, f"non executable command in pipeline stage {stage}")
        return PipeNode(tuple(decl), is_assign, tuple(cmds), start.pos)

    def command(self, end: str) -> CommandNode:
        args: list[Operand] = []
        start = self.peek_non_space()
        while True:
            tok = self.peek_non_space()
            if tok.kind in (end, PIPE, RPAREN) or tok.kind in (RIGHT, EOF):
                break
            args.append(self.operand())
            nxt = self.peek()
            if nxt.kind not in (SPACE, end, PIPE, RPAREN, RIGHT, EOF):
                self.error(nxt.pos, f"unexpected {_describe(nxt)} in operand")
        if not args:
            self.error(start.pos, "empty command")
        first = args[0]
        if isinstance(first, LiteralNode) and first.value is None:
            self.error(first.pos, "nil is not a command")
        return CommandNode(tuple(args), start.pos)

    def operand(self) -> Operand:
        tok = self.next_non_space()
        node: Operand
        if tok.kind == FIELD:
            node = FieldNode((tok.value, *self.chain()), tok.pos)
        elif tok.kind == DOT:
            node = DotNode(tok.pos)
        elif tok.kind == VARIABLE:
            if tok.value not in self.vars[-1]:
                self.error(tok.pos, f"undefined variable {tok.value!r}")
            node = VariableNode(tok.value, self.chain(), tok.pos)
        elif tok.kind == STRING:
            node = LiteralNode(tok.value, tok.pos)
        elif tok.kind == NUMBER:
            node = LiteralNode(_number(tok, self), tok.pos)
        elif tok.kind == IDENT:
            if tok.value in ("true", "false"):
                node = LiteralNode(tok.value == "true", tok.pos)
            elif tok.value == "nil":
                node = LiteralNode(None, tok.pos)
            elif tok.value in _KEYWORDS:
                self.error(tok.pos, f"unexpected {{{{{tok.value}}}}} in operand")
            elif tok.value not in FUNCTIONS:
                self.error(tok.pos, f'function "{tok.value}" not defined')
            else:
                node = FunctionNode(tok.value, tok.pos)
        elif tok.kind == LPAREN:
            pipe = self.pipeline("parenthesized pipeline", RPAREN)
            node = ChainNode(pipe, self.chain(), tok.pos)
        else:
            self.error(tok.pos, f"unexpected {_describe(tok)} in operand")
        return node

    def chain(self) -> tuple[str, ...]:
        names: list[str] = []
        while self.peek().kind == FIELD:
            names.append(self.next().value)
        return tuple(names)


def _describe(tok: Token) -> str:
    if tok.kind == EOF:
        return "EOF"
    if tok.kind == RIGHT:
        return '"}}"'
    if tok.kind == FIELD:
        return f"<.{tok.value}>"
    return f"{tok.value!r}" if tok.kind != SPACE else "space"


def _number(tok: Token, parser: _Parser) -> int | float:
    text = tok.value.replace("_", "")
    try:
        return int(text, 0)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        parser.error(tok.pos, f"bad number syntax: {tok.value!r}")


# ---------------------------------------------------------------------------------------------
# Values: Go's printing and truth
# ---------------------------------------------------------------------------------------------


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
    """json.Marshal: compact, HTML-escaped like Go."""
    if value is NO_VALUE:
        value = None
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _json_default(value: Any) -> Any:
    raise TypeError(f"json: unsupported type: {type(value).__name__}")


def _type_name(value: Any) -> str:
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
        extra = ", ".join(f"{_type_name(a)}={go_str(a, False)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _format_one(verb: str, flags: str, width: str, prec: str | None, arg: Any) -> str:
    bad = f"%!{verb}({_type_name(arg)}={go_str(arg, False)})"
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
        return f"%!{verb}({_type_name(arg)}={go_str(arg, False)})"
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


class _FuncError(Exception):
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
                raise _FuncError(f"cannot index slice/array with type {_type_name(key)}")
            if not 0 <= key < len(item):
                raise _FuncError(f"index out of range: {key}")
            item = item[key] if not isinstance(item, str) else ord(item[key])
        elif item is None or item is NO_VALUE:
            raise _FuncError("index of untyped nil")
        else:
            raise _FuncError(f"can't index item of type {_type_name(item)}")
    return item


def _fn_slice(item: Any, *bounds: Any) -> Any:
    if not isinstance(item, (list, tuple, str)):
        raise _FuncError(f"can't slice item of type {_type_name(item)}")
    if len(bounds) > 2:
        raise _FuncError("too many slice indexes")
    nums = [int(b) for b in bounds]
    start = nums[0] if nums else 0
    end = nums[1] if len(nums) > 1 else len(item)
    if not 0 <= start <= end <= len(item):
        raise _FuncError(f"slice index out of range: {start}:{end}")
    return item[start:end]


def _fn_len(item: Any) -> int:
    if isinstance(item, (str, list, tuple, dict)):
        return len(item.encode()) if isinstance(item, str) else len(item)
    raise _FuncError(f"len of type {_type_name(item)}")


def _fn_join(items: Any, sep: Any) -> str:
    if not isinstance(items, (list, tuple)) or not isinstance(sep, str):
        raise _FuncError(f"wrong type for value; expected []string; got {_type_name(items)}")
    return sep.join(go_str(v, top=False) for v in items)


def _fn_split(text: Any, sep: Any) -> list[str]:
    if not isinstance(text, str) or not isinstance(sep, str):
        raise _FuncError(f"wrong type for value; expected string; got {_type_name(text)}")
    if sep == "":
        return list(text)
    return text.split(sep)


def _string_fn(op: Callable[[str], str]) -> Callable[[Any], str]:
    def fn(text: Any) -> str:
        if not isinstance(text, str):
            raise _FuncError(f"wrong type for value; expected string; got {_type_name(text)}")
        return op(text)

    return fn


def _title(text: str) -> str:
    out: list[str] = []
    prev = " "
    for ch in text:
        out.append(ch.upper() if not (prev.isalnum() or prev == "_") else ch)
        prev = ch
    return "".join(out)


def _fn_truncate(text: Any, length: Any) -> str:
    text = go_str(text, top=False)
    n = int(length)
    return text if len(text) <= n else text[:n]


def _fn_pad(text: Any, left: Any, right: Any) -> str:
    return " " * int(left) + go_str(text, top=False) + " " * int(right)


def _comparable(a: Any, b: Any) -> tuple[Any, Any]:
    """Go's template comparisons: same basic kind, ints and floats compare by value."""
    num = (int, float)
    if isinstance(a, bool) != isinstance(b, bool):
        raise _FuncError("incompatible types for comparison")
    if isinstance(a, num) and isinstance(b, num):
        return a, b
    if a is None or b is None or a is NO_VALUE or b is NO_VALUE:
        return (None if a is NO_VALUE else a), (None if b is NO_VALUE else b)
    if type(a) is not type(b):
        raise _FuncError("incompatible types for comparison")
    if isinstance(a, (list, tuple, dict)):
        raise _FuncError("non-comparable type")
    return a, b


def _fn_eq(a: Any, *others: Any) -> bool:
    if not others:
        raise _FuncError("missing argument for comparison")
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
            raise _FuncError("invalid type for comparison")
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
    raise _FuncError(f"wrong type for value; expected string; got {_type_name(fmt)}")


# ---------------------------------------------------------------------------------------------
# Executor
# ---------------------------------------------------------------------------------------------


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Executor:
    def __init__(self, source: str, root: Any) -> None:
        self.src = source
        self.vars: list[tuple[str, Any]] = [("$", root)]
        self.out: list[str] = []

    def error(self, pos: int, at: str, message: str) -> NoReturn:
        line, col = _line_col(self.src, pos)
        raise TemplateError(f'template: :{line}:{col}: executing "" at <{at}>: {message}')

    def walk(self, dot: Any, node: ListNode) -> None:
        for item in node.nodes:
            if isinstance(item, TextNode):
                self.out.append(item.text)
            elif isinstance(item, ActionNode):
                value = self.pipe(dot, item.pipe)
                if not item.pipe.decl:
                    self.out.append(go_str(value))
            elif isinstance(item, BranchNode):
                self.branch(dot, item)
            elif item.kind == "break":
                raise _Break()
            else:
                raise _Continue()

    def branch(self, dot: Any, node: BranchNode) -> None:
        mark = len(self.vars)
        try:
            if node.kind == "range":
                self.range(dot, node)
                return
            value = self.pipe(dot, node.pipe)
            if truth(value):
                self.walk(value if node.kind == "with" else dot, node.body)
            elif node.else_body is not None:
                self.walk(dot, node.else_body)
        finally:
            del self.vars[mark:]

    def range(self, dot: Any, node: BranchNode) -> None:
        decl = node.pipe.decl
        plain = PipeNode((), False, node.pipe.cmds, node.pipe.pos)
        value = self.pipe(dot, plain)
        items: list[tuple[Any, Any]]
        if isinstance(value, dict):
            items = sorted(value.items(), key=lambda kv: str(kv[0]))
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        elif value is None or value is NO_VALUE:
            items = []
        else:
            self.error(node.pipe.pos, "range", f"range can't iterate over {go_str(value, False)}")
        if not items:
            if node.else_body is not None:
                self.walk(dot, node.else_body)
            return
        mark = len(self.vars)
        for key, elem in items:
            del self.vars[mark:]
            if len(decl) == 1:
                self.vars.append((decl[0], elem))
            elif len(decl) == 2:
                self.vars.append((decl[0], key))
                self.vars.append((decl[1], elem))
            try:
                self.walk(elem, node.body)
            except _Break:
                break
            except _Continue:
                continue

    def pipe(self, dot: Any, pipe: PipeNode) -> Any:
        value: Any = NO_VALUE
        for k, cmd in enumerate(pipe.cmds):
            value = self.command(dot, cmd, value if k > 0 else NO_VALUE, has_final=k > 0)
        for name in pipe.decl:
            if pipe.is_assign:
                for idx in range(len(self.vars) - 1, -1, -1):
                    if self.vars[idx][0] == name:
                        self.vars[idx] = (name, value)
                        break
            else:
                self.vars.append((name, value))
        return value

    def command(self, dot: Any, cmd: CommandNode, final: Any, has_final: bool) -> Any:
        first = cmd.args[0]
        rest = cmd.args[1:]
        if isinstance(first, FunctionNode):
            return self.call_function(dot, first, rest, final, has_final)
        if isinstance(first, (FieldNode, VariableNode, ChainNode)):
            return self.evaluate_chain(dot, first, rest, final, has_final)
        if rest or has_final:
            at = "." if isinstance(first, DotNode) else go_str(getattr(first, "value", ""), False)
            self.error(cmd.pos, at, f"can't give argument to non-function {at}")
        return self.operand(dot, first)

    def operand(self, dot: Any, node: Operand) -> Any:
        if isinstance(node, LiteralNode):
            return node.value
        if isinstance(node, DotNode):
            return dot
        if isinstance(node, FunctionNode):
            return self.call_function(dot, node, (), NO_VALUE, False)
        return self.evaluate_chain(dot, node, (), NO_VALUE, False)

    def evaluate_chain(
        self,
        dot: Any,
        node: FieldNode | VariableNode | ChainNode,
        args: Sequence[Operand],
        final: Any,
        has_final: bool,
    ) -> Any:
        if isinstance(node, FieldNode):
            value, chain, at = dot, node.chain, ""
        elif isinstance(node, VariableNode):
            value = self.variable(node)
            chain, at = node.chain, node.name
        else:
            value = self.pipe(dot, node.pipe)
            chain, at = node.chain, "(...)"
        for k, name in enumerate(chain):
            at = f"{at}.{name}"
            is_last = k == len(chain) - 1
            value = self.field(value, name, node.pos, at)
            if callable(value):
                call_args = [self.operand(dot, a) for a in args] if is_last else []
                if is_last and has_final:
                    call_args.append(final)
                try:
                    value = value(*call_args)
                except _FuncError as exc:
                    self.error(node.pos, at, str(exc))
                except TypeError as exc:
                    self.error(node.pos, at, f"wrong number of args for {name}: {exc}")
                continue
            if is_last and (args or has_final):
                self.error(node.pos, at, f"can't give argument to non-function {at}")
        if not chain and (args or has_final):
            self.error(node.pos, at, f"can't give argument to non-function {at}")
        return value

    def variable(self, node: VariableNode) -> Any:
        for name, value in reversed(self.vars):
            if name == node.name:
                return value
        self.error(node.pos, node.name, f"undefined variable: {node.name}")

    def field(self, value: Any, name: str, pos: int, at: str) -> Any:
        if isinstance(value, dict):
            if name in value:
                return value[name]
            self.error(pos, at, f'map has no entry for key "{name}"')
        if value is None or value is NO_VALUE:
            self.error(pos, at, f"nil pointer evaluating interface {{}}.{name}")
        self.error(pos, at, f"can't evaluate field {name} in type {_type_name(value)}")

    def call_function(
        self, dot: Any, node: FunctionNode, args: Sequence[Operand], final: Any, has_final: bool
    ) -> Any:
        name = node.name
        if name in ("and", "or"):
            thunks: list[Callable[[], Any]] = [lambda a=a: self.operand(dot, a) for a in args]
            if has_final:
                thunks.append(lambda: final)
            if not thunks:
                self.error(node.pos, name, f"wrong number of args for {name}: want at least 1 got 0")
            result: Any = NO_VALUE
            for thunk in thunks:
                result = thunk()
                if truth(result) != (name == "and"):
                    return result
            return result
        values = [self.operand(dot, a) for a in args]
        if has_final:
            values.append(final)
        fn = FUNCTIONS[name]
        try:
            return fn(*values)
        except _FuncError as exc:
            self.error(node.pos, name, f"error calling {name}: {exc}")
        except TypeError:
            self.error(node.pos, name, f"wrong number of args for {name}: got {len(values)}")


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template; execute it with `render(data)`."""

    source: str
    tree: ListNode

    def render(self, data: Any) -> str:
        executor = _Executor(self.source, data)
        try:
            executor.walk(data, self.tree)
        except (_Break, _Continue):  # pragma: no cover - the parser rejects them outside range
            pass
        return "".join(executor.out)


def parse(source: str) -> Template:
    """Parse a template; raises TemplateError on a syntax error."""
    tokens = _Lexer(source).run()
    return Template(source, _Parser(source, tokens).parse())


def render(source: str, data: Any) -> str:
    """Parse and execute in one go."""
    return parse(source).render(data)


def _iter_tokens(source: str) -> Iterator[Token]:  # pragma: no cover - debugging aid
    yield from _Lexer(source).run()
