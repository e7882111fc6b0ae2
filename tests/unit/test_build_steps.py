"""What instructions do to a stage's config, RUN's argv and docker's created_by strings."""

from __future__ import annotations

import pytest

from pallet.daemon.builder.instructions import Healthcheck, Instruction, parse_dockerfile
from pallet.daemon.builder.shellwords import DEFAULT
from pallet.daemon.builder.steps import (
    StageState,
    Step,
    apply_config,
    expand_port,
    go_duration,
    healthcheck_created_by,
    run_command,
    workdir,
)
from pallet.daemon.images.model import ImageConfig
from pallet.v1.errors import InvalidArgument


def steps(text: str) -> list[Instruction]:
    (stage,) = parse_dockerfile("FROM x\n" + text).stages
    return list(stage.commands)


def apply(state: StageState, text: str, build_args: dict[str, str | None] | None = None) -> list[str]:
    out = []
    for i in steps(text):
        config, created_by = apply_config(Step(i, state, DEFAULT, "Dockerfile"), build_args or {}, {"META": "m"})
        state.config = config
        out.append(created_by)
    return out


def test_env_substitutes_with_the_values_before_it() -> None:
    state = StageState(config=ImageConfig(env=("A=old",)))
    said = apply(state, "ENV A=new B=$A\nENV C=\"$A b\" D='$A'\n")
    assert state.config.env == ("A=new", "B=old", "C=new b", "D=$A")
    assert said == ["/bin/sh -c #(nop)  ENV A=new B=old", "/bin/sh -c #(nop)  ENV C=new b D=$A"]


def test_args_build_args_meta_and_env_precedence() -> None:
    state = StageState()
    apply(state, "ARG META\nARG GIVEN=default\nARG PLAIN=p\nARG NONE\nENV PLAIN=env\n", {"GIVEN": "cli"})
    assert state.args == {"META": "m", "GIVEN": "cli", "PLAIN": "p", "NONE": None}
    assert state.env() == {"META": "m", "GIVEN": "cli", "PLAIN": "env"}
    assert state.run_env() == ("META=m", "GIVEN=cli")


def test_entrypoint_drops_an_inherited_cmd_but_not_its_own() -> None:
    state = StageState(config=ImageConfig(cmd=("sh",)))
    said = apply(state, "ENTRYPOINT [\"top\"]\n")
    assert state.config.cmd == () and state.config.entrypoint == ("top",)
    assert said == ['/bin/sh -c #(nop)  ENTRYPOINT ["top"]']
    state = StageState(config=ImageConfig(cmd=("sh",)))
    apply(state, "CMD [\"-b\"]\nENTRYPOINT top\n")
    assert state.config.cmd == ("-b",) and state.config.entrypoint == ("/bin/sh", "-c", "top")


def test_shell_changes_shell_forms_and_history() -> None:
    state = StageState()
    said = apply(state, 'SHELL ["/bin/bash", "-ec"]\nCMD echo "hi"\n')
    assert state.config.cmd == ("/bin/bash", "-ec", 'echo "hi"')
    assert said[1] == '/bin/bash -ec #(nop)  CMD ["/bin/bash" "-ec" "echo \\"hi\\""]'


def test_expose_volume_stopsignal_label_user() -> None:
    state = StageState()
    apply(state, "ARG P=8000\nEXPOSE $P-8001/udp 80\nVOLUME [\"/a\", \"/b\"]\nSTOPSIGNAL 9\nLABEL \"a b\"=c\nUSER ${P}\n")
    assert state.config.exposed_ports == ("80/tcp", "8000/udp", "8001/udp")
    assert state.config.volumes == ("/a", "/b")
    assert state.config.stop_signal == "9"
    assert state.config.labels == {"a b": "c"}
    assert state.config.user == "8000"


@pytest.mark.parametrize(
    "text, message",
    [
        ("EXPOSE 80/xyz", "invalid containerPort: 80/xyz"),
        ("EXPOSE 70000", "invalid port range"),
        ("STOPSIGNAL SIGNOPE", "invalid signal: SIGNOPE"),
        ("VOLUME relative", "the path must be absolute"),
        ("ENV A=${B", "missing '}'"),
    ],
)
def test_config_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        apply(StageState(), text + "\n")
    assert message in info.value.message
    assert info.value.message.startswith(f"Dockerfile:2: {text}: ")


def test_workdir_joins_and_cleans() -> None:
    state = StageState(config=ImageConfig(working_dir="/app", env=("D=sub",)))
    (i,) = steps("WORKDIR $D/../other/./x\n")
    config, created_by = workdir(Step(i, state, DEFAULT, "Dockerfile"))
    assert config.working_dir == "/app/other/x"
    assert created_by == "/bin/sh -c #(nop) WORKDIR /app/other/x"


def test_run_forms() -> None:
    state = StageState()

    def run(text: str, args: tuple[str, ...] = ()) -> tuple[tuple[str, ...], str, bytes | None]:
        (i,) = steps(text)
        command = run_command(Step(i, state, DEFAULT, "Dockerfile"), args)
        return command.argv, command.created_by, command.stdin

    assert run("RUN echo $HOME\n") == (("/bin/sh", "-c", "echo $HOME"), "/bin/sh -c echo $HOME", None)
    assert run('RUN ["echo", "a"]\n') == (("echo", "a"), "echo a", None)
    assert run("RUN make\n", ("B=2", "A=1"))[1] == "|2 A=1 B=2 /bin/sh -c make"
    assert run("RUN <<EOF\necho a\nEOF\n")[0] == ("/bin/sh", "-c", "echo a\n")
    assert run("RUN <<-EOF\n\techo a\n\tEOF\n")[0] == ("/bin/sh", "-c", "echo a\n")
    argv, _, stdin = run("RUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n")
    assert argv == ("/usr/bin/env", "python3") and stdin == b"#!/usr/bin/env python3\nprint(1)\n"
    assert run("RUN cat <<EOF > /f\nx\nEOF\n")[0] == ("/bin/sh", "-c", "cat <<EOF > /f\nx\nEOF")


def test_expand_port() -> None:
    assert expand_port("53/UDP") == ["53/udp"]
    assert expand_port("1-3") == ["1/tcp", "2/tcp", "3/tcp"]
    with pytest.raises(InvalidArgument):
        expand_port("3-1")


def test_go_durations_and_healthcheck_history() -> None:
    assert [go_duration(n) for n in (0, 500_000_000, 1_500_000_000, 90 * 10**9, 3600 * 10**9, 1500)] == [
        "0s", "500ms", "1.5s", "1m30s", "1h0m0s", "1.5µs",
    ]
    (hc,) = steps("HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://x/\n")
    assert isinstance(hc, Healthcheck)
    assert healthcheck_created_by(("/bin/sh", "-c"), hc) == (
        '/bin/sh -c #(nop)  HEALTHCHECK &{["CMD-SHELL" "curl -f http://x/"] "5s" "0s" "0s" "0s" \'\\x03\'}'
    )
