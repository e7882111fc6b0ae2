"""What each Dockerfile instruction does to a stage's state, without running anything.

Owns: a stage's `StageState` (its image config as it grows, its ARGs, its SHELL, its
author, whether CMD was set), the environment variables are substituted from (the
stage's ARGs, overridden by its ENV), applying the config instructions (ENV, LABEL,
ARG, USER, CMD, ENTRYPOINT, EXPOSE, VOLUME, STOPSIGNAL, ONBUILD, MAINTAINER, SHELL,
WORKDIR's path) with docker's substitution rules, the argv of a RUN (shell form, exec
form, heredocs as BuildKit runs them), and the history's `created_by` strings as docker's
classic builder writes them ("/bin/sh -c #(nop)  ENV A=b", "|1 X=y /bin/sh -c make").
Must not: touch images, files or containers.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from pallet.daemon.builder import instructions as ins
from pallet.daemon.builder.dockerfile import parse_heredoc
from pallet.daemon.builder.shellwords import Lexer, SubstitutionError
from pallet.daemon.containers.signals import parse_signal
from pallet.daemon.images.model import ImageConfig
from pallet.v1.errors import InvalidArgument, PalletError

DEFAULT_SHELL = ("/bin/sh", "-c")
#: Build args every Dockerfile may use without declaring them (docker's predefined ones);
#: left out of the history and the cache key unless the Dockerfile declares them.
PROXY_ARGS = frozenset({
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
})
_PORT = re.compile(r"(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?", re.IGNORECASE)


@dataclass
class StageState:
    """A stage while it is built."""

    config: ImageConfig = field(default_factory=ImageConfig)
    args: dict[str, str | None] = field(default_factory=dict)  # declared ARGs (None: no value)
    author: str = ""
    cmd_set: bool = False

    @property
    def shell(self) -> tuple[str, ...]:
        return self.config.shell or DEFAULT_SHELL

    def env(self) -> dict[str, str]:
        """What `$VAR` means now: the stage's ARGs, its ENV over them."""
        out = {k: v for k, v in self.args.items() if v is not None}
        for item in self.config.env:
            key, _, value = item.partition("=")
            out[key] = value
        return out

    def run_env(self) -> tuple[str, ...]:
        """The ARGs a RUN sees as environment variables (those ENV does not set)."""
        set_by_env = {item.partition("=")[0] for item in self.config.env}
        return tuple(f"{k}={v}" for k, v in self.args.items() if v is not None and k not in set_by_env)


class Step:
    """Substitution for one instruction, its errors naming the file and line."""

    def __init__(self, instruction: ins.Instruction, state: StageState, lexer: Lexer, file: str) -> None:
        self.instruction = instruction
        self.state = state
        self.lexer = lexer
        self.file = file

    def error(self, message: str) -> PalletError:
        return step_error(self.file, self.instruction, message)

    def word(self, text: str) -> str:
        try:
            return self.lexer.process_word(text, self.state.env())
        except SubstitutionError as exc:
            raise self.error(exc.message) from None

    def words(self, text: str) -> list[str]:
        try:
            return self.lexer.process_words(text, self.state.env())
        except SubstitutionError as exc:
            raise self.error(exc.message) from None


def step_error(
    file: str, instruction: ins.Instruction, message: str, kind: type[PalletError] = InvalidArgument
) -> PalletError:
    """An error of a step: the file, the line and the instruction named
    ("Dockerfile:7: RUN make: ...")."""
    text = instruction.text if len(instruction.text) <= 80 else instruction.text[:77] + "..."
    return kind(f"{file}:{instruction.line}: {text}: {message}")


def _nop(shell: tuple[str, ...], text: str, two_spaces: bool = True) -> str:
    # docker's classic builder: the shell, "#(nop) " and the instruction (ENV, LABEL and
    # most others as a separate word: two spaces; WORKDIR, COPY and ADD in one: one).
    return " ".join(shell) + (" #(nop)  " if two_spaces else " #(nop) ") + text


def _go_list(items: tuple[str, ...] | list[str]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in items) + "]"


def _command(step: Step, command: tuple[str, ...], shell_form: bool) -> tuple[str, ...]:
    if shell_form:
        return (*step.state.shell, command[0]) if command else ()
    return command


def apply_config(step: Step, build_args: Mapping[str, str | None], meta: Mapping[str, str]) -> tuple[ImageConfig, str]:
    """A config instruction: the stage's new config (its other state updated in place)
    and the history's created_by."""
    i, state = step.instruction, step.state
    config = state.config
    shell = state.shell
    if isinstance(i, ins.Env):
        env = step.state.env()
        items = list(config.env)
        said: list[str] = []
        for key, raw in i.pairs:
            try:
                name = step.lexer.process_word(key, env)
                text = step.lexer.process_word(raw, env)
            except SubstitutionError as exc:
                raise step.error(exc.message) from None
            if not name:
                raise step.error("ENV names can not be blank")
            items = [e for e in items if e.partition("=")[0] != name] + [f"{name}={text}"]
            said.append(f"{name}={text}")
        return replace(config, env=tuple(items)), _nop(shell, "ENV " + " ".join(said))
    if isinstance(i, ins.Label):
        labels = dict(config.labels)
        said = []
        for key, raw in i.pairs:
            name, text = step.word(key), step.word(raw)
            if not name:
                raise step.error("LABEL names can not be blank")
            labels[name] = text
            said.append(f"{name}={text}")
        return replace(config, labels=labels), _nop(shell, "LABEL " + " ".join(said))
    if isinstance(i, ins.Arg):
        said = []
        for name, default in i.pairs:
            if name in build_args and build_args[name] is not None:
                value: str | None = build_args[name]
            elif default is not None:
                value = step.word(default)
            else:
                value = meta.get(name)
            state.args[name] = value
            said.append(name if default is None else f"{name}={step.word(default)}")
        return config, _nop(shell, "ARG " + " ".join(said))
    if isinstance(i, ins.User):
        user = step.word(i.user)
        if not user:
            raise step.error("USER needs a user (name or uid, with an optional :group)")
        return replace(config, user=user), _nop(shell, "USER " + user)
    if isinstance(i, ins.Cmd):
        cmd = _command(step, i.command, i.shell_form)
        state.cmd_set = True
        return replace(config, cmd=cmd), _nop(shell, "CMD " + _go_list(cmd))
    if isinstance(i, ins.Entrypoint):
        entrypoint = _command(step, i.command, i.shell_form)
        # As docker: an ENTRYPOINT drops the Cmd the stage inherited, not one it set.
        cmd = config.cmd if state.cmd_set else ()
        return replace(config, entrypoint=entrypoint, cmd=cmd), _nop(shell, "ENTRYPOINT " + _go_list(entrypoint))
    if isinstance(i, ins.Expose):
        ports = [w for p in i.ports for w in step.words(p)]
        exposed = list(config.exposed_ports)
        for port in ports:
            try:
                specs = expand_port(port)
            except InvalidArgument as exc:
                raise step.error(exc.message) from None
            for spec in specs:
                if spec not in exposed:
                    exposed.append(spec)
        return replace(config, exposed_ports=tuple(sorted(exposed))), _nop(shell, "EXPOSE " + " ".join(ports))
    if isinstance(i, ins.Volume):
        paths = [step.word(p) for p in i.paths]
        volumes = list(config.volumes)
        for path in paths:
            if not path:
                raise step.error("VOLUME specified can not be an empty string")
            if not path.startswith("/"):
                raise step.error(f"VOLUME {path}: the path must be absolute")
            if path not in volumes:
                volumes.append(path)
        return replace(config, volumes=tuple(volumes)), _nop(shell, "VOLUME [" + " ".join(paths) + "]")
    if isinstance(i, ins.StopSignal):
        sig = step.word(i.signal)
        try:
            parse_signal(sig)
        except PalletError:
            raise step.error(f"invalid signal: {sig} (give a name like SIGTERM or a number)") from None
        return replace(config, stop_signal=sig), _nop(shell, "STOPSIGNAL " + sig)
    if isinstance(i, ins.Maintainer):
        state.author = i.maintainer
        return config, _nop(shell, "MAINTAINER " + i.maintainer)
    if isinstance(i, ins.Onbuild):
        return replace(config, on_build=(*config.on_build, i.expression)), _nop(shell, "ONBUILD " + i.expression)
    if isinstance(i, ins.Shell):
        return replace(config, shell=i.shell), _nop(shell, "SHELL [" + " ".join(i.shell) + "]")
    raise AssertionError(type(i).__name__)


def workdir(step: Step) -> tuple[ImageConfig, str]:
    """WORKDIR: the new working directory (a relative one is under the current one)."""
    assert isinstance(step.instruction, ins.Workdir)
    path = step.word(step.instruction.path)
    if not path:
        raise step.error("WORKDIR needs a path")
    current = step.state.config.working_dir or "/"
    full = posixpath.normpath(posixpath.join(current, path))
    if full.startswith("//"):
        full = full[1:]
    return replace(step.state.config, working_dir=full), _nop(step.state.shell, "WORKDIR " + full, two_spaces=False)


def expand_port(port: str) -> list[str]:
    match = _PORT.fullmatch(port)
    if match is None:
        raise InvalidArgument(f"invalid containerPort: {port} (write it as 80, 80/tcp, 53/udp or 8000-8010)")
    low = int(match.group(1))
    high = int(match.group(2) or low)
    proto = (match.group(3) or "tcp").lower()
    if not 0 < low <= high <= 65535:
        raise InvalidArgument(f"invalid port range: {port} (ports go from 1 to 65535)")
    return [f"{p}/{proto}" for p in range(low, high + 1)]


@dataclass(frozen=True, slots=True)
class RunCommand:
    argv: tuple[str, ...]
    created_by: str
    stdin: bytes | None = None


def run_command(step: Step, history_args: tuple[str, ...]) -> RunCommand:
    """RUN's argv (shell form in the stage's shell; a heredoc script as BuildKit runs it)
    and its created_by, `|N K=V ...` first when the step sees build args."""
    i = step.instruction
    assert isinstance(i, ins.Run)
    stdin: bytes | None = None
    if not i.shell_form:
        argv = i.command
    elif i.heredocs:
        line = i.command[0]
        only = parse_heredoc(line.strip()) if len(i.heredocs) == 1 else None
        if only is not None and only.name == i.heredocs[0].name:
            doc = i.heredocs[0]
            script = doc.text
            if script.startswith("#!"):
                # A script with its own interpreter: the interpreter reads it on stdin.
                interpreter = script.splitlines()[0][2:].split()
                if not interpreter:
                    raise step.error("the heredoc's #! line names no interpreter")
                argv = tuple(interpreter)
                stdin = script.encode()
            else:
                argv = (*step.state.shell, script)
        else:
            # Heredocs inside a longer command: the shell reads them itself.
            full = line
            for doc in i.heredocs:
                full += "\n" + doc.content + doc.name
            argv = (*step.state.shell, full)
    else:
        argv = (*step.state.shell, i.command[0])
    shown = " ".join(argv)
    if history_args:
        shown = f"|{len(history_args)} {' '.join(sorted(history_args))} {shown}"
    return RunCommand(argv, shown, stdin)


def copy_created_by(step: Step, kinds: list[str], digest: str, dest: str) -> str:
    """COPY/ADD's history line: "COPY file:<hash> in /dest " (dir:, multi: as docker)."""
    i = step.instruction
    assert isinstance(i, ins.Copy)
    kind = kinds[0] if len(kinds) == 1 else "multi"
    name = "ADD" if i.add else "COPY"
    return _nop(step.state.shell, f"{name} {kind}:{digest} in {dest} ", two_spaces=False)


def go_duration(ns: int) -> str:
    """A duration as Go's time.Duration prints it ("1m30s", "500ms", "0s")."""
    if ns == 0:
        return "0s"
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{_trim_zeros(ns / 1_000)}µs"
    if ns < 1_000_000_000:
        return f"{_trim_zeros(ns / 1_000_000)}ms"
    total = ns / 1_000_000_000
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    seconds = _trim_zeros(rest / 10**9)
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{_trim_zeros(total)}s"


def _trim_zeros(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def healthcheck_created_by(shell: tuple[str, ...], hc: ins.Healthcheck) -> str:
    """HEALTHCHECK's history line, as docker's classic builder prints its config (Go's %q
    of the struct: `&{["CMD-SHELL" "curl x"] "30s" "0s" "0s" "0s" '\x03'}`)."""
    fields = " ".join(f'"{go_duration(v)}"' for v in (hc.interval_ns, hc.timeout_ns, hc.start_period_ns, hc.start_interval_ns))
    retries = f"'\\x{hc.retries:02x}'" if hc.retries < 256 else f"'\\U{hc.retries:08x}'"
    return _nop(shell, f"HEALTHCHECK &{{{_go_list(hc.test)} {fields} {retries}}}")
