"""Go text/template syntax: the lexer, the syntax tree and the parser.

Owns: turning template source into a tree of nodes, with Go's error wording ("template:
:1:5: function "foo" not defined"). Must not: evaluate anything (`template` does) or know
the functions' behaviour (only their names, from `template_values.FUNCTIONS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NoReturn, Union

from pallet.client.template_values import FUNCTIONS
from pallet.v1.errors import InvalidArgument


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


