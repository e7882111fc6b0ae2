"""The Dockerfile parser: lines, directives, continuations, heredocs, forms, instructions
and stages, with docker's tricky cases and its error words."""

from __future__ import annotations

import pytest

from pallet.daemon.builder.dockerfile import DockerfileError, parse
from pallet.daemon.builder.instructions import (
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
    parse_dockerfile,
    parse_duration,
)
from pallet.v1.errors import InvalidArgument


def only(text: str) -> object:
    """The one instruction after a FROM line."""
    (stage,) = parse_dockerfile("FROM busybox\n" + text).stages
    (command,) = stage.commands
    return command


def error(text: str, file: str = "Dockerfile") -> DockerfileError:
    with pytest.raises(DockerfileError) as info:
        parse_dockerfile(text, file)
    assert isinstance(info.value, InvalidArgument)
    return info.value


# -- lines ----------------------------------------------------------------------------


def test_comments_and_blank_lines_are_skipped_and_lines_counted() -> None:
    nodes = parse("# a comment\n\nFROM busybox\n   # indented comment\nRUN true\n").nodes
    assert [(n.keyword, n.start_line, n.end_line) for n in nodes] == [("from", 3, 3), ("run", 5, 5)]


def test_instruction_names_are_case_insensitive() -> None:
    nodes = parse("from busybox\nRuN true\n").nodes
    assert [n.keyword for n in nodes] == ["from", "run"]


def test_continuation_joins_lines_keeping_their_whitespace() -> None:
    run = only("RUN echo a \\\n    b \\\n c\n")
    assert isinstance(run, Run)
    assert run.command == ("echo a     b  c",)
    assert (run.node.start_line, run.node.end_line) == (2, 4)


def test_continuation_skips_comment_lines_and_warns_of_empty_ones() -> None:
    parsed = parse("FROM busybox\nRUN echo a \\\n# a comment\n\n  b\nRUN next\n")
    run = parsed.nodes[1]
    assert run.args == ("echo a   b",)
    assert (run.start_line, run.end_line) == (2, 5)
    assert parsed.nodes[2].start_line == 6
    assert parsed.warnings[0] == "[WARNING]: Empty continuation line found in:\n    RUN echo a   b"


def test_escape_with_trailing_blanks_still_continues() -> None:
    assert parse("FROM x\nRUN a \\  \t\n b\n").nodes[1].args == ("a  b",)


def test_escaped_escape_at_the_end_does_not_continue() -> None:
    nodes = parse("FROM x\nRUN echo a\\\\\nRUN b\n").nodes
    assert [n.args for n in nodes[1:]] == [("echo a\\\\",), ("b",)]


def test_continuation_at_end_of_file() -> None:
    assert parse("FROM x\nRUN echo hi \\").nodes[1].args == ("echo hi",)


def test_crlf_and_bom() -> None:
    nodes = parse("\ufeffFROM busybox\r\nRUN a \\\r\n b\r\n").nodes
    assert nodes[0].args == ("busybox",)
    assert nodes[1].args == ("a  b",)


def test_empty_dockerfile_is_refused() -> None:
    e = error("# only a comment\n\n")
    assert "file with no instructions" in e.message


def test_not_utf8_is_refused() -> None:
    with pytest.raises(DockerfileError, match="not UTF-8"):
        parse(b"FROM \xff\n")


# -- directives -------------------------------------------------------------------------


def test_directives_at_the_top() -> None:
    parsed = parse("# syntax=docker/dockerfile:1\n#escape=`\nFROM x\nRUN dir c:\\\nRUN a `\n b\n")
    assert parsed.directives == {"syntax": "docker/dockerfile:1", "escape": "`"}
    assert parsed.escape == "`"
    # With ` as escape, a trailing backslash is just a character.
    assert [n.args for n in parsed.nodes[1:]] == [("dir c:\\",), ("a  b",)]


def test_a_directive_after_a_comment_is_a_comment() -> None:
    parsed = parse("# hello\n# escape=`\nFROM x\nRUN a \\\n b\n")
    assert parsed.escape == "\\"
    assert parsed.nodes[1].args == ("a  b",)


def test_a_directive_after_an_instruction_is_a_comment() -> None:
    assert parse("FROM x\n# escape=`\n").escape == "\\"


def test_unknown_directive_ends_the_directives() -> None:
    parsed = parse("# foo=bar\n# escape=`\nFROM x\n")
    assert parsed.escape == "\\"
    assert parsed.directives == {}


def test_a_directive_twice_is_refused() -> None:
    e = error("# escape=\\\n# escape=`\nFROM x\n")
    assert "only one escape parser directive can be used" in e.message
    assert e.line == 2


def test_a_bad_escape_is_refused() -> None:
    assert "invalid escape token 'x' does not match ` or \\" in error("# escape=x\nFROM a\n").message


# -- forms ------------------------------------------------------------------------------


def test_exec_and_shell_forms() -> None:
    run = only('RUN ["echo", "a b"]')
    assert isinstance(run, Run) and run.command == ("echo", "a b") and not run.shell_form
    run = only("RUN echo [not json")
    assert isinstance(run, Run) and run.command == ("echo [not json",) and run.shell_form
    # Not valid JSON (single quotes, trailing text): the shell form, as docker.
    cmd = only("CMD ['a']")
    assert isinstance(cmd, Cmd) and cmd.shell_form and cmd.command == ("['a']",)
    cmd = only('CMD ["a"] b')
    assert isinstance(cmd, Cmd) and cmd.shell_form and cmd.command == ('["a"] b',)


def test_exec_form_of_non_strings_is_refused() -> None:
    e = error('FROM x\nRUN ["echo", 1]\n')
    assert "arrays must be comprised of strings only" in e.message
    assert e.line == 2


def test_copy_and_volume_lists() -> None:
    copy = only("COPY a b   /dest/")
    assert isinstance(copy, Copy) and copy.sources == ("a", "b") and copy.dest == "/dest/"
    copy = only('COPY ["a b", "/dest dir/"]')
    assert isinstance(copy, Copy) and copy.sources == ("a b",) and copy.dest == "/dest dir/"
    volume = only("VOLUME /a /b")
    assert isinstance(volume, Volume) and volume.paths == ("/a", "/b")
    volume = only('VOLUME ["/a"]')
    assert isinstance(volume, Volume) and volume.paths == ("/a",)


# -- flags ------------------------------------------------------------------------------


def test_copy_flags() -> None:
    copy = only("COPY --from=build --chown=app:app --chmod=0755 --link src /dst")
    assert isinstance(copy, Copy)
    assert (copy.from_stage, copy.chown, copy.chmod, copy.link) == ("build", "app:app", "0755", True)
    assert copy.sources == ("src",)


def test_quoted_flag_values_and_double_dash() -> None:
    copy = only('COPY --chown="a b" -- --odd /dst')
    assert isinstance(copy, Copy)
    assert copy.chown == "a b" and copy.sources == ("--odd",)


def test_flag_errors() -> None:
    assert "unknown flag: --form" in error("FROM x\nCOPY --form=a b c\n").message
    assert "duplicate flag specified: --from" in error("FROM x\nCOPY --from=a --from=b c d\n").message
    assert "missing a value on flag: --chown" in error("FROM x\nCOPY --chown b c\n").message
    assert "unknown flag: --from" in error("FROM x\nADD --from=a b c\n").message
    assert "expecting boolean value for flag --link" in error("FROM x\nCOPY --link=maybe b c\n").message


def test_flags_stop_at_the_first_word() -> None:
    run = only("RUN echo --not-a-flag")
    assert isinstance(run, Run) and run.command == ("echo --not-a-flag",)


# -- instructions -----------------------------------------------------------------------


def test_from() -> None:
    df = parse_dockerfile("FROM --platform=linux/amd64 busybox:1 AS Build\nFROM build\nFROM scratch\n")
    first = df.stages[0].source
    assert (first.base, first.name, first.platform) == ("busybox:1", "build", "linux/amd64")
    assert [s.label for s in df.stages] == ["build", "1", "2"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("FROM", "FROM requires either one or three arguments"),
        ("FROM a b", "FROM requires either one or three arguments"),
        ("FROM a AS", "FROM requires either one or three arguments"),
        ("FROM a IS b", "FROM requires either one or three arguments"),
        ("FROM a AS 1st", "invalid name for build stage: '1st'"),
        ("FROM a AS a$b", "invalid name for build stage"),
    ],
)
def test_from_errors(text: str, message: str) -> None:
    assert message in error(text + "\n").message


def test_duplicate_stage_names() -> None:
    e = error("FROM a AS x\nFROM b AS X\n")
    assert "duplicate stage name 'x'" in e.message and e.line == 2


def test_env_forms() -> None:
    env = only('ENV A=1 B="two words" C=three\\ w D=')
    assert isinstance(env, Env)
    assert env.pairs == (("A", "1"), ("B", '"two words"'), ("C", "three\\ w"), ("D", ""))
    env = only("ENV OLD some value  here")
    assert isinstance(env, Env) and env.pairs == (("OLD", "some value  here"),)


@pytest.mark.parametrize(
    "text, message",
    [
        ("ENV", "ENV requires at least one argument"),
        ("ENV A", "ENV must have two arguments"),
        ("ENV A=1 B", "can't find = in 'B'"),
        ("ENV =1", "ENV names can not be blank"),
        ("LABEL", "LABEL requires at least one argument"),
        ("ARG", "ARG requires at least one argument"),
        ("ARG =x", "ARG names can not be blank"),
        ("WORKDIR", "WORKDIR requires exactly one argument"),
        ("USER", "USER requires exactly one argument"),
        ("STOPSIGNAL", "STOPSIGNAL requires exactly one argument"),
        ("MAINTAINER", "MAINTAINER requires exactly one argument"),
        ("EXPOSE", "EXPOSE requires at least one argument"),
        ("VOLUME", "VOLUME requires at least one argument"),
        ("VOLUME [\"\"]", "VOLUME specified can not be an empty string"),
        ("COPY a", "COPY requires at least two arguments"),
        ("ADD a", "ADD requires at least two arguments"),
        ("RUN", "RUN requires at least one argument"),
        ("SHELL /bin/bash -c", "SHELL requires the arguments to be in JSON form"),
        ("SHELL", "SHELL requires at least one argument"),
        ("ONBUILD", "ONBUILD requires at least one argument"),
        ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
        ("ONBUILD MAINTAINER x", "MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("ONBUILD FORM x", "unknown instruction: FORM"),
        ("ONBUILD COPY a", "COPY requires at least two arguments"),
        ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK --interval=1s NONE", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK FOO x", 'Unknown type "FOO" in HEALTHCHECK (try CMD)'),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK --interval=1us CMD x", "cannot be less than 1ms"),
        ("HEALTHCHECK --interval=5 CMD x", "is not a duration"),
        ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative (-1)"),
        ("HEALTHCHECK --retries=x CMD x", "not a whole number"),
        ("HEALTHCHECK --bogus=1 CMD x", "unknown flag: --bogus"),
        ("RUN --mount=type=cache,target=/x make", "unknown flag: --mount"),
        ("RUN --network=bridge make", "--network=bridge is not one of"),
    ],
)
def test_instruction_errors(text: str, message: str) -> None:
    e = error("FROM x\n" + text + "\n")
    assert message in e.message
    assert e.line == 2
    assert e.message.startswith("Dockerfile: dockerfile parse error on line 2: ")


def test_unknown_instruction_names_file_line_and_instruction() -> None:
    e = error("ARG X\n\nFORM busybox\n", file="build/Dockerfile.dev")
    assert e.message == (
        "build/Dockerfile.dev: dockerfile parse error on line 3: unknown instruction: FORM "
        "(did you mean from?)"
    )
    e = error("FROM a\nBOGUSWORD x\n")
    assert e.message.endswith("unknown instruction: BOGUSWORD")


def test_every_instruction() -> None:
    df = parse_dockerfile(
        "ARG BASE=busybox\n"
        "FROM $BASE\n"
        "MAINTAINER someone <a@b>\n"
        "ARG A B=2\n"
        "LABEL a=b \"c d\"=e\n"
        "WORKDIR /app\n"
        "USER 1000:1000\n"
        "EXPOSE 80 53/udp\n"
        "STOPSIGNAL SIGKILL\n"
        'SHELL ["/bin/sh", "-ec"]\n'
        "ENTRYPOINT exec top\n"
        'CMD ["-b"]\n'
        "HEALTHCHECK --interval=1m30s --timeout=5s --start-period=1s --start-interval=2s --retries=3 CMD [\"true\"]\n"
        "ONBUILD RUN make\n"
    )
    (stage,) = df.stages
    assert df.meta_args[0].pairs == (("BASE", "busybox"),)
    kinds = [type(c) for c in stage.commands]
    assert kinds == [Maintainer, Arg, Label, Workdir, User, Expose, StopSignal, Shell, Entrypoint, Cmd, Healthcheck, Onbuild]
    c = stage.commands
    assert isinstance(c[0], Maintainer) and c[0].maintainer == "someone <a@b>"
    assert isinstance(c[1], Arg) and c[1].pairs == (("A", None), ("B", "2"))
    assert isinstance(c[2], Label) and c[2].pairs == (("a", "b"), ('"c d"', "e"))
    assert isinstance(c[5], Expose) and c[5].ports == ("80", "53/udp")
    assert isinstance(c[6], StopSignal) and c[6].signal == "SIGKILL"
    assert isinstance(c[7], Shell) and c[7].shell == ("/bin/sh", "-ec")
    assert isinstance(c[8], Entrypoint) and c[8].command == ("exec top",) and c[8].shell_form
    hc = c[10]
    assert isinstance(hc, Healthcheck)
    assert hc.test == ("CMD", "true")
    assert (hc.interval_ns, hc.timeout_ns, hc.start_period_ns, hc.start_interval_ns, hc.retries) == (
        90 * 10**9, 5 * 10**9, 10**9, 2 * 10**9, 3
    )
    assert isinstance(c[11], Onbuild) and c[11].expression == "RUN make"
    assert isinstance(c[4], User) and c[4].user == "1000:1000"


def test_healthcheck_none_and_shell() -> None:
    none = only("HEALTHCHECK NONE")
    assert isinstance(none, Healthcheck) and none.test == ("NONE",)
    hc = only("HEALTHCHECK CMD curl -f http://x/ || exit 1")
    assert isinstance(hc, Healthcheck) and hc.test == ("CMD-SHELL", "curl -f http://x/ || exit 1")


def test_durations() -> None:
    assert parse_duration("1h2m3.5s", "x") == (3600 + 120 + 3.5) * 10**9
    assert parse_duration("250ms", "x") == 250 * 10**6
    assert parse_duration("0", "x") == 0
    for bad in ("", "5", "1d", "-1s", "s"):
        with pytest.raises(ValueError):
            parse_duration(bad, "x")


# -- stages -----------------------------------------------------------------------------


def test_args_before_from_are_meta_args() -> None:
    df = parse_dockerfile("ARG A=1\nARG B\nFROM x\nARG A\nRUN y\nFROM z AS two\nRUN w\n")
    assert [a.pairs for a in df.meta_args] == [(("A", "1"),), (("B", None),)]
    assert [len(s.commands) for s in df.stages] == [2, 1]
    assert df.stages[1].name == "two"


def test_an_instruction_before_from_is_refused() -> None:
    e = error("# hi\nRUN echo\nFROM x\n")
    assert "RUN comes before any FROM" in e.message and e.line == 2


def test_no_from_at_all() -> None:
    assert "no FROM instruction" in error("ARG A=1\n").message


# -- heredocs ---------------------------------------------------------------------------


def test_run_heredoc() -> None:
    parsed = parse("FROM x\nRUN <<EOF\necho hi\n  echo there\nEOF\nRUN after\n")
    run = parsed.nodes[1]
    (doc,) = run.heredocs
    assert (doc.name, doc.content, doc.expand, doc.chomp) == ("EOF", "echo hi\n  echo there\n", True, False)
    assert (run.start_line, run.end_line) == (2, 5)
    assert parsed.nodes[2].start_line == 6


def test_heredoc_chomp_and_quoted_delimiters() -> None:
    parsed = parse('FROM x\nRUN <<-"EOT"\n\techo $X\n\tEOT\nCOPY <<\'A\' <<B /dst/\na $X\nA\nb\nB\nRUN 3<<E"O"F cat <&3\nx\nEOF\n')
    run, copy, fd = parsed.nodes[1], parsed.nodes[2], parsed.nodes[3]
    (doc,) = run.heredocs
    assert (doc.name, doc.expand, doc.chomp, doc.content, doc.text) == ("EOT", False, True, "\techo $X\n", "echo $X\n")
    assert [(d.name, d.content, d.expand) for d in copy.heredocs] == [("A", "a $X\n", False), ("B", "b\n", True)]
    (doc,) = fd.heredocs
    assert (doc.name, doc.fd, doc.expand) == ("EOF", 3, False)


def test_copy_heredoc_sources() -> None:
    copy = only("COPY <<one <<two /dst/\n1\none\n2\ntwo\n")
    assert isinstance(copy, Copy)
    assert copy.sources == () and [c.name for c in copy.contents] == ["one", "two"]
    copy = only("COPY file <<EOF /dst/\nx\nEOF\n")
    assert isinstance(copy, Copy)
    assert copy.sources == ("file",) and copy.contents[0].content == "x\n"


def test_json_form_and_other_instructions_have_no_heredocs() -> None:
    parsed = parse('FROM x\nRUN ["cat", "<<EOF"]\nENV A=<<EOF\nRUN echo "<<" done\n')
    assert all(not n.heredocs for n in parsed.nodes)
    assert len(parsed.nodes) == 4


def test_unterminated_heredoc() -> None:
    e = error("FROM x\nRUN <<EOF\necho hi\n")
    assert "unterminated heredoc" in e.message and e.line == 2


def test_heredoc_in_onbuild() -> None:
    (stage,) = parse_dockerfile("FROM x\nONBUILD RUN <<EOF\necho\nEOF\nRUN y\n").stages
    assert isinstance(stage.commands[0], Onbuild)
    assert stage.commands[0].node.heredocs[0].content == "echo\n"
    assert isinstance(stage.commands[1], Run)


def test_from_keeps_variables_for_later() -> None:
    (stage,) = parse_dockerfile("ARG V=1\nFROM busybox:${V:-2}\n").stages
    assert isinstance(stage.source, From) and stage.source.base == "busybox:${V:-2}"
