"""Dockerfile instructions with their meaning: typed values from the parser's lines, and
the stages they make.

Owns: checking each instruction's arguments and flags as docker's `instructions` package
does (how many arguments, which `--flags`, JSON or shell form, HEALTHCHECK's durations,
ONBUILD's forbidden triggers, stage names), and grouping them into `Stage`s with the
`ARG`s that come before the first FROM. Must not: substitute variables (the executor
does, with the values of the moment), or touch files and images.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pallet.daemon.builder.dockerfile import DockerfileError, Heredoc, Node, parse, parse_heredoc

_STAGE_NAME = re.compile(r"[a-z][a-z0-9\-_.]*")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNITS_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
MINIMUM_DURATION_NS = 1_000_000  # docker's: a healthcheck interval under 1ms is refused


@dataclass(frozen=True, slots=True)
class Instruction:
    node: Node

    @property
    def line(self) -> int:
        return self.node.start_line

    @property
    def text(self) -> str:
        """The instruction as written (continuations joined)."""
        return self.node.original.strip()


@dataclass(frozen=True, slots=True)
class From(Instruction):
    base: str  # as written: substituted with the meta ARGs when the stage starts
    name: str = ""  # AS name, lower case
    platform: str = ""


@dataclass(frozen=True, slots=True)
class Run(Instruction):
    command: tuple[str, ...]  # exec form: argv; shell form: one string for the shell
    shell_form: bool
    heredocs: tuple[Heredoc, ...] = ()
    network: str = ""  # RUN --network=default|none|host


@dataclass(frozen=True, slots=True)
class Copy(Instruction):
    """COPY and ADD (`add` says which)."""

    sources: tuple[str, ...]  # paths (wildcards allowed), before substitution
    dest: str
    add: bool = False
    from_stage: str = ""  # --from
    chown: str = ""
    chmod: str = ""
    link: bool = False
    contents: tuple[Heredoc, ...] = ()  # heredoc sources: files named after the delimiter


@dataclass(frozen=True, slots=True)
class Env(Instruction):
    pairs: tuple[tuple[str, str], ...]  # values before substitution


@dataclass(frozen=True, slots=True)
class Label(Instruction):
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Arg(Instruction):
    pairs: tuple[tuple[str, str | None], ...]  # (name, default or None)


@dataclass(frozen=True, slots=True)
class Workdir(Instruction):
    path: str


@dataclass(frozen=True, slots=True)
class User(Instruction):
    user: str


@dataclass(frozen=True, slots=True)
class Cmd(Instruction):
    command: tuple[str, ...]
    shell_form: bool


@dataclass(frozen=True, slots=True)
class Entrypoint(Instruction):
    command: tuple[str, ...]
    shell_form: bool


@dataclass(frozen=True, slots=True)
class Expose(Instruction):
    ports: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Volume(Instruction):
    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StopSignal(Instruction):
    signal: str


@dataclass(frozen=True, slots=True)
class Maintainer(Instruction):
    maintainer: str


@dataclass(frozen=True, slots=True)
class Onbuild(Instruction):
    expression: str  # the trigger as written ("RUN make"), run when a build uses the image


@dataclass(frozen=True, slots=True)
class Shell(Instruction):
    shell: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Healthcheck(Instruction):
    """HEALTHCHECK: `test` is docker's (["NONE"], ["CMD", ...], ["CMD-SHELL", "..."]);
    durations in ns, 0 = the default."""

    test: tuple[str, ...]
    interval_ns: int = 0
    timeout_ns: int = 0
    start_period_ns: int = 0
    start_interval_ns: int = 0
    retries: int = 0


@dataclass(frozen=True, slots=True)
class Stage:
    index: int
    source: From
    commands: tuple[Instruction, ...]

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def label(self) -> str:
        """How progress names the stage: its name, or its index."""
        return self.name or str(self.index)


@dataclass(frozen=True, slots=True)
class Dockerfile:
    file: str
    stages: tuple[Stage, ...]
    meta_args: tuple[Arg, ...] = ()  # the ARGs before the first FROM
    escape: str = "\\"
    warnings: tuple[str, ...] = ()
    directives: dict[str, str] = field(default_factory=dict)


def parse_dockerfile(text: str | bytes, file: str = "Dockerfile") -> Dockerfile:
    """The stages of a Dockerfile; DockerfileError (file, line) for what cannot be built."""
    parsed = parse(text, file)
    stages: list[Stage] = []
    meta: list[Arg] = []
    current: From | None = None
    commands: list[Instruction] = []
    for node in parsed.nodes:
        instruction = instruction_from(node, file)
        if isinstance(instruction, From):
            if current is not None:
                stages.append(Stage(len(stages), current, tuple(commands)))
            current, commands = instruction, []
        elif current is not None:
            commands.append(instruction)
        elif isinstance(instruction, Arg):
            meta.append(instruction)
        else:
            raise DockerfileError(
                f"{node.name} comes before any FROM: a Dockerfile's first instruction must be "
                "FROM (only ARG and parser directives may come before it)",
                file=file,
                line=node.start_line,
            )
    if current is None:
        raise DockerfileError("no FROM instruction: a Dockerfile needs at least one build stage", file=file, line=parsed.nodes[-1].end_line)
    stages.append(Stage(len(stages), current, tuple(commands)))
    seen: dict[str, int] = {}
    for stage in stages:
        if stage.name:
            if stage.name in seen:
                raise DockerfileError(
                    f"duplicate stage name {stage.name!r}: stage {seen[stage.name]} already has it",
                    file=file,
                    line=stage.source.line,
                )
            seen[stage.name] = stage.index
    return Dockerfile(file, tuple(stages), tuple(meta), parsed.escape, parsed.warnings, parsed.directives)


class _Flags:
    """An instruction's `--flags`: each known, each once, with the kind of value it takes."""

    def __init__(self, node: Node, allowed: dict[str, str]) -> None:
        self.values: dict[str, str] = {}
        for raw in node.flags:
            if not raw.startswith("--"):
                raise ValueError(f"{node.name}: flags must start with --: {raw}")
            name, has_value, value = raw[2:].partition("=")
            kind = allowed.get(name)
            if kind is None:
                known = ", ".join("--" + f for f in sorted(allowed)) or "none"
                raise ValueError(f"{node.name}: unknown flag: --{name} (this instruction takes: {known})")
            if name in self.values:
                raise ValueError(f"{node.name}: duplicate flag specified: --{name}")
            if kind == "bool":
                if has_value and value.lower() not in ("true", "false"):
                    raise ValueError(f"{node.name}: expecting boolean value for flag --{name}, not: {value}")
                value = "true" if not has_value else value.lower()
            elif not has_value:
                raise ValueError(f"{node.name}: missing a value on flag: --{name}")
            self.values[name] = value

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    def flag(self, name: str) -> bool:
        return self.values.get(name) == "true"


def instruction_from(node: Node, file: str = "Dockerfile") -> Instruction:
    try:
        return _instruction(node)
    except ValueError as exc:
        raise DockerfileError(str(exc), file=file, line=node.start_line) from None


def _instruction(node: Node) -> Instruction:
    k, args, name = node.keyword, node.args, node.name
    no_flags: dict[str, str] = {}
    if k == "from":
        flags = _Flags(node, {"platform": "string"})
        if not (len(args) == 1 or (len(args) == 3 and args[1].lower() == "as")):
            raise ValueError("FROM requires either one or three arguments (FROM image [AS name])")
        stage = args[2].lower() if len(args) == 3 else ""
        if stage and not _STAGE_NAME.fullmatch(stage):
            raise ValueError(
                f"invalid name for build stage: {stage!r}, name can't start with a number or contain symbols"
            )
        return From(node, args[0], stage, flags.get("platform"))
    if k == "run":
        flags = _Flags(node, {"network": "string"})
        if not args:
            raise ValueError("RUN requires at least one argument")
        network = flags.get("network")
        if network and network not in ("default", "none", "host"):
            raise ValueError(f"RUN: --network={network} is not one of default, none, host")
        return Run(node, tuple(args), not node.json, node.heredocs, network)
    if k in ("copy", "add"):
        allowed = {"chown": "string", "chmod": "string", "link": "bool"}
        if k == "copy":
            allowed["from"] = "string"
        flags = _Flags(node, allowed)
        if len(args) < 2:
            raise ValueError(
                f"{name} requires at least two arguments, but only one was provided. "
                "Destination could not be determined."
            )
        sources: list[str] = []
        contents: list[Heredoc] = []
        docs = list(node.heredocs)
        for word in args[:-1]:
            doc = parse_heredoc(word) if docs else None
            if doc is not None and docs and docs[0].name == doc.name:
                contents.append(docs.pop(0))
            else:
                sources.append(word)
        return Copy(
            node, tuple(sources), args[-1], add=k == "add", from_stage=flags.get("from"),
            chown=flags.get("chown"), chmod=flags.get("chmod"), link=flags.flag("link"),
            contents=tuple(contents),
        )
    if k in ("env", "label"):
        _Flags(node, no_flags)
        if not args:
            raise ValueError(f"{name} requires at least one argument")
        pairs = tuple((args[i], args[i + 1]) for i in range(0, len(args), 2))
        return Env(node, pairs) if k == "env" else Label(node, pairs)
    if k == "arg":
        _Flags(node, no_flags)
        if not args:
            raise ValueError("ARG requires at least one argument")
        arg_pairs: list[tuple[str, str | None]] = []
        for word in args:
            key, has_value, value = word.partition("=")
            if not key:
                raise ValueError("ARG names can not be blank")
            arg_pairs.append((key, value if has_value else None))
        return Arg(node, tuple(arg_pairs))
    if k in ("workdir", "user", "stopsignal", "maintainer"):
        _Flags(node, no_flags)
        if len(args) != 1:
            raise ValueError(f"{name} requires exactly one argument")
        if k == "workdir":
            return Workdir(node, args[0])
        if k == "user":
            return User(node, args[0])
        if k == "stopsignal":
            return StopSignal(node, args[0])
        return Maintainer(node, args[0])
    if k in ("cmd", "entrypoint"):
        _Flags(node, no_flags)
        return (Cmd if k == "cmd" else Entrypoint)(node, tuple(args), not node.json)
    if k == "expose":
        _Flags(node, no_flags)
        if not args:
            raise ValueError("EXPOSE requires at least one argument")
        return Expose(node, tuple(args))
    if k == "volume":
        _Flags(node, no_flags)
        if not args:
            raise ValueError("VOLUME requires at least one argument")
        paths = tuple(a.strip() for a in args)
        if any(not p for p in paths):
            raise ValueError("VOLUME specified can not be an empty string")
        return Volume(node, paths)
    if k == "shell":
        _Flags(node, no_flags)
        if not args:
            raise ValueError("SHELL requires at least one argument")
        if not node.json:
            raise ValueError('SHELL requires the arguments to be in JSON form (SHELL ["/bin/bash", "-c"])')
        return Shell(node, tuple(args))
    if k == "onbuild":
        _Flags(node, no_flags)
        if not args or node.sub is None:
            raise ValueError("ONBUILD requires at least one argument")
        trigger = node.sub.name
        if trigger == "ONBUILD":
            raise ValueError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("FROM", "MAINTAINER"):
            raise ValueError(f"{trigger} isn't allowed as an ONBUILD trigger")
        _instruction(node.sub)  # a trigger that could never run is refused now
        expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", node.original)
        return Onbuild(node, expression)
    if k == "healthcheck":
        return _healthcheck(node)
    raise ValueError(f"unknown instruction: {name}")


def _healthcheck(node: Node) -> Healthcheck:
    args = node.args
    if not args:
        raise ValueError("HEALTHCHECK requires at least one argument")
    kind = args[0].upper()
    rest = args[1:]
    if kind == "NONE":
        if rest or node.flags:
            raise ValueError("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(node, ("NONE",))
    flags = _Flags(
        node,
        {"interval": "string", "timeout": "string", "start-period": "string",
         "start-interval": "string", "retries": "string"},
    )
    if kind != "CMD":
        raise ValueError(f'Unknown type "{args[0]}" in HEALTHCHECK (try CMD)')
    if not rest or (not node.json and not rest[0].strip()):
        raise ValueError("Missing command after HEALTHCHECK CMD")
    test = ("CMD", *rest) if node.json else ("CMD-SHELL", " ".join(rest))
    retries = 0
    if flags.get("retries"):
        try:
            retries = int(flags.get("retries"))
        except ValueError:
            raise ValueError(f"HEALTHCHECK: --retries={flags.get('retries')} is not a whole number") from None
        if retries < 0:
            raise ValueError(f"--retries cannot be negative ({retries})")
    return Healthcheck(
        node,
        test,
        interval_ns=_interval(flags, "interval"),
        timeout_ns=_interval(flags, "timeout"),
        start_period_ns=_interval(flags, "start-period"),
        start_interval_ns=_interval(flags, "start-interval"),
        retries=retries,
    )


def _interval(flags: _Flags, name: str) -> int:
    text = flags.get(name)
    if not text:
        return 0
    ns = parse_duration(text, f"--{name}")
    if ns == 0:
        return 0
    if ns < MINIMUM_DURATION_NS:
        raise ValueError(f'Interval "{name}" cannot be less than 1ms')
    return ns


def parse_duration(text: str, what: str) -> int:
    """A Go duration ("30s", "1m30s", "1.5h", "500ms", "0") in ns."""
    if text == "0":
        return 0
    body = text.lstrip("+")
    if body.startswith("-"):
        raise ValueError(f"{what}={text}: a duration cannot be negative")
    pos, total = 0, 0.0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None:
            raise ValueError(f"{what}={text} is not a duration (write it as 30s, 1m30s, 500ms, 1h)")
        total += float(match.group(1)) * _UNITS_NS[match.group(2)]
        pos = match.end()
    if not body:
        raise ValueError(f"{what}= needs a duration (30s, 1m30s, 500ms, 1h)")
    return int(total)
