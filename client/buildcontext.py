"""The build context `pallet build` sends: a tar of a directory filtered by its
`.dockerignore`, a tar read from stdin, or a Dockerfile alone, and where the Dockerfile is
in it.

Owns: deciding the context and the Dockerfile as docker's CLI does (`-f` relative to the
current directory, `Dockerfile` or else `dockerfile` in the context, `-` for stdin), and
writing the tar on a thread as it is sent (`Context.chunks`: pieces of a few MiB, never
the whole context in memory). A directory is walked in name order; what `.dockerignore`
excludes is never opened or read (an excluded directory is not even entered unless an
exception pattern names something below it, as docker's walk decides); entries are
written as docker writes them (owner 0:0, the file's mode and whole-second mtime,
symlinks as symlinks, a file's second name as a hardlink, FIFOs; sockets and device nodes
are skipped, with a warning). A Dockerfile from outside the context, from stdin, or one
the `.dockerignore` excludes, is added under a reserved name (`.dockerfile.` and 20 hex
digits: docker's), which the build reads but never copies into an image. A tar on stdin
goes as it is (gzip, bzip2 or xz ones decompressed here: palletd takes plain tars).
Must not: talk to palletd (`client.api` sends the chunks), or follow a symlink inside
the context.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import secrets
import stat
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from pallet.client.cplocal import CHUNK, ChunkSink
from pallet.client.dockerignore import Matcher, read_patterns
from pallet.v1.errors import InvalidArgument, NotFound

DEFAULT_DOCKERFILE = "Dockerfile"
BLOCK = tarfile.BLOCKSIZE
_ZEROS = bytes(BLOCK)
#: How much of stdin is looked at to tell a tar from a Dockerfile (docker's: two blocks).
_PEEK = 2 * BLOCK
_NOFOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NOATIME", 0)


@dataclass
class Context:
    """What to send: `chunks()` (the tar, made while it is sent) and the Dockerfile's
    path inside it. `warnings` collects what was skipped (printed by the verb)."""

    write: Callable[[ChunkSink], None]
    dockerfile: str
    warnings: list[str]

    def chunks(self) -> Iterator[bytes]:
        return _threaded(self.write)


def reserved_name() -> str:
    return ".dockerfile." + secrets.token_hex(10)


# ---- a directory --------------------------------------------------------------------------


def directory_context(path: str, dockerfile: str | None, stdin: IO[bytes] | None = None) -> Context:
    """The context of a directory; `dockerfile` is -f as given (None: the default, "-":
    read from `stdin`)."""
    try:
        root = os.path.realpath(path)
        st = os.stat(root)
    except OSError as exc:
        raise NotFound(f"unable to prepare context: path {path!r} not found ({exc.strerror})") from None
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidArgument(f"unable to prepare context: context must be a directory: {root}")
    matcher = Matcher(read_patterns(_read_dockerignore(root)))
    extra: tuple[str, bytes] | None = None
    if dockerfile == "-":
        if stdin is None:
            raise InvalidArgument("the Dockerfile is to come from stdin, but there is no stdin")
        extra = (reserved_name(), stdin.read())
        name = extra[0]
    else:
        located = _locate_dockerfile(root, dockerfile)
        rel = os.path.relpath(located, root)
        if rel == ".." or rel.startswith("../") or matcher.excludes(rel):
            # Outside the context, or left out of it: sent for the build only.
            extra = (reserved_name(), _read_file(located))
            name = extra[0]
        else:
            name = rel
    warnings: list[str] = []

    def write(sink: ChunkSink) -> None:
        writer = _TarWriter(sink, warnings)
        writer.walk(root, matcher)
        if extra is not None:
            writer.file_bytes(extra[0], extra[1], 0o600)
        writer.close()

    return Context(write, name, warnings)


def _read_dockerignore(root: str) -> str:
    try:
        with open(os.path.join(root, ".dockerignore"), "rb") as f:
            return f.read().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise InvalidArgument(f"cannot read {root}/.dockerignore: {exc.strerror}") from None


def _locate_dockerfile(root: str, given: str | None) -> str:
    """The Dockerfile's real path (symlinks resolved): -f is relative to the current
    directory; without it, `Dockerfile` in the context, else `dockerfile`."""
    if given:
        candidate = os.path.abspath(given)
    else:
        candidate = os.path.join(root, DEFAULT_DOCKERFILE)
        lower = os.path.join(root, DEFAULT_DOCKERFILE.lower())
        if not os.path.lexists(candidate) and os.path.lexists(lower):
            candidate = lower
    real = os.path.realpath(candidate)
    if not os.path.exists(real):
        raise NotFound(f'Cannot locate Dockerfile: "{candidate}"')
    if os.path.isdir(real):
        raise InvalidArgument(f'the Dockerfile "{candidate}" is a directory: name a file with -f')
    return real


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the Dockerfile {path}: {exc.strerror}") from None


class _TarWriter:
    """Tar entries written into a ChunkSink, as docker's archive writes a context."""

    def __init__(self, sink: ChunkSink, warnings: list[str]) -> None:
        self._sink = sink
        self._warnings = warnings
        self._links: dict[tuple[int, int], str] = {}

    def _header(self, info: tarfile.TarInfo) -> None:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._sink.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def file_bytes(self, name: str, data: bytes, mode: int) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), mode, int(time.time())
        self._header(info)
        self._sink.write(data)
        self._pad(len(data))

    def _pad(self, size: int) -> None:
        if size % BLOCK:
            self._sink.write(_ZEROS[: BLOCK - size % BLOCK])

    def close(self) -> None:
        self._sink.write(_ZEROS + _ZEROS)
        self._sink.flush()

    def walk(self, root: str, matcher: Matcher) -> None:
        self._walk(root, "", matcher, None)

    def _walk(self, directory: str, prefix: str, matcher: Matcher, parent: list[bool] | None) -> None:
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            raise InvalidArgument(f"can't stat '{directory}': {exc.strerror}") from None
        for entry in entries:
            rel = prefix + entry.name
            excluded, results = matcher.match(rel, parent) if matcher.patterns else (False, None)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                raise InvalidArgument(f"can't stat '{entry.path}': {exc.strerror}") from None
            is_dir = stat.S_ISDIR(st.st_mode)
            if excluded:
                if is_dir and matcher.exclusions and matcher.may_include_below(rel):
                    self._walk(entry.path, rel + "/", matcher, results)
                continue
            self._entry(entry.path, rel, st)
            if is_dir:
                self._walk(entry.path, rel + "/", matcher, results)

    def _entry(self, path: str, rel: str, st: os.stat_result) -> None:
        mode = st.st_mode
        info = tarfile.TarInfo(rel)
        info.mode = stat.S_IMODE(mode)
        info.mtime = int(st.st_mtime)
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
            self._header(info)
        elif stat.S_ISREG(mode):
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                first = self._links.get(key)
                if first is not None:
                    info.type, info.linkname = tarfile.LNKTYPE, first
                    self._header(info)
                    return
                self._links[key] = rel
            self._regular(path, info)
        elif stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            try:
                info.linkname = os.readlink(path)
            except OSError as exc:
                raise InvalidArgument(f"can't read the symlink '{path}': {exc.strerror}") from None
            self._header(info)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
            self._header(info)
        else:
            kind = "a socket" if stat.S_ISSOCK(mode) else "a device node"
            self._warnings.append(f"skipping {path}: {kind} is not sent in a build context")

    def _regular(self, path: str, info: tarfile.TarInfo) -> None:
        try:
            fd = os.open(path, _NOFOLLOW)
        except PermissionError:
            raise InvalidArgument(f"no permission to read from '{path}'") from None
        except OSError as exc:
            raise InvalidArgument(f"can't open '{path}': {exc.strerror}") from None
        try:
            size = os.fstat(fd).st_size
            info.size = size
            self._header(info)
            left = size
            while left:
                data = os.read(fd, min(left, CHUNK))
                if not data:
                    raise InvalidArgument(f"'{path}' shrank while it was read: try again")
                self._sink.write(data)
                left -= len(data)
            self._pad(size)
        except OSError as exc:
            raise InvalidArgument(f"can't read '{path}': {exc.strerror}") from None
        finally:
            os.close(fd)


# ---- stdin --------------------------------------------------------------------------------


def stdin_context(stdin: IO[bytes], dockerfile: str | None) -> Context:
    """`pallet build -`: a tar (plain or compressed) or a Dockerfile on stdin."""
    if dockerfile == "-":
        raise InvalidArgument("invalid argument: can't use stdin for both build context and dockerfile")
    head = _read_up_to(stdin, _PEEK)
    decompress = _decompressor(head)
    if decompress is None and not _is_tar(head):
        if dockerfile:
            raise InvalidArgument("ambiguous Dockerfile source: both stdin and flag correspond to Dockerfiles")
        content = head + stdin.read()

        def write_dockerfile(sink: ChunkSink) -> None:
            writer = _TarWriter(sink, [])
            writer.file_bytes(DEFAULT_DOCKERFILE, content, 0o644)
            writer.close()

        return Context(write_dockerfile, DEFAULT_DOCKERFILE, [])

    def write_tar(sink: ChunkSink) -> None:
        source: Any = _Prefixed(head, stdin)
        if decompress is not None:
            source = decompress(source)
        while data := source.read(CHUNK):
            sink.write(data)
        sink.flush()

    return Context(write_tar, dockerfile or DEFAULT_DOCKERFILE, [])


def _read_up_to(stream: IO[bytes], n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        data = stream.read(n - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def _decompressor(head: bytes) -> Callable[[Any], Any] | None:
    if head.startswith(b"\x1f\x8b"):
        return lambda f: gzip.GzipFile(fileobj=f, mode="rb")
    if head.startswith(b"BZh"):
        return lambda f: bz2.BZ2File(f, "rb")
    if head.startswith(b"\xfd7zXZ\x00"):
        return lambda f: lzma.LZMAFile(f, "rb")
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise InvalidArgument("the context on stdin is zstd-compressed: decompress it first (zstd -dc)")
    return None


def _is_tar(head: bytes) -> bool:
    if len(head) < BLOCK:
        return False
    try:
        tarfile.TarInfo.frombuf(head[:BLOCK], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


class _Prefixed:
    """`head`, then the rest of `stream`."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        self._head = head
        self._stream = stream

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0 or n >= len(self._head):
                data, self._head = self._head, b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            return data
        return self._stream.read(n)


# ---- the thread ---------------------------------------------------------------------------


def _threaded(write: Callable[[ChunkSink], None]) -> Iterator[bytes]:
    """The pieces `write` puts into a ChunkSink on a thread of its own, as they come; its
    error is raised here once the pieces before it are out."""
    sink = ChunkSink()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            write(sink)
        except BrokenPipeError:
            pass  # the reader stopped (palletd refused the build)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader
            errors.append(exc)
        finally:
            if not sink.stopped.is_set():
                with contextlib.suppress(BrokenPipeError):
                    sink.close()

    writer = threading.Thread(target=run, name="build-context", daemon=True)
    writer.start()
    try:
        while (piece := sink.pieces.get()) is not None:
            yield piece
    finally:
        sink.stopped.set()
        writer.join()
    if errors:
        exc = errors[0]
        if isinstance(exc, OSError):
            raise InvalidArgument(f"cannot read the build context: {exc.filename or ''} {exc.strerror or exc}") from None
        if isinstance(exc, (gzip.BadGzipFile, lzma.LZMAError, EOFError)):
            raise InvalidArgument(f"the compressed context on stdin is damaged: {exc}") from None
        raise exc


__all__ = ["Context", "directory_context", "reserved_name", "stdin_context"]
