"""The Go-template subset behind every `--format`: docker's forms, Go's semantics and errors."""

from __future__ import annotations

from typing import Any

import pytest

from pallet.client.template import TemplateError, go_sprintf, parse, render
from pallet.v1.errors import InvalidArgument

DOC: dict[str, Any] = {
    "Id": "abc123",
    "Name": "/web",
    "Args": ["-c", "echo hi"],
    "State": {"Pid": 4242, "Running": True, "ExitCode": 0, "Status": "running"},
    "Config": {
        "Env": ["PATH=/bin", "A=1"],
        "Labels": {"tier": "web", "a": "<b>&"},
        "Entrypoint": None,
        "Cmd": ["sh"],
    },
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{.State.Pid}}", "4242"),
        ("{{.Name}}", "/web"),
        ("{{ .Name }}", "/web"),
        ("{{json .Config}}",
         '{"Env":["PATH=/bin","A=1"],"Labels":{"tier":"web","a":"\\u003cb\\u003e\\u0026"},'
         '"Entrypoint":null,"Cmd":["sh"]}'),
        ('{{index .Config.Labels "tier"}}', "web"),
        ('{{index .Config.Labels "missing"}}', ""),
        ('{{join .Args " "}}', "-c echo hi"),
        ("{{range .Config.Env}}{{.}} {{end}}", "PATH=/bin A=1 "),
        ("{{if .State.Running}}yes{{else}}no{{end}}", "yes"),
        ("{{if .State.ExitCode}}yes{{else}}no{{end}}", "no"),
        ("{{lower .State.Status}} {{upper .Name}}", "running /WEB"),
        ("{{len .Args}} {{len .Config.Labels}} {{len .Name}}", "2 2 4"),
        ('{{printf "%s has pid %d" .Name .State.Pid}}', "/web has pid 4242"),
        ('{{printf "%q" .Name}}', '"/web"'),
        ("{{.Args}}", "[-c echo hi]"),
        ("{{.Config.Labels}}", "map[a:<b>& tier:web]"),
        ("{{.Config.Entrypoint}}", "<no value>"),
        ("{{.State.Running}}", "true"),
        ("text only", "text only"),
        ("a {{- .Name -}} b", "a/webb"),
        ("a  {{- /* comment */ -}}  b", "ab"),
        ("{{/* comment */}}x", "x"),
        ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "a=<b>&;tier=web;"),
        ("{{range $i, $e := .Args}}{{$i}}{{$e}},{{end}}", "0-c,1echo hi,"),
        ("{{range .Missing}}x{{else}}none{{end}}", None),
        ("{{with .Config}}{{.Cmd}}{{end}}", "[sh]"),
        ("{{with .State.ExitCode}}x{{else}}zero{{end}}", "zero"),
        ("{{$n := .Name}}{{$n}}{{$n = \"x\"}}{{$n}}", "/webx"),
        ("{{$.Name}}{{range .Args}}{{$.Id}}{{end}}", "/webabc123abc123"),
        ("{{.Name | printf \"%s!\"}}", "/web!"),
        ("{{.Name | len | printf \"%03d\"}}", "004"),
        ('{{len (index .Config.Labels "tier")}}', "3"),
        ("{{(index .Args 1)}}", "echo hi"),
        ("{{if eq .State.Status \"exited\" \"running\"}}match{{end}}", "match"),
        ("{{if and .State.Running (gt .State.Pid 100)}}big{{end}}", "big"),
        ("{{or .Config.Entrypoint .Config.Cmd}}", "[sh]"),
        ("{{not .State.Running}}", "false"),
        ("{{if .State.ExitCode}}a{{else if .State.Running}}b{{else}}c{{end}}", "b"),
        ("{{range .Args}}{{if eq . \"-c\"}}{{continue}}{{end}}[{{.}}]{{end}}", "[echo hi]"),
        ("{{range .Args}}{{.}}{{break}}{{end}}", "-c"),
        ('{{split "a,b,c" ","}}', "[a b c]"),
        ('{{title "hello world"}}', "Hello World"),
        ('{{"tab\\there"}}', "tab\there"),
        ("{{`raw\\n`}}", "raw\\n"),
        ("{{0x10}} {{1.5}} {{-3}} {{true}}", "16 1.5 -3 true"),
        ("{{print 1 2 \"a\" \"b\" 3}}", "1 2ab3"),
        ("{{println \"x\"}}", "x\n"),
        ("{{slice .Args 1}}", "[echo hi]"),
    ],
)
def test_renders_like_go(source: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(TemplateError):
            render(source, DOC)
        return
    assert render(source, DOC) == expected


def test_method_like_callables_take_arguments() -> None:
    row = {"Label": lambda key: {"tier": "web"}.get(key, ""), "ID": "abc"}
    assert render('{{.Label "tier"}}-{{.Label "nope"}}-{{.ID}}', row) == "web--abc"


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("{{.Nope}}", 'map has no entry for key "Nope"'),
        ("{{.State.Nope}}", 'at <.State.Nope>: map has no entry for key "Nope"'),
        ("{{.Name.Length}}", "can't evaluate field Length in type string"),
        ("{{index .Args 9}}", "index out of range: 9"),
        ("{{len .State.Pid}}", "len of type int"),
        ("{{.Name 1}}", "can't give argument to non-function"),
        ("{{.Config.Entrypoint.X}}", "nil pointer evaluating"),
    ],
)
def test_execution_errors_name_the_problem(source: str, fragment: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(source, DOC)
    assert str(info.value).startswith("template: :1:")
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("{{.Name", "unclosed action"),
        ("{{if .Name}}x", "unexpected EOF"),
        ("{{end}}", "unexpected {{end}}"),
        ("{{else}}", "unexpected {{else}}"),
        ("{{foo .Name}}", 'function "foo" not defined'),
        ("{{$x}}", "undefined variable"),
        ("{{if}}{{end}}", "missing value for if"),
        ("{{.Name | 3}}", "non executable command in pipeline stage 2"),
        ("{{break}}", "{{break}} outside {{range}}"),
        ('{{"unterminated}}', "unterminated quoted string"),
        ("{{/* open", "unclosed comment"),
        ("{{nil}}", "nil is not a command"),
        ("{{template \"x\"}}", "not supported"),
        ("{{.Name}}}}{{if .A}}{{else}}{{else}}{{end}}", "expected end"),
    ],
)
def test_parse_errors_are_caught_before_running(source: str, fragment: str) -> None:
    with pytest.raises(TemplateError) as info:
        parse(source)
    assert str(info.value).startswith("template: ")
    assert fragment in str(info.value)


def test_template_errors_are_invalid_argument() -> None:
    assert issubclass(TemplateError, InvalidArgument)


def test_a_parsed_template_renders_many_objects() -> None:
    tmpl = parse("{{.Name}}={{.State.Pid}}")
    assert [tmpl.render({"Name": n, "State": {"Pid": p}}) for n, p in (("a", 1), ("b", 2))] == ["a=1", "b=2"]


@pytest.mark.parametrize(
    ("fmt", "args", "expected"),
    [
        ("%s=%d", ("a", 5), "a=5"),
        ("%5d|%-5d|%05d", (42, 42, 42), "   42|42   |00042"),
        ("%x %X %o %b", (255, 255, 8, 5), "ff FF 10 101"),
        ("%.2f %e", (3.14159, 1234.5), "3.14 1.234500e+03"),
        ("%v %v %v", ([1, "a"], {"k": 1}, None), "[1 a] map[k:1] <nil>"),
        ("%t %q", (True, 'say "hi"'), 'true "say \\"hi\\""'),
        ("%5s|%-5s|%.2s", ("ab", "ab", "abcdef"), "   ab|ab   |ab"),
        ("100%%", (), "100%"),
        ("%d", ("x",), "%!d(string=x)"),
        ("%s %s", ("a",), "a %!s(MISSING)"),
        ("%s", ("a", 2), "a%!(EXTRA int=2)"),
        ("%v", (1e6,), "1e+06"),
        ("%v", (123456.0,), "123456"),
    ],
)
def test_printf_follows_go_fmt(fmt: str, args: tuple[Any, ...], expected: str) -> None:
    assert go_sprintf(fmt, *args) == expected
