"""`pallet build`: an image from a Dockerfile and a context, shown as docker shows it.

Owns: turning the verb's flags into BuildOptions (`--build-arg K` takes K from our
environment, and an unset K is sent without a value, as docker does), choosing the
context (`buildcontext`), and showing the build: `plain` prints docker's classic
builder's lines (`Step 1/5 : FROM busybox`, ` ---> Using cache`, ` ---> 1a2b3c4d5e6f`,
the output of RUN, `Successfully built ...`, `Successfully tagged ...`), `auto` on a
terminal a live view (each step's line as it ends, and below it the current step's last
lines of output, redrawn in place), `quiet` (and -q) only the image id, with what the
build printed shown on stderr if it fails. Must not: build tars (`buildcontext`) or talk
gRPC (`client.api`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import deque
from collections.abc import Iterator
from typing import IO, Any, Protocol

from pallet.client.api import PalletClient
from pallet.client.buildcontext import Context, directory_context, stdin_context
from pallet.client.terminal import terminal_size
from pallet.v1.errors import InvalidArgument

_REMOTE = ("http://", "https://", "git://", "git@", "github.com/")
#: Lines of the current step's output the live view keeps on screen.
LIVE_LINES = 6


def build_args(values: list[str] | None) -> list[tuple[str, str | None]]:
    """--build-arg K=V and K (K's value from our environment; None when it is unset)."""
    out: list[tuple[str, str | None]] = []
    for item in values or ():
        name, sep, value = item.partition("=")
        if not name:
            raise InvalidArgument(f"invalid --build-arg {item!r}: give NAME=VALUE, or NAME to take it from the environment")
        out.append((name, value if sep else os.environ.get(name)))
    return out


def labels(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or ():
        name, _, value = item.partition("=")
        if not name:
            raise InvalidArgument(f"invalid --label {item!r}: give NAME=VALUE")
        out[name] = value
    return out


def human_size(size: float) -> str:
    """docker's units.HumanSize: four significant digits, decimal units."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if size < 1000 or unit == "PB":
            return f"{size:.4g}{unit}"
        size /= 1000
    return f"{size:.4g}PB"


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def familiar(reference: str) -> str:
    """A stored reference as docker shows it ("docker.io/library/app:v1" -> "app:v1")."""
    for prefix in ("docker.io/library/", "docker.io/"):
        if reference.startswith(prefix):
            return reference[len(prefix):]
    return reference


def context_of(args: argparse.Namespace, stdin: IO[bytes]) -> Context:
    path = args.path
    if path.startswith(_REMOTE):
        raise InvalidArgument(
            f"unable to prepare context: {path!r} is a remote context (a URL or a git repository), "
            "which pallet does not fetch: give a directory, or - for a tar or a Dockerfile on stdin"
        )
    if path == "-":
        return stdin_context(stdin, args.file)
    return directory_context(path, args.file, stdin)


# ---- showing the build ------------------------------------------------------------------------


class _Text(Protocol):
    def write(self, text: str, /) -> int: ...
    def flush(self) -> None: ...


class _Bytes(Protocol):
    def write(self, data: bytes, /) -> int: ...
    def flush(self) -> None: ...


class PlainView:
    """docker's classic builder's lines, as they come."""

    def __init__(self, out: _Text, raw: _Bytes) -> None:
        self._out = out
        self._raw = raw
        self._at_line_start = True

    def line(self, text: str) -> None:
        if not self._at_line_start:
            self._out.write("\n")
        self._out.write(text + "\n")
        self._out.flush()
        self._at_line_start = True

    def output(self, data: bytes, stream: int) -> None:
        # docker shows a RUN's stdout and stderr alike, on stdout.
        self._out.flush()
        self._raw.write(data)
        self._raw.flush()
        if data:
            self._at_line_start = data.endswith(b"\n")

    def step_over(self) -> None:
        pass

    def failed(self) -> None:
        if not self._at_line_start:
            self.line("")

    def close(self) -> None:
        pass


class LiveView:
    """A terminal's view: the lines that stay, and below them the current step's last
    lines of output, drawn over on every change."""

    def __init__(self, out: IO[str], columns: int) -> None:
        self._out = out
        self._columns = max(columns, 20)
        self._tail: deque[str] = deque(maxlen=LIVE_LINES)
        self._partial = ""
        self._drawn = 0

    def _erase(self) -> None:
        if self._drawn:
            self._out.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _draw(self) -> None:
        # Every change is drawn at once: at most LIVE_LINES short lines, and the view
        # must never lag behind a step that went quiet (nothing would draw it later).
        self._erase()
        lines = list(self._tail) + ([self._partial] if self._partial else [])
        for text in lines[-LIVE_LINES:]:
            shown = text.replace("\t", "    ")[: self._columns - 3]
            self._out.write(f"\x1b[2m | {shown}\x1b[0m\n")
        self._drawn = len(lines[-LIVE_LINES:])
        self._out.flush()

    def line(self, text: str) -> None:
        self._erase()
        self._out.write(text + "\n")
        self._draw()

    def output(self, data: bytes, stream: int) -> None:
        text = self._partial + data.decode("utf-8", "replace").replace("\r\n", "\n")
        *whole, self._partial = text.split("\n")
        for piece in whole:
            self._tail.append(piece.rsplit("\r", 1)[-1])
        self._partial = self._partial.rsplit("\r", 1)[-1]
        self._draw()

    def step_over(self) -> None:
        self._erase()
        self._tail.clear()
        self._partial = ""
        self._out.flush()

    def failed(self) -> None:
        """The failing step's last lines stay on screen, above the error."""
        self._erase()
        for text in list(self._tail) + ([self._partial] if self._partial else []):
            self._out.write(f" | {text}\n")
        self._tail.clear()
        self._partial = ""
        self._out.flush()

    def close(self) -> None:
        self.step_over()


def show(responses: Iterator[Any], view: PlainView | LiveView) -> Any:
    """Render the progress; returns the BuildResult."""
    from pallet.v1 import builds_pb2 as pb

    result = None
    try:
        for response in responses:
            if response.WhichOneof("payload") == "result":
                result = response.result
                continue
            p = response.progress
            if p.state == pb.BUILD_STEP_STATE_STARTED:
                view.step_over()
                view.line(p.text)
            elif p.state == pb.BUILD_STEP_STATE_CACHED:
                view.line(" ---> Using cache")
            elif p.state == pb.BUILD_STEP_STATE_OUTPUT:
                view.output(p.data, p.stream or 1)
            elif p.state == pb.BUILD_STEP_STATE_DONE:
                if p.image_id:
                    view.line(f" ---> {short_id(p.image_id)}")
            elif p.state == pb.BUILD_STEP_STATE_INFO:
                view.line(p.text.rstrip("\n"))
    except BaseException:
        view.failed()
        raise
    view.close()
    if result is None:
        raise InvalidArgument("palletd ended the build without its result")
    return result


class _Counted:
    """The context's chunks, counted; docker's "Sending build context" line once sent."""

    def __init__(self, chunks: Iterator[bytes], announce: Any) -> None:
        self._chunks = chunks
        self._announce = announce
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.size += len(chunk)
            yield chunk
        if self._announce is not None:
            self._announce(f"Sending build context to Docker daemon  {human_size(self.size)}")

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def build(args: argparse.Namespace) -> int:
    from pallet.v1 import builds_pb2 as pb

    progress = "quiet" if args.quiet else (args.progress or "auto")
    if args.iidfile:
        try:
            os.unlink(args.iidfile)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise InvalidArgument(f"cannot remove the old --iidfile {args.iidfile}: {exc.strerror}") from None
    context = context_of(args, sys.stdin.buffer)
    options = pb.BuildOptions(
        dockerfile=context.dockerfile,
        tags=list(args.tag or ()),
        build_args=[pb.BuildArg(name=n) if v is None else pb.BuildArg(name=n, value=v) for n, v in build_args(args.build_arg)],
        labels=labels(args.label),
        target=args.target or "",
        no_cache=args.no_cache,
        pull=args.pull,
        network=args.network or "",
        platform=args.platform or "",
    )
    quiet_log: list[str] = []
    view: PlainView | LiveView
    size = terminal_size((1,))
    if progress == "quiet":
        view = PlainView(_Buffered(quiet_log), _BufferedRaw(quiet_log))
    elif progress == "auto" and size is not None:
        view = LiveView(sys.stdout, size[1])
    else:
        view = PlainView(sys.stdout, sys.stdout.buffer)
    chunks = _Counted(context.chunks(), view.line)
    with PalletClient(args.host, tls=args.tls) as client:
        try:
            result = show(client.build(options, chunks), view)
        except BaseException:
            if quiet_log:
                sys.stderr.write("".join(quiet_log))
            raise
        finally:
            for warning in context.warnings:  # what the walk skipped
                print(f"WARNING: {warning}", file=sys.stderr)
    if args.iidfile:
        with open(args.iidfile, "w") as f:
            f.write(result.image_id)
    if progress == "quiet":
        print(result.image_id)
        return 0
    view.line(f"Successfully built {short_id(result.image_id)}")
    for tag in result.tags:
        view.line(f"Successfully tagged {familiar(tag)}")
    return 0


class _Buffered:
    """A text stream into a list (what -q keeps, to show if the build fails)."""

    def __init__(self, into: list[str]) -> None:
        self._into = into

    def write(self, text: str) -> int:
        self._into.append(text)
        return len(text)

    def flush(self) -> None:
        pass


class _BufferedRaw:
    def __init__(self, into: list[str]) -> None:
        self._into = into

    def write(self, data: bytes) -> int:
        self._into.append(data.decode("utf-8", "replace"))
        return len(data)

    def flush(self) -> None:
        pass
