"""Config changes in Dockerfile form, as `docker import --change` takes them.

Owns: parsing `CMD`, `ENTRYPOINT`, `ENV`, `WORKDIR`, `USER`, `LABEL`, `EXPOSE`, `VOLUME`,
`STOPSIGNAL` and `HEALTHCHECK` lines and applying them to an `ImageConfig`. Must not: build whole image
configs (that is `oci.py`) or accept instructions that change the filesystem.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import signal
from collections.abc import Callable, Sequence
from dataclasses import replace

from pallet.v1.errors import InvalidArgument
from pallet.daemon import durations
from pallet.daemon.images.model import HealthConfig, ImageConfig
from pallet.daemon.limits import check_changes, check_labels

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_PORT = re.compile(r"(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?", re.IGNORECASE)


def _command(args: str, instruction: str) -> tuple[str, ...]:
    """JSON (exec) form, or shell form run through /bin/sh -c."""
    text = args.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value)
    if not text:
        raise InvalidArgument(f"{instruction} needs a command")
    return ("/bin/sh", "-c", text)


def _words(args: str, instruction: str) -> list[str]:
    try:
        return shlex.split(args)
    except ValueError as exc:
        raise InvalidArgument(f"{instruction} {args!r}: {exc}") from None


def _pairs(args: str, instruction: str, legacy: bool) -> list[tuple[str, str]]:
    """`K=v K2="v 2"` pairs; with `legacy`, also the old one-pair `K v w` form of ENV."""
    words = _words(args, instruction)
    if not words:
        raise InvalidArgument(f"{instruction} needs at least one key=value")
    if legacy and "=" not in words[0]:
        key, _, value = args.strip().partition(" ")
        if not value.strip():
            raise InvalidArgument(f"{instruction} {key} needs a value")
        return [(key, value.strip())]
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise InvalidArgument(f"{instruction} {word!r} must be key=value")
        pairs.append((key, value))
    return pairs


def _env(config: ImageConfig, args: str) -> ImageConfig:
    env = list(config.env)
    for key, value in _pairs(args, "ENV", legacy=True):
        if not _ENV_NAME.fullmatch(key):
            raise InvalidArgument(f"ENV {key!r} is not a valid variable name")
        env = [item for item in env if item.partition("=")[0] != key]
        env.append(f"{key}={value}")
    return replace(config, env=tuple(env))


def _label(config: ImageConfig, args: str) -> ImageConfig:
    labels = dict(config.labels)
    labels.update(_pairs(args, "LABEL", legacy=False))
    check_labels(labels, "the image")
    return replace(config, labels=labels)


def _workdir(config: ImageConfig, args: str) -> ImageConfig:
    path = args.strip()
    if not path:
        raise InvalidArgument("WORKDIR needs a path")
    return replace(config, working_dir=posixpath.join(config.working_dir or "/", path))


def _user(config: ImageConfig, args: str) -> ImageConfig:
    user = args.strip()
    if not user or " " in user:
        raise InvalidArgument(f"USER {user!r} must be one name or id, optionally :group")
    return replace(config, user=user)


def _expose(config: ImageConfig, args: str) -> ImageConfig:
    ports = list(config.exposed_ports)
    for word in _words(args, "EXPOSE"):
        match = _PORT.fullmatch(word)
        if match is None:
            raise InvalidArgument(f"EXPOSE {word!r} must be PORT[-PORT][/tcp|udp|sctp]")
        first, last = int(match[1]), int(match[2] or match[1])
        proto = (match[3] or "tcp").lower()
        if not 1 <= first <= last <= 65535:
            raise InvalidArgument(f"EXPOSE {word!r}: ports are 1-65535, low to high")
        for port in range(first, last + 1):
            if f"{port}/{proto}" not in ports:
                ports.append(f"{port}/{proto}")
    return replace(config, exposed_ports=tuple(ports))


def _volume(config: ImageConfig, args: str) -> ImageConfig:
    text = args.strip()
    paths: list[str]
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise InvalidArgument(f"VOLUME {text!r} is not a JSON list of paths") from None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise InvalidArgument(f"VOLUME {text!r} must be a list of paths")
        paths = value
    else:
        paths = _words(text, "VOLUME")
    if not paths or any(not path for path in paths):
        raise InvalidArgument("VOLUME needs at least one path")
    volumes = list(config.volumes)
    volumes.extend(path for path in paths if path not in volumes)
    return replace(config, volumes=tuple(volumes))


def _stopsignal(config: ImageConfig, args: str) -> ImageConfig:
    name = args.strip()
    if name.isdigit():
        valid = 0 < int(name) < signal.NSIG
    else:
        upper = name.upper()
        upper = upper if upper.startswith("SIG") else "SIG" + upper
        valid = upper in signal.Signals.__members__ or re.fullmatch(r"SIGRTM(IN|AX)([+-]\d+)?", upper) is not None
        name = upper
    if not valid:
        raise InvalidArgument(f"STOPSIGNAL {args.strip()!r} is not a signal name or number")
    return replace(config, stop_signal=name)


_HEALTH_FLAGS = {
    "--interval": "interval_ns", "--timeout": "timeout_ns",
    "--start-period": "start_period_ns", "--start-interval": "start_interval_ns",
}


def _healthcheck(config: ImageConfig, args: str) -> ImageConfig:
    """`HEALTHCHECK [--interval=D] [--timeout=D] [--start-period=D] [--start-interval=D]
    [--retries=N] CMD command` (shell or JSON form), or `HEALTHCHECK NONE`, as docker's
    builder reads it: durations 0 or at least 1ms, retries not negative."""
    rest = args.strip()
    values: dict[str, int] = {}
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        name, eq, value = flag.partition("=")
        if name == "--retries" and eq:
            if not value.lstrip("-").isdigit():
                raise InvalidArgument(f"HEALTHCHECK --retries={value!r} must be a whole number")
            if int(value) < 0:
                raise InvalidArgument(f"HEALTHCHECK --retries cannot be negative ({value})")
            values["retries"] = int(value)
        elif name in _HEALTH_FLAGS and eq:
            ns = durations.parse(value, f"HEALTHCHECK {name}")
            if ns < 0 or 0 < ns < durations.NS_PER_MS:
                raise InvalidArgument(f"HEALTHCHECK {name}={value} cannot be less than 1ms")
            values[_HEALTH_FLAGS[name]] = ns
        else:
            raise InvalidArgument(
                f"HEALTHCHECK flag {flag!r} is unknown: use --interval=, --timeout=, "
                "--start-period=, --start-interval= or --retries="
            )
    kind, _, command = rest.partition(" ")
    if kind.upper() == "NONE":
        if command.strip() or values:
            raise InvalidArgument("HEALTHCHECK NONE takes no arguments")
        return replace(config, healthcheck=HealthConfig(test=("NONE",)))
    if kind.upper() != "CMD":
        raise InvalidArgument(
            f"HEALTHCHECK {rest!r}: give CMD and a command, or NONE"
        )
    text = command.strip()
    test: tuple[str, ...]
    if text.startswith("["):
        try:
            words = json.loads(text)
        except json.JSONDecodeError:
            words = None
        if isinstance(words, list) and words and all(isinstance(item, str) for item in words):
            test = ("CMD", *words)
        else:
            test = ("CMD-SHELL", text)
    elif text:
        test = ("CMD-SHELL", text)
    else:
        raise InvalidArgument("HEALTHCHECK CMD needs a command")
    return replace(config, healthcheck=HealthConfig(test=test, **values))


_APPLY: dict[str, Callable[[ImageConfig, str], ImageConfig]] = {
    "CMD": lambda config, args: replace(config, cmd=_command(args, "CMD")),
    "ENTRYPOINT": lambda config, args: replace(config, entrypoint=_command(args, "ENTRYPOINT")),
    "ENV": _env,
    "WORKDIR": _workdir,
    "USER": _user,
    "LABEL": _label,
    "EXPOSE": _expose,
    "VOLUME": _volume,
    "STOPSIGNAL": _stopsignal,
    "HEALTHCHECK": _healthcheck,
}


def apply_changes(config: ImageConfig, changes: Sequence[str]) -> ImageConfig:
    """Apply each change in order; an unknown or malformed one is an InvalidArgument.

    CPU-bound (shlex reads a character at a time): callers on an event loop run it in a thread.
    """
    check_changes(changes)
    for change in changes:
        instruction, *rest = re.split(r"\s+", change.strip(), maxsplit=1)
        args = rest[0] if rest else ""
        apply = _APPLY.get(instruction.upper())
        if apply is None:
            raise InvalidArgument(
                f"unknown change instruction {instruction!r} in {change!r}: "
                f"allowed are {', '.join(_APPLY)}"
            )
        config = apply(config, args)
    return config
