"""Variable substitution in Dockerfile words, as docker's `shell.Lex` does it.

Owns: expanding `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`,
`${VAR+alt}`, `${VAR:?message}`, `${VAR?message}`, `${VAR#pattern}` (`##`, `%`, `%%`)
against an environment, with the Dockerfile's escape character and its single and
double quotes, into one word (`process_word`: ENV values, paths) or several
(`process_words`: split on unquoted whitespace). Must not: know instructions, or run
anything (this is not a shell: no command substitution, no globbing).

The rules are docker's, not POSIX sh's: inside double quotes only `"`, `$` and the escape
character can be escaped (any other escape is kept as written); `$` followed by no name
stays a `$`; an unset variable is empty. `raw_quotes`/`raw_escapes` keep the quotes and
escapes in the result (the parser uses them to read a heredoc's delimiter), and
`skip_quotes` treats quotes as ordinary characters (a heredoc's content).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass

from pallet.v1.errors import InvalidArgument

_SPECIAL_PARAMS = frozenset("@*#?-$!0")


class SubstitutionError(InvalidArgument):
    """A word whose variables cannot be substituted (`${`, `${x:?msg}`, ...)."""


@dataclass(frozen=True, slots=True)
class Lexer:
    escape: str = "\\"
    raw_quotes: bool = False
    raw_escapes: bool = False
    skip_quotes: bool = False
    # Leave a variable that is not set as written (`$X`): used where a word is read
    # before the values exist (a heredoc's delimiter).
    skip_unset: bool = False

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        """`word` with its variables substituted and its quotes removed, as one word."""
        return self._run(word, env)[0]

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """`word` substituted and split on whitespace that is neither quoted nor escaped
        (the whitespace that a variable's value brings splits too)."""
        return self._run(word, env)[1]

    def _run(self, word: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
        try:
            return _Scanner(self, word, env).stop_on("")
        except SubstitutionError as exc:
            raise SubstitutionError(f"failed to process {word!r}: {exc.message}") from None


DEFAULT = Lexer()


class _Words:
    """The words being made: whitespace from a variable or plain text splits them,
    quoted or escaped text never does."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.word = ""
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def result(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class _Scanner:
    def __init__(self, lexer: Lexer, text: str, env: Mapping[str, str]) -> None:
        self.lexer = lexer
        self.text = text
        self.pos = 0
        self.env = env

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch

    def stop_on(self, stop: str) -> tuple[str, list[str]]:
        """Read up to `stop` (consumed; "" = the end of the text)."""
        result: list[str] = []
        words = _Words()
        esc = self.lexer.escape
        while (ch := self.peek()) != "":
            if stop and ch == stop:
                self.next()
                return "".join(result), words.result()
            if ch == "$":
                value = self.dollar()
                result.append(value)
                words.add_string(value)  # a variable's whitespace splits words
            elif ch in "'\"" and not self.lexer.skip_quotes:
                value = self.single_quoted() if ch == "'" else self.double_quoted()
                result.append(value)
                words.add_raw(value)
            else:
                ch = self.next()
                if ch == esc:
                    if self.lexer.raw_escapes:
                        words.add_raw(ch)
                    ch = self.next()
                    if ch == "":
                        break  # an escape at the very end is dropped
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop:
            raise SubstitutionError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    def single_quoted(self) -> str:
        # Everything up to the next ' is literal; a ' cannot be escaped inside.
        out = []
        quote = self.next()
        if self.lexer.raw_quotes:
            out.append(quote)
        while True:
            ch = self.next()
            if ch == "":
                raise SubstitutionError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lexer.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quoted(self) -> str:
        out = []
        quote = self.next()
        if self.lexer.raw_quotes:
            out.append(quote)
        esc = self.lexer.escape
        while True:
            ch = self.peek()
            if ch == "":
                raise SubstitutionError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                if self.lexer.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == esc:
                following = self.peek()
                if following == "":
                    continue  # an escape at the end of the word is dropped
                if following in ('"', "$", esc):
                    # Only these can be escaped inside double quotes; any other escape
                    # stays as written.
                    if self.lexer.raw_escapes:
                        out.append(ch)
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        """A variable's name: letters, digits and _; digits alone; or one special
        parameter character."""
        ch = self.peek()
        if ch.isdigit():
            start = self.pos
            while self.peek().isdigit():
                self.next()
            return self.text[start:self.pos]
        if ch and ch in _SPECIAL_PARAMS:
            return self.next()
        start = self.pos
        while (c := self.peek()) and (c.isalnum() or c == "_") and c.isascii():
            self.next()
        return self.text[start:self.pos]

    def lookup(self, name: str) -> str | None:
        return self.env.get(name)

    def dollar(self) -> str:
        self.next()  # the $
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value = self.lookup(name)
            if value is None:
                return "$" + name if self.lexer.skip_unset else ""
            return value
        self.next()  # the {
        ch = self.peek()
        if ch == "":
            raise SubstitutionError("syntax error: missing '}'")
        if ch in "{}:":
            raise SubstitutionError("syntax error: bad substitution")
        name = self.name()
        if not name:
            raise SubstitutionError("syntax error: bad substitution")
        op = self.next()
        value = self.lookup(name)
        if op == "}":
            if value is None:
                return "${" + name + "}" if self.lexer.skip_unset else ""
            return value
        if op == "":
            raise SubstitutionError("syntax error: missing '}'")
        colon = op == ":"
        if colon:
            op = self.next()
            if op == "":
                raise SubstitutionError("syntax error: missing '}'")
        if op in "-+?":
            word = self._operand()
            if self.lexer.skip_unset and value is None:
                return "${" + name + (":" if colon else "") + op + word + "}"
            unset = value is None or (colon and value == "")
            if op == "-":
                return word if unset else (value or "")
            if op == "+":
                return "" if unset else word
            if value is None:
                raise SubstitutionError(f"{name}: {word or 'is not allowed to be unset'}")
            if colon and value == "":
                raise SubstitutionError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if colon:
            raise SubstitutionError(f"unsupported modifier ({op}) in substitution")
        if op in "#%":
            longest = self.peek() == op
            if longest:
                self.next()
            pattern = self._operand()
            return _trim(value or "", pattern, prefix=op == "#", longest=longest)
        raise SubstitutionError(f"unsupported modifier ({op}) in substitution")

    def _operand(self) -> str:
        try:
            return self.stop_on("}")[0]
        except SubstitutionError:
            if self.peek() == "":
                raise SubstitutionError("syntax error: missing '}'") from None
            raise


def _trim(value: str, pattern: str, *, prefix: bool, longest: bool) -> str:
    """`${v#p}`, `${v##p}`, `${v%p}`, `${v%%p}`: remove the shortest (longest) prefix or
    suffix of `value` that matches the shell pattern `pattern`."""
    regex = re.compile(fnmatch.translate(pattern), re.DOTALL)
    cuts = range(len(value) + 1)
    order = reversed(cuts) if longest else cuts
    for n in order:
        part = value[:n] if prefix else value[len(value) - n:]
        if regex.match(part):
            return value[n:] if prefix else value[: len(value) - n]
    return value
