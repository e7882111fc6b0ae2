"""Command lines -> request protos and option values, with no daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from pallet.client.api import grpc_target, resolve_host
from pallet.client.cli import UsageError, main, parse_args
from pallet.client.options import (
    env_list,
    parse_duration,
    parse_env_file,
    parse_labels,
    parse_tail,
    parse_time,
    validate_filters,
)
from pallet.client.requests import container_config, logs_request
from pallet.v1.errors import InvalidArgument

ENV = {"HOME": "/root", "EMPTY": ""}


def test_run_flags_become_a_container_config() -> None:
    args = parse_args([
        "run", "-d", "--rm", "-i", "-e", "A=1", "-e", "HOME", "-e", "UNSET", "-w", "/srv", "-u", "1000:1000",
        "--name", "web", "--hostname", "box", "--entrypoint", "/bin/sh", "-l", "k=v", "--label", "flag",
        "--stop-signal", "SIGINT", "--stop-timeout", "3",
        "busybox", "-c", "echo -e hi", "-l",
    ])
    cfg = container_config(args, ENV)
    assert args.detach
    assert cfg.image == "busybox"
    # Everything after the image is the command, even when it looks like our flags.
    assert list(cfg.cmd) == ["-c", "echo -e hi", "-l"]
    assert list(cfg.env) == ["A=1", "HOME=/root"]
    assert (cfg.working_dir, cfg.user, cfg.name, cfg.hostname) == ("/srv", "1000:1000", "web", "box")
    assert cfg.entrypoint_set and list(cfg.entrypoint) == ["/bin/sh"]
    assert dict(cfg.labels) == {"k": "v", "flag": ""}
    assert cfg.open_stdin and cfg.auto_remove
    assert cfg.stop_signal == "SIGINT" and cfg.HasField("stop_timeout") and cfg.stop_timeout == 3


def test_run_defaults_leave_fields_unset() -> None:
    cfg = container_config(parse_args(["run", "busybox"]), ENV)
    assert list(cfg.cmd) == [] and not cfg.entrypoint_set and not cfg.HasField("stop_timeout")
    assert not cfg.open_stdin and not cfg.auto_remove and cfg.name == ""


def test_create_takes_run_flags_but_not_detach() -> None:
    args = parse_args(["container", "create", "--rm", "--name", "x", "busybox", "true"])
    assert args.verb == "container create" and args.error_exit == 125
    assert container_config(args, ENV).auto_remove
    with pytest.raises(UsageError) as info:
        parse_args(["create", "-d", "busybox"])
    assert info.value.code == 2


def test_env_file_then_flags(tmp_path: Path) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text("# a comment\n\n  SPACED=keeps = and spaces \nHOME\nUNSET\nEMPTY=\nQ=\"quoted\"\n")
    args = parse_args(["run", "--env-file", str(env_file), "-e", "SPACED=flag", "busybox"])
    assert list(container_config(args, ENV).env) == [
        "SPACED=keeps = and spaces ", "HOME=/root", "EMPTY=", 'Q="quoted"', "SPACED=flag",
    ]


def test_env_errors_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.env"
    bad.write_text("OK=1\nHAS SPACE=1\n")
    with pytest.raises(InvalidArgument, match="line 2"):
        parse_env_file(str(bad), ENV)
    with pytest.raises(InvalidArgument, match="cannot read env file"):
        parse_env_file(str(tmp_path / "missing"), ENV)
    with pytest.raises(InvalidArgument, match="name is empty"):
        env_list([], ["=x"], ENV)


def test_labels() -> None:
    assert parse_labels(["a=b=c", "k", "k=2"]) == {"a": "b=c", "k": "2"}
    with pytest.raises(InvalidArgument):
        parse_labels(["=v"])


def test_logs_request() -> None:
    now = 1_800_000_000.0
    request = logs_request(parse_args(["logs", "-f", "--tail", "10", "--since", "10m", "--until",
                                       "2027-01-15T08:00:00.5+01:00", "web"]), now)
    assert request.container == "web" and request.follow and request.tail == 10
    assert request.since.seconds == 1_800_000_000 - 600
    assert (request.until.seconds, request.until.nanos) == (1_799_996_400, 500_000_000)  # 07:00:00.5Z
    assert request.stdout and request.stderr
    assert logs_request(parse_args(["logs", "web"]), now).tail == -1
    assert logs_request(parse_args(["logs", "--tail", "all", "web"]), now).tail == -1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T18:31:16Z", (1_795_804_276, 0)),
        ("2026-11-27T18:31:16.123456789Z", (1_795_804_276, 123_456_789)),
        ("2026-11-27T19:31:16+01:00", (1_795_804_276, 0)),
        ("2026-11-27T17:31:16.5-01:00", (1_795_804_276, 500_000_000)),
        ("2026-11-27", (1_795_737_600, 0)),
        ("1795804276", (1_795_804_276, 0)),
        ("1795804276.25", (1_795_804_276, 250_000_000)),
        ("10m", (1_799_999_400, 0)),
        ("1h30m", (1_799_994_600, 0)),
        ("5s", (1_799_999_995, 0)),
        ("1.5h", (1_799_994_600, 0)),
    ],
)
def test_parse_time(text: str, expected: tuple[int, int]) -> None:
    assert parse_time(text, 1_800_000_000.0) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "10x", "2026-13-01T00:00:00Z", "1h-5m"])
def test_parse_time_rejects_nonsense(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_time(text, 1_800_000_000.0)


def test_parse_duration_and_tail() -> None:
    assert parse_duration("300ms") == pytest.approx(0.3)
    assert parse_duration("2h45m10s") == 9910
    assert parse_tail("0") == 0 and parse_tail("all") == -1 and parse_tail("-4") == -1
    with pytest.raises(InvalidArgument):
        parse_tail("lots")


def test_filters_need_key_value() -> None:
    assert validate_filters(["status=exited", "label=a=b"]) == ["status=exited", "label=a=b"]
    with pytest.raises(InvalidArgument, match="expected name=value"):
        validate_filters(["status"])


def test_hosts() -> None:
    assert grpc_target("unix:///run/pallet/pallet.sock") == "unix:///run/pallet/pallet.sock"
    assert grpc_target("unix://relative.sock") == "unix:relative.sock"
    assert grpc_target("unix:relative.sock") == "unix:relative.sock"
    assert grpc_target("/abs.sock") == "unix:///abs.sock"
    assert grpc_target("tcp://127.0.0.1:2376") == "127.0.0.1:2376"
    assert grpc_target("tcp://[::1]:2376") == "[::1]:2376"
    with pytest.raises(InvalidArgument, match="tcp://HOST:PORT"):
        grpc_target("https://127.0.0.1:2376")
    assert resolve_host("unix:///given.sock") == "unix:///given.sock"


def test_host_comes_from_flag_then_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PALLET_HOST", raising=False)
    assert parse_args(["ps"]).host == "unix:///run/pallet/pallet.sock"
    monkeypatch.setenv("PALLET_HOST", "unix:///tmp/x.sock")
    assert parse_args(["ps"]).host == "unix:///tmp/x.sock"
    assert parse_args(["-H", "unix:///y.sock", "ps"]).host == "unix:///y.sock"


@pytest.mark.parametrize(
    ("argv", "verb"),
    [
        (["container", "ls", "-a"], "container ls"),
        (["container", "ps"], "container ls"),
        (["container", "list"], "container ls"),
        (["image", "ls"], "image ls"),
        (["image", "list"], "image ls"),
        (["image", "rm", "x"], "image rm"),
        (["image", "tag", "a", "b"], "image tag"),
        (["image", "import", "-"], "image import"),
        (["image", "load"], "image load"),
        (["image", "inspect", "x"], "image inspect"),
        (["container", "inspect", "x"], "container inspect"),
        (["container", "exec", "web", "ls"], "container exec"),
    ],
)
def test_management_aliases(argv: list[str], verb: str) -> None:
    assert parse_args(argv).verb == verb


def test_inspect_types() -> None:
    assert parse_args(["inspect", "x"]).type is None
    assert parse_args(["inspect", "--type", "image", "x"]).type == "image"
    assert parse_args(["image", "inspect", "x"]).type == "image"
    assert parse_args(["container", "inspect", "x"]).type == "container"


@pytest.mark.parametrize(
    ("argv", "code", "fragment"),
    [
        (["run"], 125, "IMAGE"),
        (["run", "--nope", "busybox"], 125, "unrecognized arguments: --nope"),
        (["run", "--stop-timeout", "soon", "busybox"], 125, "invalid int value"),
        (["ps", "--nope"], 2, "unrecognized arguments: --nope"),
        (["stop"], 2, "CONTAINER"),
        (["exec", "web"], 2, "CMD"),
        (["inspect", "--type", "volume", "x"], 2, "invalid choice"),
        (["nosuchverb"], 2, "invalid choice"),
    ],
)
def test_usage_errors(argv: list[str], code: int, fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == code
    err = capsys.readouterr().err
    assert fragment in err and "usage:" in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    assert "--env-file" in capsys.readouterr().out
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out


def test_cli_module_imports_nothing_heavy() -> None:
    """`pallet --help`/`version` stay fast: the CLI module must not pull in grpc or protobuf."""
    import subprocess
    import sys

    code = (
        "import sys, pallet.client.cli as c; "
        "heavy = [m for m in sys.modules if m in ('grpc', 'google.protobuf', 'structlog', 'asyncio') "
        "or (m.startswith('pallet.v1.') and '_pb2' in m)]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("argv", "field", "value"),
    [
        (["create", "--name", "-dash", "busybox"], "name", "-dash"),
        (["run", "-e", "-X=1", "busybox"], "env", ["-X=1"]),
        (["logs", "--since", "-5s", "web"], "since", "-5s"),
        (["container", "run", "-w", "-", "busybox"], "workdir", "-"),
    ],
)
def test_option_values_may_start_with_a_dash_like_docker(argv: list[str], field: str, value: object) -> None:
    assert getattr(parse_args(argv), field) == value


def test_words_after_the_image_stay_the_commands() -> None:
    args = parse_args(["run", "--name", "n", "busybox", "--name", "-q", "-e"])
    assert args.name == "n" and args.command == ["--name", "-q", "-e"]
    args = parse_args(["exec", "-e", "-a", "web", "ls", "-e", "-l"])
    assert args.env == ["-a"] and args.command == ["ls", "-e", "-l"]


def test_commit_pause_is_a_docker_boolean_flag() -> None:
    # `-p` never takes the next word (it used to swallow CTR as its value).
    args = parse_args(["commit", "-p", "ctr", "img"])
    assert (args.pause, args.container, args.reference) == (True, "ctr", "img")
    assert parse_args(["commit", "ctr"]).pause is True
    assert parse_args(["commit", "--pause=false", "ctr"]).pause is False
    assert parse_args(["commit", "-p=0", "ctr", "x:1"]).pause is False
    assert parse_args(["commit", "--pause=TRUE", "ctr"]).pause is True
    with pytest.raises(UsageError, match="invalid argument 'maybe' for '--pause'") as err:
        parse_args(["commit", "--pause=maybe", "ctr"])
    assert err.value.code == 125
