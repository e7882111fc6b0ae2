"""A subset of Go's text/template, enough for docker's `--format` strings.

Owns: executing parsed templates over plain Python data (dicts, lists, str, int, float,
bool, None, and callables standing in for Go methods such as `.Label "k"`), and the public
`parse`/`render` API. Syntax lives in `template_syntax`, values and functions in
`template_values`. Must not: know about containers, images or gRPC; the caller builds the data.

Supported: text and `{{ }}` actions with `{{-`/`-}}` trimming, comments, fields (`.A.B`),
dot, variables (`$`, `$x := ...`, `$x = ...`), string/raw-string/number/bool/nil literals,
parenthesised pipelines (also with a field chain after them), pipelines with `|`,
`if`/`else if`/`else`, `range` (with `$i, $v :=`, `else`, `break`, `continue`), `with`/`else`,
and the functions in FUNCTIONS (docker's: json, join, split, lower, upper, title, truncate,
pad; Go's: index, len, printf, print, println, eq, ne, lt, le, gt, ge, and, or, not, slice).
Errors are TemplateError, a pallet InvalidArgument whose message starts with "template: ".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from pallet.client.template_syntax import (
    ActionNode,
    BranchNode,
    ChainNode,
    CommandNode,
    DotNode,
    FieldNode,
    FunctionNode,
    ListNode,
    LiteralNode,
    Operand,
    PipeNode,
    TemplateError,
    TextNode,
    VariableNode,
    _line_col,
    _Lexer,
    _Parser,
)
from pallet.client.template_values import (
    FUNCTIONS,
    NO_VALUE,
    FuncError,
    go_json,
    go_quote,
    go_sprintf,
    go_str,
    truth,
    type_name,
)

__all__ = ["Template", "TemplateError", "go_json", "go_quote", "go_sprintf", "go_str", "parse", "render"]


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
                except FuncError as exc:
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
        self.error(pos, at, f"can't evaluate field {name} in type {type_name(value)}")

    def _thunk(self, dot: Any, node: Operand) -> Callable[[], Any]:
        return lambda: self.operand(dot, node)

    def call_function(
        self, dot: Any, node: FunctionNode, args: Sequence[Operand], final: Any, has_final: bool
    ) -> Any:
        name = node.name
        if name in ("and", "or"):
            thunks: list[Callable[[], Any]] = [self._thunk(dot, a) for a in args]
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
        except FuncError as exc:
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
