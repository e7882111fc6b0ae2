"""Dockerfile text into instruction lines, as docker's parser reads it.

Owns: the line level of a Dockerfile: the parser directives at its top (`# syntax=`,
`# escape=`, `# check=`), comments, line continuations with the escape character (and
the empty or comment lines inside them), heredocs after `RUN`, `COPY` and `ADD`, the
split of a line into its instruction, its `--flags` and its arguments (JSON exec form or
shell form, name=value pairs, whitespace-separated words), each `Node` with the lines
it spans. Must not: give instructions meaning (`instructions` does), substitute
variables (`shellwords` does, when a step runs), or read files.

Errors are `DockerfileError`s: an `InvalidArgument` naming the file and the line, in
docker's words ("dockerfile parse error on line 3: unknown instruction: FORM").
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field

from pallet.daemon.builder.shellwords import Lexer, SubstitutionError
from pallet.v1.errors import InvalidArgument

#: Every instruction the builder knows (docker's `command` package).
INSTRUCTIONS = frozenset(
    {
        "add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck",
        "label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume",
        "workdir",
    }
)
_HEREDOC_INSTRUCTIONS = frozenset({"run", "copy", "add"})
_DIRECTIVES = frozenset({"syntax", "escape", "check"})

_DIRECTIVE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*")
_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_HEREDOC = re.compile(r"(\d*)<<(-?)([^<]*)")
_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)
_BOM = "\ufeff"


class DockerfileError(InvalidArgument):
    """A Dockerfile that cannot be built as written: says which file and line."""

    def __init__(self, message: str, *, file: str = "Dockerfile", line: int = 0) -> None:
        where = f"dockerfile parse error on line {line}" if line else "dockerfile parse error"
        super().__init__(f"{file}: {where}: {message}")
        self.file = file
        self.line = line
        self.reason = message


@dataclass(frozen=True, slots=True)
class Heredoc:
    """`<<EOF` ... `EOF`: `content` is the lines between, each with its newline."""

    name: str
    content: str
    expand: bool = True  # False when the delimiter was quoted: no substitution
    chomp: bool = False  # `<<-`: leading tabs are stripped
    fd: int = 0  # `3<<EOF` (RUN): the file descriptor it is meant for

    @property
    def text(self) -> str:
        """The content as the step sees it (leading tabs gone for `<<-`)."""
        return _LEADING_TABS.sub("", self.content) if self.chomp else self.content


@dataclass(frozen=True, slots=True)
class Node:
    """One instruction line (its continuations joined) and what its parser made of it."""

    keyword: str  # lower case ("run")
    original: str  # the whole logical line, continuations joined
    start_line: int
    end_line: int
    flags: tuple[str, ...] = ()  # "--from=build", as written
    args: tuple[str, ...] = ()  # instruction-specific (see `_parse_args`)
    json: bool = False  # exec form: args came from a JSON array
    heredocs: tuple[Heredoc, ...] = ()
    sub: Node | None = None  # ONBUILD's instruction

    @property
    def name(self) -> str:
        """The instruction as docker prints it ("RUN")."""
        return self.keyword.upper()


@dataclass(frozen=True, slots=True)
class Parsed:
    nodes: tuple[Node, ...]
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


class _Directives:
    """Parser directives: only at the very top, each once; the first line that is not one
    ends them."""

    def __init__(self) -> None:
        self.escape = "\\"
        self.seen: dict[str, str] = {}
        self.done = False
        self._continuation = _continuation_regex("\\")

    def look(self, line: str) -> None:
        if self.done:
            return
        match = _DIRECTIVE.fullmatch(line)
        if match is None or match.group(1).lower() not in _DIRECTIVES:
            self.done = True
            return
        key, value = match.group(1).lower(), match.group(2)
        if key in self.seen:
            raise ValueError(f"only one {key} parser directive can be used")
        self.seen[key] = value
        if key == "escape":
            if value not in ("`", "\\"):
                raise ValueError(f"invalid escape token '{value}' does not match ` or \\")
            self.escape = value
            self._continuation = _continuation_regex(value)

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """(the line without a trailing escape, whether the logical line ends here)."""
        match = self._continuation.search(line)
        if match is None:
            return line, True
        return line[: match.start()] + (match.group(1) or ""), False


def _continuation_regex(escape: str) -> re.Pattern[str]:
    e = re.escape(escape)
    # The escape as the last non-blank character continues the line, unless it is
    # itself escaped; alone on its line it continues too.
    return re.compile(rf"([^{e}]){e}[ \t]*$|^{e}[ \t]*$")


def _is_comment(line: str) -> bool:
    return line.rstrip("\r\n").lstrip().startswith("#")


def _lines(text: str) -> list[str]:
    """Lines with their endings kept (a heredoc's content keeps them)."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def parse(text: str | bytes, file: str = "Dockerfile") -> Parsed:
    """Every instruction line of a Dockerfile; DockerfileError for what does not parse."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DockerfileError(f"the Dockerfile is not UTF-8 text ({exc.reason} at byte {exc.start})", file=file) from None
    lines = _lines(text)
    if lines and lines[0].startswith(_BOM):
        lines[0] = lines[0][1:]
    d = _Directives()
    nodes: list[Node] = []
    warnings: list[str] = []
    i = 0
    current = 0

    def fail(message: str, line: int) -> DockerfileError:
        return DockerfileError(message, file=file, line=line)

    while i < len(lines):
        raw = lines[i]
        i += 1
        current += 1
        token = raw.rstrip("\r\n").lstrip()
        try:
            d.look(token)
        except ValueError as exc:
            raise fail(str(exc), current) from None
        if token.startswith("#"):
            token = ""
        start = current
        line, end_of_line = d.trim_continuation(token)
        if end_of_line and line == "":
            continue
        empty_continuation = False
        while not end_of_line and i < len(lines):
            raw = lines[i]
            i += 1
            current += 1
            piece = raw.rstrip("\r\n")
            if _is_comment(raw):
                continue  # a comment inside a continued line is left out
            if not piece.strip():
                empty_continuation = True
                continue
            piece, end_of_line = d.trim_continuation(piece)
            line += piece
        if empty_continuation:
            warnings.append("[WARNING]: Empty continuation line found in:\n    " + line)
        try:
            node = _node_from_line(line, d.escape, start, current)
        except ValueError as exc:
            raise fail(str(exc), start) from None
        if _can_have_heredocs(node):
            try:
                found = _heredocs_in(line)
            except SubstitutionError as exc:
                raise fail(exc.message, start) from None
            docs = []
            for doc in found:
                content: list[str] = []
                terminated = False
                while i < len(lines):
                    raw = lines[i]
                    i += 1
                    current += 1
                    candidate = raw.rstrip("\r\n")
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == doc.name:
                        terminated = True
                        break
                    content.append(raw)
                if not terminated:
                    raise fail(f"unterminated heredoc: no line {doc.name} ends the heredoc of {node.name}", start)
                docs.append(Heredoc(doc.name, "".join(content), doc.expand, doc.chomp, doc.fd))
            node = dataclasses.replace(node, heredocs=tuple(docs), end_line=current)
        nodes.append(node)
    if warnings:
        warnings.append("[WARNING]: Empty continuation lines will become errors in a future release.")
    if not nodes:
        raise DockerfileError("file with no instructions: the Dockerfile is empty", file=file, line=current)
    return Parsed(tuple(nodes), d.escape, dict(d.seen), tuple(warnings))


def _can_have_heredocs(node: Node) -> bool:
    target = node.sub if node.keyword == "onbuild" and node.sub is not None else node
    return target.keyword in _HEREDOC_INSTRUCTIONS and not target.json and "<<" in node.original


def _heredocs_in(line: str) -> list[Heredoc]:
    """The heredocs a line opens, in order (words like `<<EOF`, `<<-"EOF"`, `3<<EOF`)."""
    raw = Lexer(raw_quotes=True, raw_escapes=True, skip_unset=True)
    try:
        words = raw.process_words(line, {})
    except SubstitutionError:
        return []  # as docker: a line its lexer cannot read opens no heredoc
    return [doc for word in words if (doc := parse_heredoc(word)) is not None]


def parse_heredoc(word: str) -> Heredoc | None:
    """The heredoc a word opens, or None. Its content is expanded unless some part of
    the delimiter is quoted (`<<"EOF"`, `<<'EOF'`, `<<E"O"F`)."""
    match = _HEREDOC.fullmatch(word)
    if match is None or not match.group(3):
        return None
    fd = int(match.group(1) or "0")
    rest = match.group(3)
    plain = Lexer(skip_unset=True).process_words(rest, {})
    if len(plain) != 1:
        return None
    quoted = Lexer(skip_unset=True, raw_quotes=True).process_words(rest, {})
    if len(quoted) != 1:
        raise SubstitutionError(f"internal lexing of heredoc produced inconsistent results: {rest}")

    def quotes(s: str) -> int:
        return s.count("'") + s.count('"')

    return Heredoc(plain[0], "", quotes(plain[0]) == quotes(quoted[0]), match.group(2) == "-", fd)


def _node_from_line(line: str, escape: str, start: int, end: int) -> Node:
    parts = _WHITESPACE.split(line.strip(), maxsplit=1)
    keyword = parts[0].lower()
    flags: list[str] = []
    rest = ""
    if len(parts) == 2:
        rest, flags = _extract_flags(parts[1])
    if keyword not in INSTRUCTIONS:
        # As docker: the instruction is refused with its name as written.
        raise ValueError(f"unknown instruction: {parts[0].upper()}{_suggest(keyword)}")
    args, is_json, sub = _parse_args(keyword, rest, escape, start, end)
    return Node(keyword, line, start, end, tuple(flags), tuple(args), is_json, (), sub)


def _suggest(keyword: str) -> str:
    """" (did you mean from?)" for a near miss, as docker's suggestion does."""
    best, best_distance = "", 3
    for known in sorted(INSTRUCTIONS):
        distance = _distance(keyword, known)
        if distance < best_distance:
            best, best_distance = known, distance
    return f" (did you mean {best}?)" if best and best_distance <= 2 and len(keyword) > 2 else ""


def _distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            row.append(min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = row
    return previous[-1]


def _extract_flags(line: str) -> tuple[str, list[str]]:
    """The leading `--name[=value]` words (quotes and escapes inside them read) and the
    rest of the line. `--` alone ends the flags."""
    words: list[str] = []
    pos, n = 0, len(line)
    while True:
        while pos < n and line[pos].isspace():
            pos += 1
        if pos >= n:
            return "", words
        if not line.startswith("--", pos):
            return line[pos:], words
        word: list[str] = []
        blank_ok = False
        quote = ""
        while pos < n:
            ch = line[pos]
            if quote:
                if ch == quote:
                    quote = ""
                elif ch == "\\" and pos + 1 < n:
                    pos += 1
                    word.append(line[pos])
                elif ch != "\\":
                    word.append(ch)
                pos += 1
                continue
            if ch.isspace():
                break
            if ch in "'\"":
                quote = ch
                blank_ok = True
            elif ch == "\\":
                if pos + 1 < n:
                    pos += 1
                    word.append(line[pos])
            else:
                word.append(ch)
            pos += 1
        text = "".join(word)
        if text == "--":
            return line[pos:].lstrip() if pos < n else "", words
        if text or blank_ok:
            words.append(text)


class _NotJson(Exception):
    pass


def _parse_json(rest: str) -> list[str]:
    """The exec form: a JSON array of strings; _NotJson for anything else that is not
    an array (shell form then), ValueError for an array of non-strings."""
    text = rest.lstrip()
    if not text.startswith("["):
        raise _NotJson
    try:
        value = json.loads(text)
    except ValueError:
        raise _NotJson from None
    if not isinstance(value, list):
        raise _NotJson
    if not all(isinstance(item, str) for item in value):
        raise ValueError("when using JSON array syntax, arrays must be comprised of strings only")
    return value


def _parse_args(
    keyword: str, rest: str, escape: str, start: int, end: int
) -> tuple[list[str], bool, Node | None]:
    """An instruction's arguments as docker's line parsers make them:
    - maybe JSON (RUN, CMD, ENTRYPOINT, SHELL): the array, or [the text] in shell form;
    - maybe JSON to list (ADD, COPY, VOLUME): the array, or the whitespace-split words;
    - words (FROM, EXPOSE): whitespace-split; string (USER, WORKDIR, ...): [the text];
    - name=value (ENV, LABEL): [k1, v1, k2, v2, ...] with quotes kept for substitution;
    - name or name=value (ARG): the words; HEALTHCHECK: [type, *maybe JSON of the rest];
    - ONBUILD: its instruction parsed as a node of its own."""
    if keyword in ("run", "cmd", "entrypoint", "shell"):
        if not rest:
            return [], False, None
        try:
            return _parse_json(rest), True, None
        except _NotJson:
            return [rest], False, None
    if keyword in ("add", "copy", "volume"):
        try:
            return _parse_json(rest), True, None
        except _NotJson:
            return _split(rest), False, None
    if keyword in ("from", "expose"):
        return _split(rest), False, None
    if keyword in ("user", "workdir", "maintainer", "stopsignal"):
        return ([rest] if rest else []), False, None
    if keyword in ("env", "label"):
        return _name_values(rest, keyword.upper(), escape), False, None
    if keyword == "arg":
        return words(rest, escape), False, None
    if keyword == "healthcheck":
        parts = rest.split(None, 1)
        if not parts:
            return [], False, None
        kind = parts[0]
        command = parts[1] if len(parts) > 1 else ""
        cmd, is_json, _ = _parse_args("cmd", command, escape, start, end)
        return [kind, *cmd], is_json, None
    if keyword == "onbuild":
        if not rest.strip():
            return [], False, None
        sub = _node_from_line(rest, escape, start, end)
        return [rest], False, sub
    raise AssertionError(keyword)


def _split(rest: str) -> list[str]:
    text = rest.strip()
    return _WHITESPACE.split(text) if text else []


def words(rest: str, escape: str) -> list[str]:
    """Whitespace-separated words, a quoted or escaped space not splitting; the quotes
    and escapes stay in the words (substitution removes them later), as docker's
    parseWords."""
    out: list[str] = []
    word: list[str] = []
    in_word = False
    blank_ok = False
    quote = ""
    pos, n = 0, len(rest)
    while pos < n:
        ch = rest[pos]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if pos + 1 == n:
                    pos += 1
                    continue  # an escape at the end is dropped
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
            pos += 1
            continue
        if ch.isspace():
            if in_word and (word or blank_ok):
                out.append("".join(word))
            word, in_word, blank_ok = [], False, False
            pos += 1
            continue
        in_word = True
        if ch in "'\"":
            quote = ch
            blank_ok = True
        elif ch == escape:
            if pos + 1 == n:
                pos += 1
                continue
            word.append(ch)
            pos += 1
            ch = rest[pos]
        word.append(ch)
        pos += 1
    if in_word and (word or blank_ok):
        out.append("".join(word))
    return out


def _name_values(rest: str, key: str, escape: str) -> list[str]:
    """ENV and LABEL: `name=value ...`, or the old `name value` (the value is the rest
    of the line). Which one is decided by the first word: an `=` in it is the new form."""
    found = words(rest, escape)
    if not found:
        return []
    if "=" not in found[0]:
        parts = _WHITESPACE.split(rest.strip(), maxsplit=1)
        if len(parts) < 2:
            raise ValueError(f"{key} must have two arguments")
        return [parts[0], parts[1]]
    out: list[str] = []
    for word in found:
        if "=" not in word:
            raise ValueError(f"Syntax error - can't find = in {word!r}. Must be of the form: name=value")
        name, _, value = word.partition("=")
        if not name:
            raise ValueError(f"{key} names can not be blank")
        out += [name, value]
    return out
