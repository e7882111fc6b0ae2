"""The typed gRPC client of palletd: what the CLI and other Python programs call.

Owns: the channel to the daemon (`unix:///path`, `unix:path`, `unix://path` or a bare
path), one method per RPC returning pallet.v1 messages, duplex sessions for Attach and
Exec, and mapping every gRPC failure to `pallet.v1.errors` once (`client.errors`).
Must not: print, parse command lines or format output.

Synchronous grpc on purpose: it imports faster than grpc.aio plus an event loop, and each
streaming call keeps its own thread for the requests it sends.

    with PalletClient("unix:///run/pallet/pallet.sock") as client:
        for c in client.list_containers(all=True):
            print(c.name, c.state.status)
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import ModuleType, TracebackType
from typing import Any, Generic, TypeVar

import grpc

from pallet.client.errors import from_rpc_error
from pallet.v1.errors import Internal, InvalidArgument, Unavailable

DEFAULT_HOST = "unix:///run/pallet/pallet.sock"
#: How long a connection to palletd may go unanswered (grpc core's own default); a
#: stopped or overloaded daemon is reported after this. $PALLET_CONNECT_TIMEOUT sets it.
DEFAULT_CONNECT_TIMEOUT = 20.0

#: Request size for streamed uploads (import, load, stdin).
CHUNK_SIZE = 256 * 1024

_T = TypeVar("_T")


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
    """The grpc target for a pallet host URL; only unix sockets are served without TLS."""
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
    if host.startswith(("tcp://", "http://", "https://")):
        raise InvalidArgument(
            f"invalid host {host!r}: palletd serves TCP only with mutual TLS, which this "
            "client does not speak yet; use unix:///path/to/pallet.sock"
        )
    raise InvalidArgument(f"invalid host {host!r}: expected unix:///path/to/pallet.sock")


class _Requests(Generic[_T]):
    """The request iterator grpc drains on its own thread: queued messages until finish().

    Bounded, so a fast stdin cannot outrun the daemon: grpc sends one message at a time and
    a full queue makes `put` wait. After finish() what is queued is still sent, then the
    iterator ends; puts are dropped.
    """

    _POLL = 0.1

    def __init__(self, first: _T, maxsize: int = 32) -> None:
        self._queue: queue.Queue[_T] = queue.Queue(maxsize=maxsize)
        self._queue.put(first)
        self._finished = threading.Event()

    def put(self, message: _T) -> None:
        while not self._finished.is_set():
            try:
                self._queue.put(message, timeout=self._POLL)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        self._finished.set()

    def __iter__(self) -> Iterator[_T]:
        return self

    def __next__(self) -> _T:
        while True:
            try:
                return self._queue.get(timeout=self._POLL)
            except queue.Empty:
                if self._finished.is_set():
                    raise StopIteration from None


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
        call: Any,
        requests: _Requests[Any],
        request_type: Any,
        connect_timeout: float | None = None,
    ) -> None:
        self._host = host
        self._connect_timeout = connect_timeout
        self._call = call
        self._requests = requests
        self._request_type = request_type
        self.exit: Any = None

    def _next_response(self) -> Any:
        try:
            return next(self._call)
        except StopIteration:
            return None
        except grpc.RpcError as exc:
            self._requests.finish()
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
            self._requests.finish()
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
        self._requests.finish()

    def send_stdin(self, data: bytes) -> None:
        self._requests.put(self._request_type(stdin=data))

    def close_stdin(self) -> None:
        self._requests.put(self._request_type(close_stdin=True))

    def cancel(self) -> None:
        self._requests.finish()
        self._call.cancel()

    def close(self) -> None:
        """End our side; cancels the call when the exit has not arrived."""
        self._requests.finish()
        if self.exit is None:
            self._call.cancel()

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

    def __init__(self, host: str | None = None, connect_timeout: float | None = None) -> None:
        self.host = resolve_host(host)
        self._connect_timeout = resolve_connect_timeout(connect_timeout)
        self._channel = grpc.insecure_channel(
            grpc_target(self.host),
            options=[
                # grpc core's name for the least time a connection attempt is given to
                # finish its handshake (its default is 20 s): a daemon that accepts but
                # does not answer is reported after this.
                ("grpc.min_reconnect_backoff_ms", int(self._connect_timeout * 1000)),
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                ("grpc.enable_http_proxy", 0),
            ],
        )
        self._stubs: dict[str, Any] = {}

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
            module = _grpc_module(name)
            stub = getattr(module, f"{name.capitalize()}ServiceStub")(self._channel)
            self._stubs[name] = stub
        return stub

    def _call(self, service: str, method: str, request: Any) -> Any:
        try:
            return getattr(self._stub(service), method)(request)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, self.host, self._connect_timeout) from None

    def _stream(self, call: Any) -> Iterator[Any]:
        """Iterate a server stream, mapping errors; cancels the call if abandoned early."""
        try:
            yield from call
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, self.host, self._connect_timeout) from None
        finally:
            call.cancel()

    def _upload(self, service: str, method: str, requests: Iterator[Any]) -> Any:
        try:
            return getattr(self._stub(service), method)(requests)
        except grpc.RpcError as exc:
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
        """Start without waiting: a grpc future; `start_result(future)` gives the pid or raises."""
        pb = _pb("containers")
        return self._stub("containers").Start.future(pb.StartContainerRequest(container=container))

    def start_result(self, future: Any) -> int:
        try:
            return int(future.result().pid)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, self.host, self._connect_timeout) from None

    def stop(self, container: str, timeout: int | None = None) -> None:
        pb = _pb("containers")
        request = pb.StopContainerRequest(container=container)
        if timeout is not None:
            request.timeout = timeout
        self._call("containers", "Stop", request)

    def kill(self, container: str, signal: str = "") -> None:
        pb = _pb("containers")
        self._call("containers", "Kill", pb.KillContainerRequest(container=container, signal=signal))

    def restart(self, container: str, timeout: int | None = None) -> int:
        pb = _pb("containers")
        request = pb.RestartContainerRequest(container=container)
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

    def logs(self, request: Any) -> Iterator[Any]:
        """LogChunks of a LogsRequest, oldest first (follows while request.follow)."""
        call = self._stub("containers").Logs(request)
        for response in self._stream(call):
            yield from response.chunks

    def attach(self, container: str, stdin: bool = False, stdout: bool = True, stderr: bool = True) -> DuplexSession:
        """Open an attachment and wait until the daemon says it is in place."""
        pb = _pb("containers")
        first = pb.AttachRequest(open=pb.AttachOpen(container=container, stdin=stdin, stdout=stdout, stderr=stderr))
        requests: _Requests[Any] = _Requests(first)
        call = self._stub("containers").Attach(requests)
        session = DuplexSession(self.host, call, requests, pb.AttachRequest, self._connect_timeout)
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
    ) -> ExecSession:
        """Start a process in a running container; returns once it started (or exited)."""
        pb = _pb("containers")
        first = pb.ExecRequest(
            open=pb.ExecOpen(
                container=container, cmd=list(cmd), env=list(env), working_dir=working_dir, user=user, stdin=stdin
            )
        )
        requests: _Requests[Any] = _Requests(first)
        call = self._stub("containers").Exec(requests)
        session = ExecSession(self.host, call, requests, pb.ExecRequest, self._connect_timeout)
        started = session.first("started")
        if started is not None:
            session.exec_id = started.exec_id
            session.pid = int(started.pid)
        return session

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
                yield pb.ImportRequest(chunk=chunk)
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
                yield pb.LoadRequest(chunk=chunk)
            yield pb.LoadRequest(end=pb.UploadEnd(size=size))

        return self._upload("images", "Load", requests())

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
                yield pb.PutArchiveRequest(chunk=chunk)
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


def _grpc_module(name: str) -> ModuleType:
    import importlib

    return importlib.import_module(f"pallet.v1.{name}_pb2_grpc")


__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_HOST",
    "DuplexSession",
    "ExecSession",
    "PalletClient",
    "grpc_target",
    "resolve_host",
]
