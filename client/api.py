"""The typed gRPC client of palletd: what the CLI and other Python programs call.

Owns: the channel to the daemon (`unix:///path`, `unix:path`, `unix://path` or a bare
path; or `tcp://HOST:PORT` with mutual TLS, `client.remote` and `client.tls`), one method per RPC returning pallet.v1 messages, duplex sessions for Attach and
Exec, and mapping every gRPC failure to `pallet.v1.errors` once (`client.errors`).
Must not: print, parse command lines or format output.

The calls go over `client.wire` (gRPC on one HTTP/2 connection, no grpcio: its import
alone cost more than the rest of a CLI command) and are made from the generated modules'
descriptors: `self._stub("containers").Create(request)` looks like a grpcio stub's call.

    with PalletClient("unix:///run/pallet/pallet.sock") as client:
        for c in client.list_containers(all=True):
            print(c.name, c.state.status)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

from pallet.client import wire
from pallet.client.errors import from_rpc_error
from pallet.v1.errors import Internal, InvalidArgument, Unavailable

if TYPE_CHECKING:
    from pallet.client.remote import TLSOptions

DEFAULT_HOST = "unix:///run/pallet/pallet.sock"
#: How long a connection to palletd may go unanswered (grpc core's own default); a
#: stopped or overloaded daemon is reported after this. $PALLET_CONNECT_TIMEOUT sets it.
DEFAULT_CONNECT_TIMEOUT = 20.0

#: Request size for streamed uploads (import, load, stdin).
CHUNK_SIZE = 256 * 1024
#: The largest message either side sends (palletd's own limit is the same).
MAX_MESSAGE = 64 * 1024 * 1024


def resolve_host(host: str | None = None) -> str:
    """The host to use: the argument, else $PALLET_HOST, else the default socket."""
    return host or os.environ.get("PALLET_HOST") or DEFAULT_HOST


def resolve_connect_timeout(timeout: float | None = None) -> float:
    """Seconds to wait for palletd to answer a connection: the argument, else
    $PALLET_CONNECT_TIMEOUT, else 20."""
    if timeout is not None:
        value, where = timeout, "connect timeout"
    else:
        raw = os.environ.get("PALLET_CONNECT_TIMEOUT", "")
        if not raw:
            return DEFAULT_CONNECT_TIMEOUT
        where = "PALLET_CONNECT_TIMEOUT"
        try:
            value = float(raw)
        except ValueError:
            raise InvalidArgument(
                f"invalid {where} {raw!r}: give a number of seconds, e.g. 20"
            ) from None
    if not 0 < value < 1e6:
        raise InvalidArgument(f"invalid {where} {value!r}: give more than 0 seconds")
    return value


def grpc_target(host: str) -> str:
    """The grpc target for a pallet host URL: a unix socket, or `HOST:PORT` for
    `tcp://HOST:PORT` (which palletd serves only with mutual TLS)."""
    if host.startswith("unix://"):
        path = host[len("unix://") :]
        if not path:
            raise InvalidArgument(f"invalid host {host!r}: no socket path")
        return f"unix://{path}" if path.startswith("/") else f"unix:{path}"
    if host.startswith("unix:"):
        if not host[len("unix:") :]:
            raise InvalidArgument(f"invalid host {host!r}: no socket path")
        return host
    if host.startswith("/"):
        return f"unix://{host}"
    if host.startswith("tcp://"):
        from pallet.client.remote import tcp_address

        name, port = tcp_address(host)
        return f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
    if host.startswith(("http://", "https://")):
        raise InvalidArgument(
            f"invalid host {host!r}: use tcp://HOST:PORT (always with mutual TLS) or "
            "unix:///path/to/pallet.sock"
        )
    raise InvalidArgument(
        f"invalid host {host!r}: expected unix:///path/to/pallet.sock or tcp://HOST:PORT"
    )


def socket_path(host: str) -> str:
    """The socket's path for a unix pallet host URL (as `grpc_target` checks it)."""
    target = grpc_target(host)
    if not target.startswith("unix"):
        raise InvalidArgument(f"host {host!r} is not a unix socket")
    return target[len("unix://") :] if target.startswith("unix://") else target[len("unix:") :]


def open_channel(host: str, connect_timeout: float, tls: TLSOptions | None = None) -> wire.Channel:
    """The channel to palletd at `host`: its unix socket, or tcp:// over mutual TLS with
    the files `tls` names (else $PALLET_TLS_VERIFY and $PALLET_CERT_PATH, as
    `remote.tls_files` finds them). ssl is imported only here, only for tcp://."""
    if not host.startswith("tcp://"):
        return wire.Channel(socket_path(host), connect_timeout, MAX_MESSAGE)
    from pallet.client import remote

    address = remote.tcp_address(host)
    files = remote.tls_files(host, tls)
    from pallet.client import tls as tlsconn

    dialer = tlsconn.Dialer(address, tlsconn.client_context(files))
    return wire.Channel(host, connect_timeout, MAX_MESSAGE, dialer=dialer)


class DuplexSession:
    """One Attach or Exec call: output chunks in, stdin out, ending with an Exit message.

    Iterate it for `LogChunk`s (stream, time_unix_nano, data); after the iteration ends,
    `exit` holds the `Exit` message (exit_code, error), or None when the stream ended
    without one (the daemon went away). The request side stays open until the exit or
    close(), so the daemon never reads an early end of input as "detach".
    """

    def __init__(
        self,
        host: str,
        call: wire.Stream,
        response_type: Any,
        request_type: Any,
        connect_timeout: float | None = None,
    ) -> None:
        self._host = host
        self._connect_timeout = connect_timeout
        self._call = call
        self._response_type = response_type
        self._request_type = request_type
        self.exit: Any = None

    def _next_response(self) -> Any:
        try:
            data = self._call.receive()
            return None if data is None else _decode(self._response_type, data)
        except wire.RpcError as exc:
            raise from_rpc_error(exc, self._host, self._connect_timeout) from None

    def first(self, field: str) -> Any:
        """Read the opening message (`ready` or `started`); an early exit is kept in `exit`."""
        response = self._next_response()
        if response is None:
            self.close()
            raise Unavailable(f"palletd at {self._host} ended the stream before it opened")
        kind = response.WhichOneof("payload")
        if kind == "exit":
            self.exit = response.exit
            self._call.end()
            return None
        if kind != field:
            self.close()
            raise Internal(f"palletd at {self._host} sent {kind!r} before {field!r}")
        return getattr(response, field)

    def __iter__(self) -> Iterator[Any]:
        if self.exit is not None:
            return
        while True:
            response = self._next_response()
            if response is None:
                break
            kind = response.WhichOneof("payload")
            if kind == "output":
                yield response.output
            elif kind == "exit":
                self.exit = response.exit
                break
        self._call.end()

    def send_stdin(self, data: bytes) -> None:
        """Send input; waits while palletd's window is full, so a fast stdin cannot
        outrun the container. Dropped once the call is over."""
        self._call.send(self._request_type(stdin=data).SerializeToString())

    def close_stdin(self) -> None:
        self._call.send(self._request_type(close_stdin=True).SerializeToString())

    def cancel(self) -> None:
        self._call.cancel()

    def close(self) -> None:
        """End our side; cancels the call when the exit has not arrived."""
        if self.exit is None:
            self._call.cancel()
        else:
            self._call.end()

    def __enter__(self) -> DuplexSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ExecSession(DuplexSession):
    """An Exec call; `exec_id` and `pid` come from its ExecStarted message."""

    exec_id: str = ""
    pid: int = 0


def _read_chunks(stream: Any, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Chunks of a binary file object or a file descriptor number."""
    read: Callable[[int], bytes]
    if isinstance(stream, int):
        fd = stream
        read = lambda n: os.read(fd, n)  # noqa: E731
    else:
        read = stream.read
    while True:
        data = read(size)
        if not data:
            return
        yield data


class PalletClient:
    """A connection to palletd. Close it (or use `with`) when done."""

    def __init__(
        self, host: str | None = None, connect_timeout: float | None = None, tls: TLSOptions | None = None
    ) -> None:
        """`host`: unix:///path or tcp://HOST:PORT (mutual TLS: `tls` names the files, else
        $PALLET_TLS_VERIFY and $PALLET_CERT_PATH or ~/.pallet give them)."""
        self.host = resolve_host(host)
        self._connect_timeout = resolve_connect_timeout(connect_timeout)
        self._channel = open_channel(self.host, self._connect_timeout, tls)
        self._stubs: dict[str, _Stub] = {}

    # -- plumbing -----------------------------------------------------------------------------
    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> PalletClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _stub(self, name: str) -> Any:
        """The stub of one service, importing its generated module on first use only."""
        stub = self._stubs.get(name)
        if stub is None:
            stub = self._stubs[name] = _Stub(self._channel, _pb(name), f"{name.capitalize()}Service")
        return stub

    def _call(self, service: str, method: str, request: Any) -> Any:
        try:
            return getattr(self._stub(service), method)(request)
        except wire.RpcError as exc:
            raise from_rpc_error(exc, self.host, self._connect_timeout) from None

    def _stream(self, call: Any) -> Iterator[Any]:
        """Iterate a server stream, mapping errors; cancels the call if abandoned early."""
        try:
            yield from call
        except wire.RpcError as exc:
            raise from_rpc_error(exc, self.host, self._connect_timeout) from None
        finally:
            call.cancel()

    def _upload(self, service: str, method: str, requests: Iterator[Any]) -> Any:
        try:
            return getattr(self._stub(service), method)(requests)
        except wire.RpcError as exc:
            raise from_rpc_error(exc, self.host, self._connect_timeout) from None

    # -- system -------------------------------------------------------------------------------
    def ping(self) -> Any:
        """PingResponse (api_version)."""
        return self._call("system", "Ping", _pb("system").PingRequest())

    def version(self) -> Any:
        """VersionResponse."""
        return self._call("system", "Version", _pb("system").VersionRequest())

    def info(self) -> Any:
        """InfoResponse."""
        return self._call("system", "Info", _pb("system").InfoRequest())

    # -- containers ---------------------------------------------------------------------------
    def create(self, config: Any) -> Any:
        """CreateContainerResponse (id, name) for a ContainerConfig."""
        pb = _pb("containers")
        return self._call("containers", "Create", pb.CreateContainerRequest(config=config))

    def start(self, container: str) -> int:
        """Start; returns the init process's host pid."""
        pb = _pb("containers")
        return int(self._call("containers", "Start", pb.StartContainerRequest(container=container)).pid)

    def start_async(self, container: str) -> Any:
        """Start without waiting: a future; `start_result(future)` gives the pid or raises."""
        pb = _pb("containers")
        try:
            return self._stub("containers").Start.future(pb.StartContainerRequest(container=container))
        except wire.RpcError as exc:
            raise from_rpc_error(exc, self.host, self._connect_timeout) from None

    def start_result(self, future: Any) -> int:
        try:
            return int(future.result().pid)
        except wire.RpcError as exc:
            raise from_rpc_error(exc, self.host, self._connect_timeout) from None

    def stop(self, container: str, timeout: int | None = None, signal: str = "") -> None:
        pb = _pb("containers")
        request = pb.StopContainerRequest(container=container, signal=signal)
        if timeout is not None:
            request.timeout = timeout
        self._call("containers", "Stop", request)

    def kill(self, container: str, signal: str = "") -> None:
        pb = _pb("containers")
        self._call("containers", "Kill", pb.KillContainerRequest(container=container, signal=signal))

    def restart(self, container: str, timeout: int | None = None, signal: str = "") -> int:
        pb = _pb("containers")
        request = pb.RestartContainerRequest(container=container, signal=signal)
        if timeout is not None:
            request.timeout = timeout
        return int(self._call("containers", "Restart", request).pid)

    def remove(self, container: str, force: bool = False, volumes: bool = False) -> None:
        pb = _pb("containers")
        request = pb.RemoveContainerRequest(container=container, force=force, volumes=volumes)
        self._call("containers", "Remove", request)

    def list_containers(self, all: bool = False, filters: Sequence[str] = ()) -> list[Any]:
        """Containers (newest first); `filters` are docker's "key=value" strings."""
        pb = _pb("containers")
        request = pb.ListContainersRequest(all=all, filters=list(filters))
        return list(self._call("containers", "List", request).containers)

    def inspect_container(self, container: str) -> Any:
        pb = _pb("containers")
        return self._call("containers", "Inspect", pb.InspectContainerRequest(container=container)).container

    def wait(self, container: str) -> Any:
        """WaitContainerResponse (exit_code, error) once the container is not running."""
        pb = _pb("containers")
        return self._call("containers", "Wait", pb.WaitContainerRequest(container=container))

    def pause(self, container: str) -> None:
        pb = _pb("containers")
        self._call("containers", "Pause", pb.PauseContainerRequest(container=container))

    def unpause(self, container: str) -> None:
        pb = _pb("containers")
        self._call("containers", "Unpause", pb.UnpauseContainerRequest(container=container))

    def update(self, container: str, resources: Any, restart_policy: Any = None) -> Any:
        """New limits (a pallet.v1.Resources with the fields to change set), and a new
        restart policy (a pallet.v1.RestartPolicy; None keeps the one it has)."""
        pb = _pb("containers")
        request = pb.UpdateContainerRequest(container=container, resources=resources,
                                            restart_policy=restart_policy)
        return self._call("containers", "Update", request)

    def rename(self, container: str, name: str) -> None:
        pb = _pb("containers")
        self._call("containers", "Rename", pb.RenameContainerRequest(container=container, name=name))

    def top(self, container: str, ps_args: Sequence[str] = ()) -> Any:
        """TopContainerResponse (titles, processes[].fields): the host's ps, cut to the
        container's processes."""
        pb = _pb("containers")
        request = pb.TopContainerRequest(container=container, ps_args=list(ps_args))
        return self._call("containers", "Top", request)

    def stats(self, containers: Sequence[str] = (), all: bool = False, stream: bool = True) -> Iterator[Any]:
        """StatsResponses (one sample of every container asked for each, about once a
        second while `stream`; one without)."""
        pb = _pb("containers")
        request = pb.StatsRequest(containers=list(containers), all=all, stream=stream)
        yield from self._stream(self._stub("containers").Stats(request))

    def logs(self, request: Any) -> Iterator[Any]:
        """LogChunks of a LogsRequest, oldest first (follows while request.follow)."""
        call = self._stub("containers").Logs(request)
        for response in self._stream(call):
            yield from response.chunks

    def attach(
        self, container: str, stdin: bool = False, stdout: bool = True, stderr: bool = True,
        running_only: bool = False,
    ) -> DuplexSession:
        """Open an attachment and wait until the daemon says it is in place (with
        `running_only`, FailedPrecondition unless the container runs: `pallet attach`)."""
        pb = _pb("containers")
        first = pb.AttachRequest(open=pb.AttachOpen(
            container=container, stdin=stdin, stdout=stdout, stderr=stderr, running_only=running_only,
        ))
        session = DuplexSession(
            self.host, self._duplex("containers", "Attach", first), pb.AttachResponse, pb.AttachRequest,
            self._connect_timeout,
        )
        session.first("ready")
        return session

    def exec(
        self,
        container: str,
        cmd: Sequence[str],
        env: Sequence[str] = (),
        working_dir: str = "",
        user: str = "",
        stdin: bool = False,
        tty: bool = False,
        console_size: tuple[int, int] = (0, 0),
    ) -> ExecSession:
        """Start a process in a running container; returns once it started (or exited)."""
        pb = _pb("containers")
        first = pb.ExecRequest(
            open=pb.ExecOpen(
                container=container, cmd=list(cmd), env=list(env), working_dir=working_dir, user=user, stdin=stdin,
                tty=tty, console_height=console_size[0], console_width=console_size[1],
            )
        )
        session = ExecSession(
            self.host, self._duplex("containers", "Exec", first), pb.ExecResponse, pb.ExecRequest,
            self._connect_timeout,
        )
        started = session.first("started")
        if started is not None:
            session.exec_id = started.exec_id
            session.pid = int(started.pid)
        return session

    def resize(self, container: str, height: int, width: int, exec_id: str = "") -> None:
        """Set the window size of a container's terminal, or of exec `exec_id`'s."""
        pb = _pb("containers")
        request = pb.ResizeRequest(container=container, exec_id=exec_id, height=height, width=width)
        self._call("containers", "Resize", request)

    def _duplex(self, service: str, method: str, first: Any) -> wire.Stream:
        """A bidirectional call, its first request sent."""
        try:
            call = self._channel.start(self._stub(service).path(method))
        except wire.RpcError as exc:
            raise from_rpc_error(exc, self.host, self._connect_timeout) from None
        call.send(first.SerializeToString())
        return call

    # -- images -------------------------------------------------------------------------------
    def list_images(self, all: bool = False, filters: Sequence[str] = ()) -> list[Any]:
        pb = _pb("images")
        return list(self._call("images", "List", pb.ListImagesRequest(all=all, filters=list(filters))).images)

    def inspect_image(self, image: str) -> Any:
        pb = _pb("images")
        return self._call("images", "Inspect", pb.InspectImageRequest(image=image)).image

    def tag(self, source: str, target: str) -> None:
        pb = _pb("images")
        self._call("images", "Tag", pb.TagImageRequest(source=source, target=target))

    def remove_image(self, image: str, force: bool = False) -> Any:
        """RemoveImageResponse (untagged, deleted)."""
        pb = _pb("images")
        return self._call("images", "Remove", pb.RemoveImageRequest(image=image, force=force))

    def import_image(
        self,
        source: Any,
        reference: str = "",
        message: str = "",
        changes: Sequence[str] = (),
    ) -> Any:
        """Import a rootfs tar from a binary file object, fd number or iterable of bytes."""
        pb = _pb("images")

        def requests() -> Iterator[Any]:
            yield pb.ImportRequest(header=pb.ImportHeader(reference=reference, message=message, changes=list(changes)))
            size = 0
            for chunk in _chunks(source):
                size += len(chunk)
                yield _upload_chunk(pb.ImportRequest, chunk)
            # Without it the daemon takes the upload as cut short (see UploadEnd).
            yield pb.ImportRequest(end=pb.UploadEnd(size=size))

        return self._upload("images", "Import", requests()).image

    def load(self, source: Any) -> Any:
        """Load a docker-save/OCI archive; LoadResponse (images, references)."""
        pb = _pb("images")

        def requests() -> Iterator[Any]:
            size = 0
            for chunk in _chunks(source):
                size += len(chunk)
                yield _upload_chunk(pb.LoadRequest, chunk)
            yield pb.LoadRequest(end=pb.UploadEnd(size=size))

        return self._upload("images", "Load", requests())

    # -- builds -------------------------------------------------------------------------------
    def build(self, options: Any, context: Iterable[bytes]) -> Iterator[Any]:
        """Build an image: `options` (a pallet.v1.BuildOptions), then the context's tar
        (its chunks) and the end; yields the BuildResponses (progress, then the result).
        The context is sent whole before the first response is read (palletd builds only
        once it has all of it); a chunk iterator that raises cancels the call, so palletd
        builds nothing."""
        pb = _pb("builds")
        images = _pb("images")
        call = self._duplex("builds", "Build", pb.BuildRequest(options=options))
        try:
            size = 0
            for chunk in context:
                size += len(chunk)
                if not call.send(_upload_chunk(pb.BuildRequest, chunk)):
                    break  # palletd answered early (a refusal): it is read below
            else:
                # Without it palletd takes the context as cut short (see UploadEnd).
                call.send(pb.BuildRequest(end=images.UploadEnd(size=size)).SerializeToString())
                call.end()
            for data in call:
                yield _decode(pb.BuildResponse, data)
        except wire.RpcError as exc:
            raise from_rpc_error(exc, self.host, self._connect_timeout) from None
        finally:
            call.cancel()
            close = getattr(context, "close", None)
            if close is not None:
                close()  # a generator's thread stops now, not when it is collected

    # -- registries, archives and housekeeping (verbs_registry) -------------------------------
    def _auth(self, auth: Any) -> Any:
        pb = _pb("images")
        if auth is None:
            return pb.RegistryAuth()
        return pb.RegistryAuth(username=auth.username, password=auth.password, identity_token=auth.identity_token)

    def pull(self, reference: str, platform: str = "", auth: Any = None) -> Iterator[Any]:
        """PullResponses: progress steps, then the image (with the resolved digest)."""
        pb = _pb("images")
        request = pb.PullRequest(reference=reference, platform=platform, auth=self._auth(auth))
        yield from self._stream(self._stub("images").Pull(request))

    def push(self, reference: str, auth: Any = None) -> Iterator[Any]:
        """PushResponses: progress steps, then the manifest digest."""
        pb = _pb("images")
        yield from self._stream(self._stub("images").Push(pb.PushRequest(reference=reference, auth=self._auth(auth))))

    def login(self, registry: str, auth: Any) -> str:
        pb = _pb("images")
        return str(self._call("images", "Login", pb.LoginRequest(registry=registry, auth=self._auth(auth))).status)

    def save(self, images: Sequence[str], oci_only: bool = False) -> Iterator[bytes]:
        pb = _pb("images")
        request = pb.SaveRequest(images=list(images), format=pb.SAVE_FORMAT_OCI if oci_only else pb.SAVE_FORMAT_UNSPECIFIED)
        for response in self._stream(self._stub("images").Save(request)):
            yield response.chunk

    def export(self, container: str) -> Iterator[bytes]:
        pb = _pb("containers")
        call = self._stub("containers").Export(pb.ExportContainerRequest(container=container))
        for response in self._stream(call):
            yield response.chunk

    def stat_path(self, container: str, path: str) -> Any:
        """PathStat of a path in a container (a final symlink not followed)."""
        pb = _pb("containers")
        request = pb.StatPathRequest(container=container, path=path)
        return self._call("containers", "StatPath", request).stat

    def get_archive(self, container: str, path: str, follow_link: bool = False) -> tuple[Any, Iterator[bytes]]:
        """(PathStat, the tar's chunks) of a path in a container; the stat comes first,
        so a bad path is an error here, before any byte."""
        pb = _pb("containers")
        call = self._stub("containers").GetArchive(
            pb.GetArchiveRequest(container=container, path=path, follow_link=follow_link)
        )
        responses = self._stream(call)
        first = next(responses, None)
        if first is None or first.WhichOneof("payload") != "stat":
            raise Internal("the daemon sent no stat before the archive")

        def chunks() -> Iterator[bytes]:
            for response in responses:
                yield response.chunk

        return first.stat, chunks()

    def put_archive(
        self, container: str, path: str, source: Any, copy_uid_gid: bool = False,
        no_overwrite_dir_non_dir: bool = True,
    ) -> Any:
        """Extract a tar (bytes, a file object or an iterator of chunks) below the
        directory `path` of a container; PutArchiveResponse (entries, size)."""
        pb = _pb("containers")
        images = _pb("images")

        def requests() -> Iterator[Any]:
            yield pb.PutArchiveRequest(header=pb.PutArchiveHeader(
                container=container, path=path, copy_uid_gid=copy_uid_gid,
                no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
            ))
            size = 0
            for chunk in _chunks(source):
                size += len(chunk)
                yield _upload_chunk(pb.PutArchiveRequest, chunk)
            # Without it the daemon keeps nothing (see UploadEnd).
            yield pb.PutArchiveRequest(end=images.UploadEnd(size=size))

        return self._upload("containers", "PutArchive", requests())
    def diff(self, container: str) -> list[Any]:
        """The container's changes (ContainerChange: path, kind), sorted."""
        pb = _pb("containers")
        return list(self._call("containers", "Diff", pb.DiffContainerRequest(container=container)).changes)

    def commit(
        self, container: str, reference: str = "", changes: Sequence[str] = (),
        comment: str = "", author: str = "", pause: bool = True,
    ) -> str:
        """A new image of the container; returns its id."""
        pb = _pb("containers")
        request = pb.CommitContainerRequest(
            container=container, reference=reference, changes=list(changes), comment=comment,
            author=author, pause=pause,
        )
        return str(self._call("containers", "Commit", request).id)

    def prune_containers(self, filters: Sequence[str] = ()) -> tuple[list[str], int]:
        """Ids of the stopped containers removed, and the bytes they took."""
        pb = _pb("containers")
        reply = self._call("containers", "Prune", pb.PruneContainersRequest(filters=list(filters)))
        return list(reply.deleted), int(reply.space_reclaimed)

    def history(self, image: str) -> list[Any]:
        pb = _pb("images")
        return list(self._call("images", "History", pb.HistoryRequest(image=image)).entries)

    def prune_images(self, all: bool = False, filters: Sequence[str] = ()) -> Any:
        pb = _pb("images")
        return self._call("images", "Prune", pb.PruneImagesRequest(all=all, filters=list(filters)))

    def disk_usage(self) -> Any:
        return self._call("system", "DiskUsage", _pb("system").DiskUsageRequest())

    # -- networks -----------------------------------------------------------------------------
    def create_network(self, request: Any) -> str:
        """Create a network from a CreateNetworkRequest; returns its full id."""
        return str(self._call("networks", "Create", request).id)

    def list_networks(self, filters: Sequence[str] = ()) -> list[Any]:
        """Networks (by name); `filters` are docker's "key=value" strings."""
        pb = _pb("networks")
        return list(self._call("networks", "List", pb.ListNetworksRequest(filters=list(filters))).networks)

    def inspect_network(self, network: str) -> Any:
        pb = _pb("networks")
        return self._call("networks", "Inspect", pb.InspectNetworkRequest(network=network)).network

    def remove_network(self, network: str) -> None:
        pb = _pb("networks")
        self._call("networks", "Remove", pb.RemoveNetworkRequest(network=network))

    def connect_network(
        self, network: str, container: str, aliases: Sequence[str] = (), ipv4_address: str = ""
    ) -> None:
        pb = _pb("networks")
        request = pb.ConnectNetworkRequest(
            network=network, container=container, aliases=list(aliases), ipv4_address=ipv4_address
        )
        self._call("networks", "Connect", request)

    def disconnect_network(self, network: str, container: str, force: bool = False) -> None:
        pb = _pb("networks")
        request = pb.DisconnectNetworkRequest(network=network, container=container, force=force)
        self._call("networks", "Disconnect", request)

    def prune_networks(self, filters: Sequence[str] = ()) -> list[str]:
        """Names of the networks removed."""
        pb = _pb("networks")
        return list(self._call("networks", "Prune", pb.PruneNetworksRequest(filters=list(filters))).removed)

    # -- volumes ------------------------------------------------------------------------------
    def create_volume(
        self, name: str = "", driver: str = "", labels: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
    ) -> Any:
        """Create a volume (or get the identical one of that name); returns the Volume."""
        pb = _pb("volumes")
        request = pb.CreateVolumeRequest(
            name=name, driver=driver, labels=dict(labels or {}), options=dict(options or {})
        )
        return self._call("volumes", "Create", request).volume

    def list_volumes(self, filters: Sequence[str] = (), size: bool = False) -> list[Any]:
        """Volumes (by name); `filters` are docker's "key=value" strings."""
        pb = _pb("volumes")
        request = pb.ListVolumesRequest(filters=list(filters), size=size)
        return list(self._call("volumes", "List", request).volumes)

    def inspect_volume(self, name: str) -> Any:
        pb = _pb("volumes")
        return self._call("volumes", "Inspect", pb.InspectVolumeRequest(name=name)).volume

    def remove_volume(self, name: str, force: bool = False) -> None:
        pb = _pb("volumes")
        self._call("volumes", "Remove", pb.RemoveVolumeRequest(name=name, force=force))

    def prune_volumes(self, filters: Sequence[str] = (), all_volumes: bool = False) -> tuple[list[str], int]:
        """Names of the volumes removed, and the bytes they took."""
        pb = _pb("volumes")
        reply = self._call("volumes", "Prune", pb.PruneVolumesRequest(filters=list(filters), all=all_volumes))
        return list(reply.removed), int(reply.space_reclaimed)

    # -- events -------------------------------------------------------------------------------
    def events(
        self,
        filters: Sequence[str] = (),
        since_seq: int | None = None,
        since: tuple[int, int] | None = None,
        until: tuple[int, int] | None = None,
    ) -> Iterator[Any]:
        """Events (replayed, then live unless `until`); times are (seconds, nanos).

        `since_seq` replays the journal after that sequence number (0: all of it); None
        replays nothing by number.
        """
        pb = _pb("events")
        request = pb.SubscribeRequest(filters=list(filters))
        if since_seq is not None:
            request.since_seq = since_seq
        if since is not None:
            request.since.seconds, request.since.nanos = since
        if until is not None:
            request.until.seconds, request.until.nanos = until
        call = self._stub("events").Subscribe(request)
        for response in self._stream(call):
            yield response.event


def _upload_chunk(request_type: Any, chunk: bytes) -> tuple[bytes, bytes]:
    """An upload request holding `chunk` (its `chunk` field, the whole message), encoded
    by hand as protobuf would, as two pieces that go out unjoined: setting the field and
    serializing copied the megabytes twice, a quarter of the CLI's CPU for a cp."""
    tag = (request_type.DESCRIPTOR.fields_by_name["chunk"].number << 3) | 2  # length-delimited
    size, header = len(chunk), bytearray([tag])
    while size > 0x7F:
        header.append(size & 0x7F | 0x80)
        size >>= 7
    header.append(size)
    return bytes(header), chunk


def _chunks(source: Any) -> Iterator[bytes]:
    if isinstance(source, (bytes, bytearray)):
        for i in range(0, len(source), CHUNK_SIZE):
            yield bytes(source[i : i + CHUNK_SIZE])
        return
    if isinstance(source, int) or hasattr(source, "read"):
        yield from _read_chunks(source)
        return
    yield from source


def _pb(name: str) -> ModuleType:
    """pallet.v1.<name>_pb2, imported on first use."""
    import importlib

    return importlib.import_module(f"pallet.v1.{name}_pb2")


class _Stub:
    """One service's calls, made from its descriptor: `stub.Method(request)` returns the
    response (unary), an iterator of responses with `cancel()` (server streaming), or
    takes an iterator of requests (client streaming); `stub.Method.future(request)`."""

    def __init__(self, channel: wire.Channel, module: ModuleType, service: str) -> None:
        self._channel = channel
        self._module = module
        self._service = module.DESCRIPTOR.services_by_name[service]
        self._methods: dict[str, _Method] = {}

    def path(self, name: str) -> str:
        return f"/{self._service.full_name}/{self._service.methods_by_name[name].name}"

    def __getattr__(self, name: str) -> _Method:
        method = self._methods.get(name)
        if method is None:
            descriptor = self._service.methods_by_name.get(name)
            if descriptor is None:
                raise AttributeError(f"{self._service.full_name} has no method {name}")
            method = self._methods[name] = _Method(self._channel, self.path(name), descriptor)
        return method


class _Method:
    def __init__(self, channel: wire.Channel, path: str, descriptor: Any) -> None:
        from google.protobuf import message_factory

        self._channel = channel
        self._path = path
        self._client_streaming = bool(descriptor.client_streaming)
        self._server_streaming = bool(descriptor.server_streaming)
        self._response = message_factory.GetMessageClass(descriptor.output_type)

    def __call__(self, request: Any) -> Any:
        if self._client_streaming and self._server_streaming:
            raise TypeError(f"{self._path} is bidirectional: open it with PalletClient._duplex")
        if self._client_streaming:
            data = self._channel.client_stream(  # a tuple is an encoded message's pieces
                self._path, (r if isinstance(r, tuple) else r.SerializeToString() for r in request)
            )
            return _decode(self._response, data)
        if self._server_streaming:
            return _Responses(lambda: self._channel.server_stream(self._path, request.SerializeToString()), self._response)
        return _decode(self._response, self._channel.unary(self._path, request.SerializeToString()))

    def future(self, request: Any) -> _Future:
        return _Future(self._channel.unary_future(self._path, request.SerializeToString()), self._response)


class _Responses:
    """A server stream's responses, decoded; the call starts when iteration does (as
    grpcio's did, so a palletd that is not there fails inside `_stream`'s mapping), and
    `cancel()` ends it early."""

    def __init__(self, start: Callable[[], wire.Stream], response_type: Any) -> None:
        self._start = start
        self._call: wire.Stream | None = None
        self._type = response_type

    def __iter__(self) -> Iterator[Any]:
        self._call = self._start()
        for data in self._call:
            yield _decode(self._type, data)

    def cancel(self) -> None:
        if self._call is not None:
            self._call.cancel()


def _decode(response_type: Any, data: bytes) -> Any:
    """A response from its bytes; ones that do not parse are palletd's fault (INTERNAL)."""
    from google.protobuf.message import DecodeError

    try:
        return response_type.FromString(data)
    except DecodeError as exc:
        raise wire.RpcError("INTERNAL", f"palletd sent a {response_type.DESCRIPTOR.name} that does not parse: {exc}") from None


class _Future:
    """A unary call in flight: result(), exception(), cancelled(), add_done_callback()."""

    def __init__(self, future: wire.Future, response_type: Any) -> None:
        self._future = future
        self._type = response_type

    def result(self) -> Any:
        return _decode(self._type, self._future.result())

    def exception(self) -> wire.RpcError | None:
        return self._future.exception()

    def cancelled(self) -> bool:
        return self._future.cancelled()

    def add_done_callback(self, fn: Callable[[_Future], Any]) -> None:
        self._future.add_done_callback(lambda _: fn(self))


__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_HOST",
    "DuplexSession",
    "ExecSession",
    "PalletClient",
    "grpc_target",
    "resolve_host",
]
