"""`.dockerignore`: which files of a build context are left out, by docker's rules.

Owns: reading the file (`read_patterns`, moby's ignorefile.ReadAll: a UTF-8 BOM dropped,
`#` lines skipped, whitespace trimmed, each pattern cleaned as Go's filepath.Clean does and
a leading `/` dropped), compiling patterns (`Matcher`, moby's patternmatcher: `*` and `?`
within one path component, `[...]` classes, `\\` escapes, `**` across components, `!` for
an exception, a later pattern overriding an earlier one) and matching a path with its
parents' results (`Matcher.match`, patternmatcher's MatchesUsingParentResults: a pattern
that matched a directory matches everything below it), and whether an excluded directory
must still be walked (`Matcher.may_include_below`: only when an exception pattern starts
with it, as docker's archive walk decides). Must not: walk directories or read files
(`buildcontext` does), or import anything of the daemon.

Where docker's regular expression would differ from its own documented glob (a `\\d` is
the digit class to Go's regexp, a literal `d` to filepath.Match), this follows the glob.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from pallet.v1.errors import InvalidArgument

_BOM = "\ufeff"
#: Regular-expression specials that mean nothing in a glob (patternmatcher's shouldEscape).
_ESCAPED = frozenset(".+()|{}$")


def clean(path: str) -> str:
    """Go's filepath.Clean on a slash path: `.` and empty components dropped, `..` taken
    lexically (kept at the start of a relative path), "." for nothing."""
    if not path:
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    joined = "/".join(out)
    if rooted:
        return "/" + joined
    return joined or "."


def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore file's text, as moby's ignorefile.ReadAll gives them."""
    patterns: list[str] = []
    for number, line in enumerate(text.splitlines()):
        if number == 0 and line.startswith(_BOM):
            line = line[len(_BOM):]
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def _check_glob(pattern: str) -> None:
    """Go's filepath.Match syntax: InvalidArgument for a malformed pattern (an unclosed or
    empty `[...]`, a bad range, a trailing `\\`)."""
    i, n = 0, len(pattern)
    bad = InvalidArgument(f"invalid .dockerignore pattern {pattern!r}: syntax error in pattern")
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise bad
            i += 2
            continue
        if ch != "[":
            i += 1
            continue
        i += 1
        if i < n and pattern[i] == "^":
            i += 1
        ranges = 0
        while True:
            if i >= n:
                raise bad
            if pattern[i] == "]" and ranges:
                i += 1
                break
            lo, i = _class_char(pattern, i, bad)
            if i < n and pattern[i] == "-":
                hi, i = _class_char(pattern, i + 1, bad)
                if hi < lo:
                    raise bad
            ranges += 1


def _class_char(pattern: str, i: int, bad: InvalidArgument) -> tuple[str, int]:
    if i >= len(pattern) or pattern[i] in "-]":
        raise bad
    if pattern[i] == "\\":
        if i + 1 >= len(pattern):
            raise bad
        return pattern[i + 1], i + 2
    return pattern[i], i + 1


@dataclass(slots=True)
class _Pattern:
    text: str  # cleaned, without its `!`
    exclusion: bool
    kind: str = "exact"  # exact, prefix, suffix, regexp
    regexp: re.Pattern[str] | None = None

    def matches(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regexp is not None
        return self.regexp.match(path) is not None


def _compile(text: str, exclusion: bool) -> _Pattern:
    """patternmatcher's Pattern.compile: the cheap kinds (exact, a `**` prefix or suffix
    around literal text) without a regular expression."""
    out = ["^"]
    kind = "exact"
    i, n, step = 0, len(text), 0
    while i < n:
        ch = text[i]
        i += 1
        if ch == "*":
            if i < n and text[i] == "*":
                i += 1
                if i < n and text[i] == "/":
                    i += 1  # `**/` is `**`
                if i >= n:
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out.append(".*")
                        kind = "regexp"
                else:
                    out.append("(.*/)?")
                    kind = "regexp"
                if step == 0:
                    kind = "suffix"
            else:
                out.append("[^/]*")
                kind = "regexp"
        elif ch == "?":
            out.append("[^/]")
            kind = "regexp"
        elif ch in _ESCAPED:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                out.append(re.escape(text[i]))
                i += 1
                kind = "regexp"
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
            kind = "regexp"
        else:
            out.append(ch)  # `^` too, as docker's: a class's negation, else an anchor
        step += 1
    pattern = _Pattern(text, exclusion, kind)
    if kind == "regexp":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "possible nested set" and the like
            try:
                # \Z, not $: Go's $ is the end of the text, Python's also before a last \n.
                pattern.regexp = re.compile("".join(out) + "\\Z")
            except re.error as exc:
                raise InvalidArgument(f"invalid .dockerignore pattern {text!r}: {exc}") from None
    return pattern


class Matcher:
    """Compiled patterns (as `read_patterns` gives them, or docker's exclude list)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in patterns:
            p = raw.strip()
            if not p:
                continue
            p = clean(p)
            exclusion = p.startswith("!")
            if exclusion:
                if len(p) == 1:
                    raise InvalidArgument('invalid .dockerignore pattern "!": an exception needs a pattern after it')
                p = p[1:]
            _check_glob(p)
            self.patterns.append(_compile(p, exclusion))
        #: Whether any pattern is an exception (`!...`).
        self.exclusions = any(p.exclusion for p in self.patterns)

    def match(self, path: str, parent: list[bool] | None = None) -> tuple[bool, list[bool]]:
        """(excluded, this path's results to pass as `parent` for the paths below it) for
        the clean slash path `path`; `parent` is its directory's results (None at the top,
        or when not known: then its parents are tried as patternmatcher does)."""
        matched = False
        results = [False] * len(self.patterns)
        for i, pattern in enumerate(self.patterns):
            hit = bool(parent[i]) if parent else False
            if not hit:
                if pattern.exclusion != matched:
                    continue
                hit = pattern.matches(path)
                if not hit and not parent and "/" in path:
                    dirs = path.split("/")[:-1]
                    hit = any(pattern.matches("/".join(dirs[: j + 1])) for j in range(len(dirs)))
            results[i] = hit
            if hit:
                matched = not pattern.exclusion
        return matched, results

    def excludes(self, path: str) -> bool:
        """Whether `path` (relative to the context) is left out; the context itself never is."""
        path = clean(path)
        if path == ".":
            return False
        return self.match(path)[0]

    def may_include_below(self, directory: str) -> bool:
        """Whether an excluded directory must still be walked: some exception pattern
        starts with it (docker's archive walk: `!dir/keep` keeps dir/keep)."""
        prefix = directory + "/"
        return any(p.exclusion and (p.text + "/").startswith(prefix) for p in self.patterns)
