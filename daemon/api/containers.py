"""ContainersService: the gRPC face of `ContainerManager` and `ContainerLogs`.

Owns: request validation and pb2 conversion for container calls, and pumping attach/exec
streams. Must not: do disk, SQL or shim work itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from pallet.daemon.api import convert
from pallet.daemon.api.errors import Ctx, stream, unary
from pallet.daemon.api.images import upload_bytes
from pallet.daemon.containers.cparchive import PathInfo
from pallet.daemon.containers.files import ContainerFiles, PutOptions
from pallet.daemon.containers.commit import CommitOptions
from pallet.daemon.containers.execinstances import ExecConfig, ExecInstances, ExecView
from pallet.daemon.containers.logs import ContainerLogs
from pallet.daemon.containers.manager import ContainerManager
from pallet.daemon.containers.stats import ContainerStats, StatsSample
from pallet.v1.errors import FailedPrecondition, InvalidArgument, PalletError, Unavailable
from pallet.daemon.shims.api import Stdio
from pallet.shim.api.spec import Output
from pallet.daemon.snapshots.changes import ChangeKind
from pallet.v1 import containers_pb2 as pb
from pallet.v1 import containers_pb2_grpc as pb_grpc



_CHANGE_KINDS = {
    ChangeKind.MODIFIED: pb.CHANGE_KIND_MODIFIED,
    ChangeKind.ADDED: pb.CHANGE_KIND_ADDED,
    ChangeKind.DELETED: pb.CHANGE_KIND_DELETED,
}


def _stream(number: int) -> pb.Stream:
    return pb.STREAM_STDERR if number == 2 else pb.STREAM_STDOUT


def _path_stat(info: PathInfo) -> pb.PathStat:
    stat = pb.PathStat(name=info.name, size=info.size, mode=info.mode, link_target=info.link_target)
    stat.mtime.FromNanoseconds(info.mtime_ns)
    return stat


def _cp_path(path: str) -> str:
    if not path:
        raise InvalidArgument("no path given: name a path in the container (/ for its root)")
    return path


def _stats(s: StatsSample) -> pb.ContainerStats:
    out = pb.ContainerStats(
        id=s.id, name=s.name, running=s.running, cpu_usage_ns=s.cpu_usage_ns,
        system_cpu_ns=s.system_cpu_ns, online_cpus=s.online_cpus,
        pre_cpu_usage_ns=s.pre_cpu_usage_ns, pre_system_cpu_ns=s.pre_system_cpu_ns,
        memory_usage=s.memory_usage, memory_limit=s.memory_limit,
        memory_inactive_file=s.memory_inactive_file,
        networks=[pb.NetworkStats(name=n.name, rx_bytes=n.rx_bytes, tx_bytes=n.tx_bytes,
                                  rx_packets=n.rx_packets, tx_packets=n.tx_packets)
                  for n in s.networks],
        block_read_bytes=s.block_read_bytes, block_write_bytes=s.block_write_bytes,
        pids_current=s.pids_current, pids_limit=s.pids_limit,
    )
    out.read.FromNanoseconds(s.read_ns)
    return out


def _exec_instance(v: ExecView) -> pb.ExecInstance:
    c = v.config
    out = pb.ExecInstance(
        id=v.id, container_id=v.container_id, running=v.running, pid=v.pid,
        process=pb.ExecProcess(
            cmd=c.args, env=c.env, working_dir=c.working_dir, user=c.user, stdin=c.stdin,
            stdout=c.stdout, stderr=c.stderr, tty=c.tty, privileged=c.privileged,
            detach_keys=c.detach_keys, console_height=c.console_size[0],
            console_width=c.console_size[1],
        ),
    )
    if v.exit is not None:
        out.exit.CopyFrom(pb.Exit(exit_code=v.exit.exit_code, error=v.exit.error))
    out.created.FromNanoseconds(v.created_ns)
    return out


def _chunk(out: Output) -> pb.LogChunk:
    return pb.LogChunk(stream=_stream(out.stream), time_unix_nano=out.time_ns, data=out.data)


async def _pump_stdin(
    requests: AsyncIterator[pb.AttachRequest] | AsyncIterator[pb.ExecRequest], stdio: Stdio
) -> bool:
    """Forward the caller's stdin messages until its `close_stdin`, which closes stdin;
    True when it did.

    Only that message closes it here: a caller that goes away (killed, detached, its request
    stream ended or broken) leaves the process's stdin open for the next one, as docker's
    attach does (a `cat` in a `run -di` container outlives every attach). A container made
    with stdin_once is the exception, which `_end_stdin` handles.
    """
    try:
        async for req in requests:
            kind = req.WhichOneof("payload")
            if kind == "stdin":
                await stdio.write_stdin(req.stdin)
            elif kind == "close_stdin":
                await stdio.close_stdin()
                return True
    except Unavailable:
        pass  # the process ended and its shim connection with it: no stdin to give
    return False


async def _end_stdin(pump: asyncio.Task[bool], stdio: Stdio) -> None:
    """The attach of a stdin_once container has ended (docker's StdinOnce): close the
    container's stdin unless the caller already did, whether it went away, detached or
    was cut off, so that a `cat` from `run -i` ends instead of waiting for ever."""
    closed = pump.done() and not pump.cancelled() and pump.exception() is None and pump.result()
    pump.cancel()
    if closed:
        return
    try:
        await stdio.close_stdin()
    except PalletError:
        pass  # the process has ended, or its shim with it: there is no stdin left to close


class ContainersServicer(pb_grpc.ContainersServiceServicer):
    #: The proto service served (the server names it to health checking and reflection).
    SERVICE = pb.DESCRIPTOR.services_by_name["ContainersService"].full_name

    def add_to_server(self, server: Any) -> None:
        pb_grpc.add_ContainersServiceServicer_to_server(self, server)

    def __init__(self, containers: ContainerManager, logs: ContainerLogs,
                 files: ContainerFiles | None = None,
                 stats: ContainerStats | None = None,
                 execs: ExecInstances | None = None) -> None:
        self._containers = containers
        self._logs = logs
        self._files = files
        self._stats = stats or ContainerStats(containers)
        self._execs = execs or ExecInstances(containers)

    def _cp(self) -> ContainerFiles:
        if self._files is None:
            raise FailedPrecondition("this daemon does not copy container files")
        return self._files

    @unary
    async def Create(self, request: pb.CreateContainerRequest, context: Ctx) -> pb.CreateContainerResponse:
        if not request.config.image:
            raise InvalidArgument("no image given: name the image to create the container from")
        created = await self._containers.create(convert.create_request(request.config))
        c = created.container
        return pb.CreateContainerResponse(id=c.id, name=c.name, warnings=created.warnings)

    @unary
    async def Start(self, request: pb.StartContainerRequest, context: Ctx) -> pb.StartContainerResponse:
        pid, started = await self._containers.start_unless_running(request.container)
        return pb.StartContainerResponse(pid=pid, already_running=not started)

    @unary
    async def Stop(self, request: pb.StopContainerRequest, context: Ctx) -> pb.StopContainerResponse:
        timeout = request.timeout if request.HasField("timeout") else None
        stopped = await self._containers.stop(request.container, timeout, sig=request.signal)
        return pb.StopContainerResponse(already_stopped=not stopped)

    @unary
    async def Kill(self, request: pb.KillContainerRequest, context: Ctx) -> pb.KillContainerResponse:
        await self._containers.kill(request.container, request.signal)
        return pb.KillContainerResponse()

    @unary
    async def Restart(self, request: pb.RestartContainerRequest, context: Ctx) -> pb.RestartContainerResponse:
        timeout = request.timeout if request.HasField("timeout") else None
        pid = await self._containers.restart(request.container, timeout, sig=request.signal)
        return pb.RestartContainerResponse(pid=pid)

    @unary
    async def Remove(self, request: pb.RemoveContainerRequest, context: Ctx) -> pb.RemoveContainerResponse:
        await self._containers.remove(request.container, request.force, request.volumes)
        return pb.RemoveContainerResponse()

    @unary
    async def List(self, request: pb.ListContainersRequest, context: Ctx) -> pb.ListContainersResponse:
        found = await self._containers.list_filtered(request.all, list(request.filters), request.limit)
        # Layer dirs are for inspect; a listing does not need them.
        out = []
        for c in found:
            message = convert.container(c, [], self._containers.network_view(c), self._containers.volume_dir)
            if request.size:
                message.size_rw, message.size_root_fs = await self._containers.sizes(c)
            out.append(message)
        return pb.ListContainersResponse(containers=out)

    @unary
    async def Inspect(self, request: pb.InspectContainerRequest, context: Ctx) -> pb.InspectContainerResponse:
        c = self._containers.resolve(request.container)
        lower = await self._containers.layer_dirs(c)
        message = convert.container(c, lower, self._containers.network_view(c), self._containers.volume_dir)
        if request.size:
            message.size_rw, message.size_root_fs = await self._containers.sizes(c)
        return pb.InspectContainerResponse(container=message)

    @unary
    async def Wait(self, request: pb.WaitContainerRequest, context: Ctx) -> pb.WaitContainerResponse:
        status = await self._containers.wait(request.container, request.condition)
        return pb.WaitContainerResponse(exit_code=status.exit_code, error=status.error)

    @stream
    async def Logs(self, request: pb.LogsRequest, context: Ctx) -> AsyncIterator[pb.LogsResponse]:
        streams = set()
        if request.stdout:
            streams.add(1)
        if request.stderr:
            streams.add(2)
        batches = self._logs.read(
            request.container,
            follow=request.follow,
            tail=request.tail if request.tail >= 0 else -1,
            since_ns=convert.nanos(request.since, request.HasField("since")),
            until_ns=convert.nanos(request.until, request.HasField("until")),
            streams=frozenset(streams or {1, 2}),
        )
        async for batch in batches:
            yield pb.LogsResponse(
                chunks=[
                    pb.LogChunk(stream=_stream(r.stream), time_unix_nano=r.time_ns, data=r.data)
                    for r in batch
                ]
            )

    @stream
    async def Attach(
        self, request_iterator: AsyncIterator[pb.AttachRequest], context: Ctx
    ) -> AsyncIterator[pb.AttachResponse]:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("payload") != "open":
            raise InvalidArgument("the first Attach message must be `open`")
        opened = first.open
        stdout, stderr = opened.stdout, opened.stderr
        if not (stdout or stderr):
            stdout = stderr = True
        attachment = await self._containers.attach(
            opened.container, opened.stdin, stdout, stderr, running_only=opened.running_only
        )
        pump: asyncio.Task[bool] | None = None
        try:
            yield pb.AttachResponse(ready=pb.AttachReady())
            stdio = await attachment.ready()
            try:
                if opened.stdin:
                    pump = asyncio.create_task(_pump_stdin(request_iterator, stdio))
                async for out in stdio.output():
                    yield pb.AttachResponse(output=_chunk(out))
                status = await attachment.exit()
                yield pb.AttachResponse(exit=pb.Exit(exit_code=status.exit_code, error=status.error))
            finally:
                if pump is not None and attachment.stdin_once:
                    await _end_stdin(pump, stdio)
                await stdio.aclose()
        finally:
            attachment.cancel()
            if pump is not None:
                pump.cancel()

    @stream
    async def Exec(
        self, request_iterator: AsyncIterator[pb.ExecRequest], context: Ctx
    ) -> AsyncIterator[pb.ExecResponse]:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("payload") != "open":
            raise InvalidArgument("the first Exec message must be `open`")
        o = first.open
        stdin = o.stdin
        if o.exec_id:
            created, proc = await self._execs.start(
                o.exec_id, (o.console_height, o.console_width)
            )
            stdin = created.stdin
        else:
            proc = await self._containers.exec(
                o.container, tuple(o.cmd), tuple(o.env), o.working_dir, o.user, o.stdin,
                o.tty, (o.console_height, o.console_width),
            )
        pump: asyncio.Task[bool] | None = None
        try:
            yield pb.ExecResponse(started=pb.ExecStarted(exec_id=proc.exec_id, pid=proc.pid))
            if stdin:
                pump = asyncio.create_task(_pump_stdin(request_iterator, proc.session))
            async for out in proc.session.output():
                yield pb.ExecResponse(output=_chunk(out))
            status = await proc.wait()
            yield pb.ExecResponse(exit=pb.Exit(exit_code=status.exit_code, error=status.error))
        finally:
            if pump is not None:
                pump.cancel()
            await proc.session.aclose()

    @unary
    async def CreateExec(self, request: pb.CreateExecRequest, context: Ctx) -> pb.CreateExecResponse:
        p = request.process
        config = ExecConfig(
            args=tuple(p.cmd), env=tuple(p.env), working_dir=p.working_dir, user=p.user,
            stdin=p.stdin, stdout=p.stdout, stderr=p.stderr, tty=p.tty,
            privileged=p.privileged, detach_keys=p.detach_keys,
            console_size=(p.console_height, p.console_width),
        )
        return pb.CreateExecResponse(exec_id=self._execs.create(request.container, config))

    @unary
    async def InspectExec(self, request: pb.InspectExecRequest, context: Ctx) -> pb.InspectExecResponse:
        return pb.InspectExecResponse(exec=_exec_instance(self._execs.inspect(request.exec_id)))

    @stream
    async def Export(
        self, request: pb.ExportContainerRequest, context: Ctx
    ) -> AsyncIterator[pb.ExportContainerResponse]:
        async for chunk in await self._containers.export(request.container):
            yield pb.ExportContainerResponse(chunk=chunk)

    @unary
    async def StatPath(self, request: pb.StatPathRequest, context: Ctx) -> pb.StatPathResponse:
        info = await self._cp().stat(request.container, _cp_path(request.path))
        return pb.StatPathResponse(stat=_path_stat(info))

    @stream
    async def GetArchive(
        self, request: pb.GetArchiveRequest, context: Ctx
    ) -> AsyncIterator[pb.GetArchiveResponse]:
        pieces = self._cp().archive(request.container, _cp_path(request.path), request.follow_link)
        async for piece in pieces:
            if isinstance(piece, PathInfo):
                yield pb.GetArchiveResponse(stat=_path_stat(piece))
            else:
                yield pb.GetArchiveResponse(chunk=piece)

    @unary
    async def PutArchive(
        self, request_iterator: AsyncIterator[pb.PutArchiveRequest], context: Ctx
    ) -> pb.PutArchiveResponse:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("payload") != "header":
            raise InvalidArgument("the first PutArchive message must be the header")
        h = first.header
        options = PutOptions(h.copy_uid_gid, h.no_overwrite_dir_non_dir)
        done = await self._cp().extract(
            h.container, _cp_path(h.path), options, upload_bytes(request_iterator)
        )
        return pb.PutArchiveResponse(entries=done.entries, size=done.size)

    @unary
    async def Diff(self, request: pb.DiffContainerRequest, context: Ctx) -> pb.DiffContainerResponse:
        found = await self._containers.diff(request.container)
        return pb.DiffContainerResponse(
            changes=[pb.ContainerChange(path=c.path, kind=_CHANGE_KINDS[c.kind]) for c in found]
        )

    @unary
    async def Commit(self, request: pb.CommitContainerRequest, context: Ctx) -> pb.CommitContainerResponse:
        options = CommitOptions(
            reference=request.reference,
            changes=tuple(request.changes),
            comment=request.comment,
            author=request.author,
            pause=request.pause if request.HasField("pause") else True,
        )
        image = await self._containers.commit(request.container, options)
        return pb.CommitContainerResponse(id=image.id)

    @unary
    async def Prune(self, request: pb.PruneContainersRequest, context: Ctx) -> pb.PruneContainersResponse:
        deleted, reclaimed = await self._containers.prune(list(request.filters))
        return pb.PruneContainersResponse(deleted=deleted, space_reclaimed=reclaimed)

    @unary
    async def Pause(self, request: pb.PauseContainerRequest, context: Ctx) -> pb.PauseContainerResponse:
        await self._containers.pause(request.container)
        return pb.PauseContainerResponse()

    @unary
    async def Unpause(self, request: pb.UnpauseContainerRequest, context: Ctx) -> pb.UnpauseContainerResponse:
        await self._containers.unpause(request.container)
        return pb.UnpauseContainerResponse()

    @unary
    async def Update(self, request: pb.UpdateContainerRequest, context: Ctx) -> pb.UpdateContainerResponse:
        policy = (
            convert.restart_policy(request.restart_policy)
            if request.HasField("restart_policy") else None
        )
        await self._containers.update(
            request.container, convert.resource_changes(request.resources), policy
        )
        return pb.UpdateContainerResponse()

    @unary
    async def Rename(self, request: pb.RenameContainerRequest, context: Ctx) -> pb.RenameContainerResponse:
        await self._containers.rename(request.container, request.name)
        return pb.RenameContainerResponse()

    @unary
    async def Top(self, request: pb.TopContainerRequest, context: Ctx) -> pb.TopContainerResponse:
        table = await self._containers.top(request.container, list(request.ps_args))
        return pb.TopContainerResponse(
            titles=table.titles, processes=[pb.TopProcess(fields=row) for row in table.processes]
        )

    @unary
    async def Resize(self, request: pb.ResizeRequest, context: Ctx) -> pb.ResizeResponse:
        await self._containers.resize(
            request.container, request.exec_id, request.height, request.width
        )
        return pb.ResizeResponse()

    @stream
    async def Stats(self, request: pb.StatsRequest, context: Ctx) -> AsyncIterator[pb.StatsResponse]:
        async for batch in self._stats.samples(list(request.containers), request.all, request.stream):
            yield pb.StatsResponse(stats=[_stats(s) for s in batch])
