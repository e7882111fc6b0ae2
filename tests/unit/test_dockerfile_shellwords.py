"""Variable substitution in Dockerfile words (docker's shell.Lex rules)."""

from __future__ import annotations

import pytest

from pallet.daemon.builder.shellwords import DEFAULT, Lexer, SubstitutionError

ENV = {"A": "a", "EMPTY": "", "SP": "x y", "PATH": "/usr/local/bin:/usr/bin", "FILE": "archive.tar.gz"}


@pytest.mark.parametrize(
    "word, expected",
    [
        ("plain", "plain"),
        ("$A", "a"),
        ("${A}", "a"),
        ("pre${A}post", "preapost"),
        ("$Apost", ""),  # the name runs on: $Apost is unset
        ("$UNSET", ""),
        ("${UNSET}", ""),
        ("$", "$"),
        ("a$", "a$"),
        ("$ x", "$ x"),
        ("$/", "$/"),
        ("${UNSET:-def}", "def"),
        ("${EMPTY:-def}", "def"),
        ("${EMPTY-def}", ""),  # without the colon only an unset variable takes the default
        ("${UNSET-def}", "def"),
        ("${A:-def}", "a"),
        ("${A:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET:+alt}", ""),
        ("${UNSET:-${A}b}", "ab"),  # nested substitution in the default
        ("${UNSET:-a b}", "a b"),
        ("${A:?must}", "a"),
        ("\\$A", "$A"),
        ("\\${A}", "${A}"),
        ("a\\ b", "a b"),
        ("'$A'", "$A"),  # single quotes: nothing substituted
        ("'a\\b'", "a\\b"),  # nor escaped
        ('"$A"', "a"),
        ('"\\$A"', "$A"),
        ('"a\\b"', "a\\b"),  # in double quotes only " $ and the escape can be escaped
        ('"a\\"b"', 'a"b'),
        ('"a\\\\b"', "a\\b"),
        ("\"'$A'\"", "'a'"),
        ("'\"$A\"'", '"$A"'),
        ("${FILE%.gz}", "archive.tar"),
        ("${FILE%%.*}", "archive"),
        ("${FILE#*.}", "tar.gz"),
        ("${FILE##*.}", "gz"),
        ("${PATH%%:*}", "/usr/local/bin"),
        ("$1", ""),
        ("trailing\\", "trailing"),
    ],
)
def test_process_word(word: str, expected: str) -> None:
    assert DEFAULT.process_word(word, ENV) == expected


@pytest.mark.parametrize(
    "word, expected",
    [
        ("a b  c", ["a", "b", "c"]),
        ("$SP", ["x", "y"]),  # a variable's whitespace splits
        ('"$SP"', ["x y"]),  # unless quoted
        ("a\\ b c", ["a b", "c"]),
        ("'a b' c", ["a b", "c"]),
        ("${UNSET:-a b}", ["a", "b"]),
        ("", []),
        ("  ", []),
    ],
)
def test_process_words(word: str, expected: list[str]) -> None:
    assert DEFAULT.process_words(word, ENV) == expected


@pytest.mark.parametrize(
    "word, message",
    [
        ("${A", "missing '}'"),
        ("${", "missing '}'"),
        ("${}", "bad substitution"),
        ("${:-x}", "bad substitution"),
        ("${UNSET:-x", "missing '}'"),
        ("${UNSET:?}", "UNSET: is not allowed to be unset"),
        ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
        ("${UNSET?give it}", "UNSET: give it"),
        ("${A:x}", "unsupported modifier (x)"),
        ("'open", "matching single-quote"),
        ('"open', "matching double-quote"),
    ],
)
def test_errors(word: str, message: str) -> None:
    with pytest.raises(SubstitutionError) as info:
        DEFAULT.process_word(word, ENV)
    assert message in info.value.message
    assert repr(word) in info.value.message  # names the word it could not process


def test_backtick_escape() -> None:
    lexer = Lexer(escape="`")
    assert lexer.process_word("c:\\dir\\$A", ENV) == "c:\\dir\\a"
    assert lexer.process_word("`$A", ENV) == "$A"
    assert lexer.process_word('"`"x"', ENV) == '"x'


def test_skip_quotes_keeps_quotes_and_substitutes() -> None:
    lexer = Lexer(skip_quotes=True)
    assert lexer.process_word("echo '$A' \"$A\"", ENV) == "echo 'a' \"a\""


def test_skip_unset_leaves_the_variable() -> None:
    lexer = Lexer(skip_unset=True)
    assert lexer.process_word("$NOPE ${NOPE} ${NOPE:-x} $A", ENV) == "$NOPE ${NOPE} ${NOPE:-x} a"


def test_raw_quotes_keep_quotes() -> None:
    assert Lexer(raw_quotes=True).process_words("<<'EOF' \"x y\"", {}) == ["<<'EOF'", '"x y"']
