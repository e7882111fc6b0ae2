"""Container domain rules: transitions, config merging, names, signals, ps filters."""

from __future__ import annotations

import pytest

from pallet.daemon.containers import filters
from pallet.daemon.containers.merge import effective_config, merge_env
from pallet.daemon.containers.model import (
    Config,
    ConfigRequest,
    Container,
    ContainerState,
    CreateRequest,
    Status,
    check_transition,
)
from pallet.daemon.containers.names import generate_name, validate_name
from pallet.daemon.containers.signals import parse_signal
from pallet.v1.errors import FailedPrecondition, InvalidArgument
from pallet.daemon.images.model import Image, ImageConfig


def image(**cfg: object) -> Image:
    return Image(
        id="sha256:" + "a" * 64,
        repo_tags=("busybox:latest",),
        repo_digests=(),
        created_ns=0,
        size=0,
        config=ImageConfig(**cfg),  # type: ignore[arg-type]
        layers=(),
    )


def test_illegal_transition_names_the_state() -> None:
    check_transition("web", Status.CREATED, Status.RUNNING)
    with pytest.raises(FailedPrecondition, match="container web is removing"):
        check_transition("web", Status.REMOVING, Status.RUNNING)


def test_image_cmd_and_entrypoint_are_used_and_overridden() -> None:
    img = image(entrypoint=("/bin/sh", "-c"), cmd=("echo hi",), env=("A=1", "PATH=/bin"))
    cfg, _ = effective_config(CreateRequest(ConfigRequest(image="busybox")), img, "host1")
    assert cfg.entrypoint + cfg.cmd == ("/bin/sh", "-c", "echo hi")
    assert cfg.env == ("A=1", "PATH=/bin", "HOSTNAME=host1")
    req = CreateRequest(ConfigRequest(image="busybox", cmd=("date",), env=("A=2",)))
    cfg, _ = effective_config(req, img, "h")
    assert cfg.entrypoint + cfg.cmd == ("/bin/sh", "-c", "date")
    assert "A=2" in cfg.env and "A=1" not in cfg.env
    # A new entrypoint drops the image's Cmd, as docker does.
    cfg, _ = effective_config(
        CreateRequest(ConfigRequest(image="busybox", entrypoint=("ls",))), img, "h"
    )
    assert cfg.entrypoint + cfg.cmd == ("ls",)


def test_missing_command_and_bad_env_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="no command specified"):
        effective_config(CreateRequest(ConfigRequest(image="scratch")), image(), "h")
    with pytest.raises(InvalidArgument, match="KEY=value"):
        req = CreateRequest(ConfigRequest(image="x", cmd=("true",), env=("NOEQUALS",)))
        effective_config(req, image(), "h")


def test_default_path_is_added_when_the_image_has_none() -> None:
    cfg, _ = effective_config(CreateRequest(ConfigRequest(image="x", cmd=("true",))), image(), "h")
    assert cfg.env[0].startswith("PATH=/usr/local/sbin")


def test_merge_env_overrides_by_key() -> None:
    assert merge_env(("A=1", "B=2"), ("A=3",)) == ("A=3", "B=2")


def test_names() -> None:
    assert validate_name("/web") == "web"
    for bad in ("a", "-web", "we b", "x/y"):
        with pytest.raises(InvalidArgument, match="invalid container name"):
            validate_name(bad)
    assert validate_name(generate_name(set()))


def test_signals() -> None:
    assert parse_signal("SIGTERM") == 15
    assert parse_signal("hup") == 1
    assert parse_signal("9") == 9
    assert parse_signal("") == 9
    for bad in ("SIGNOPE", "0", "999"):
        with pytest.raises(InvalidArgument, match="invalid signal"):
            parse_signal(bad)


def _container(status: Status, exit_code: int = 0) -> Container:
    return Container(
        id="abcdef" + "0" * 58,
        name="web",
        image_id="sha256:" + "b" * 64,
        config=Config(image="busybox", labels={"tier": "front"}),
        state=ContainerState(status=status, exit_code=exit_code),
        created_ns=1,
        state_dir="/x",
    )


def test_ps_filters() -> None:
    running = _container(Status.RUNNING)
    exited = _container(Status.EXITED, 3)
    assert filters.matches(running, filters.parse(["status=running"]), set())
    assert not filters.matches(exited, filters.parse(["status=running"]), set())
    assert filters.matches(exited, filters.parse(["exited=3"]), set())
    assert filters.matches(running, filters.parse(["label=tier=front", "name=we"]), set())
    assert not filters.matches(running, filters.parse(["label=tier=back"]), set())
    assert filters.matches(running, filters.parse(["id=abcd"]), set())
    assert filters.matches(running, filters.parse(["ancestor=busybox"]), set())
    with pytest.raises(InvalidArgument, match="unknown filter"):
        filters.parse(["colour=red"])
    with pytest.raises(InvalidArgument, match="invalid filter status"):
        filters.parse(["status=sleeping"])
