"""ImagesService: the gRPC face of the image store.

Owns: request validation and pb2 conversion for image calls. Must not: touch blobs,
layers or SQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pallet.daemon.api import convert
from pallet.daemon.api.errors import Ctx, stream, unary
from pallet.daemon.api.inputs import UploadChunk
from pallet.daemon.api.registry import credentials, with_progress
from pallet.v1.errors import InvalidArgument
from pallet.daemon.images.model import ImageStore
from pallet.daemon.images.reference import parse_tagged
from pallet.v1 import images_pb2 as pb
from pallet.v1 import images_pb2_grpc as pb_grpc



async def upload_bytes(requests: AsyncIterator[Any]) -> AsyncIterator[bytes | memoryview]:
    """The bytes of an upload stream (Import, Load, a container's PutArchive: messages
    with a `chunk` or `end` payload), which must close with `end`.

    gRPC ends the request stream the same way whether the client finished or went away
    (killed, network gone), so without `end` a cut-short archive would look whole.
    """
    received = 0
    async for req in requests:
        if isinstance(req, UploadChunk):  # a chunk as received: see inputs.UploadChunk
            received += len(req.data)
            yield req.data
            continue
        kind = req.WhichOneof("payload")
        if kind == "chunk":
            chunk = req.chunk  # each read of the field is a copy of its bytes
            received += len(chunk)
            yield chunk
        elif kind == "end":
            if req.end.size != received:
                raise InvalidArgument(
                    f"upload damaged: the client sent {req.end.size} bytes, the daemon "
                    f"received {received}; nothing was stored: try again"
                )
            return
        else:
            raise InvalidArgument(f"unexpected {kind} message in the middle of an upload")
    raise InvalidArgument(
        f"upload cut short after {received} bytes: the stream ended without its end "
        "message (the client went away, or does not send one); nothing was stored"
    )


class ImagesServicer(pb_grpc.ImagesServiceServicer):
    #: The proto service served (the server names it to health checking and reflection).
    SERVICE = pb.DESCRIPTOR.services_by_name["ImagesService"].full_name

    def add_to_server(self, server: Any) -> None:
        pb_grpc.add_ImagesServiceServicer_to_server(self, server)

    def __init__(self, images: ImageStore) -> None:
        self._images = images

    @unary
    async def Import(
        self, request_iterator: AsyncIterator[pb.ImportRequest], context: Ctx
    ) -> pb.ImportResponse:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("payload") != "header":
            raise InvalidArgument("the first Import message must be the header")
        h = first.header
        img = await self._images.import_rootfs(
            upload_bytes(request_iterator), h.reference, h.message, list(h.changes)
        )
        return pb.ImportResponse(image=convert.image(img))

    @unary
    async def Load(
        self, request_iterator: AsyncIterator[pb.LoadRequest], context: Ctx
    ) -> pb.LoadResponse:
        result = await self._images.load(upload_bytes(request_iterator))
        return pb.LoadResponse(
            images=[convert.image(i) for i in result.images], references=result.references
        )

    @unary
    async def List(self, request: pb.ListImagesRequest, context: Ctx) -> pb.ListImagesResponse:
        found = await self._images.list(request.all, list(request.filters))
        return pb.ListImagesResponse(images=[convert.image(i) for i in found])

    @unary
    async def Inspect(self, request: pb.InspectImageRequest, context: Ctx) -> pb.InspectImageResponse:
        return pb.InspectImageResponse(image=convert.image(await self._images.get(request.image)))

    @unary
    async def Tag(self, request: pb.TagImageRequest, context: Ctx) -> pb.TagImageResponse:
        await self._images.tag(request.source, request.target)
        return pb.TagImageResponse()

    @unary
    async def Remove(self, request: pb.RemoveImageRequest, context: Ctx) -> pb.RemoveImageResponse:
        result = await self._images.remove(request.image, request.force, prune=not request.no_prune)
        return pb.RemoveImageResponse(untagged=result.untagged, deleted=result.deleted)

    @stream
    async def Pull(self, request: pb.PullRequest, context: Ctx) -> AsyncIterator[pb.PullResponse]:
        if not request.reference:
            raise InvalidArgument("pull needs a reference, e.g. busybox or host:5000/name:tag")
        auth = credentials(request.auth)
        async for item in with_progress(
            lambda progress: self._images.pull(request.reference, request.platform, auth, progress)
        ):
            if isinstance(item, pb.Progress):
                yield pb.PullResponse(progress=item)
            else:
                image, digest = item
                yield pb.PullResponse(
                    image=convert.image(image),
                    digest=digest,
                    reference=str(parse_tagged(request.reference)),
                )

    @stream
    async def Push(self, request: pb.PushRequest, context: Ctx) -> AsyncIterator[pb.PushResponse]:
        if not request.reference:
            raise InvalidArgument("push needs a reference, e.g. host:5000/name:tag")
        auth = credentials(request.auth)
        async for item in with_progress(
            lambda progress: self._images.push(request.reference, auth, progress)
        ):
            if isinstance(item, pb.Progress):
                yield pb.PushResponse(progress=item)
            else:
                digest, size = item
                yield pb.PushResponse(digest=digest, size=size)

    @unary
    async def Login(self, request: pb.LoginRequest, context: Ctx) -> pb.LoginResponse:
        await self._images.login(request.registry, credentials(request.auth))
        return pb.LoginResponse(status="Login Succeeded")

    @stream
    async def Save(self, request: pb.SaveRequest, context: Ctx) -> AsyncIterator[pb.SaveResponse]:
        oci_only = request.format == pb.SAVE_FORMAT_OCI
        async for chunk in self._images.save(list(request.images), oci_only):
            yield pb.SaveResponse(chunk=chunk)

    @unary
    async def History(self, request: pb.HistoryRequest, context: Ctx) -> pb.HistoryResponse:
        entries = await self._images.history(request.image)
        return pb.HistoryResponse(
            entries=[
                pb.HistoryEntry(
                    id=e.id,
                    created=convert.timestamp(e.created_ns),
                    created_by=e.created_by,
                    size=e.size,
                    comment=e.comment,
                    empty_layer=e.empty_layer,
                )
                for e in entries
            ]
        )

    @unary
    async def Prune(self, request: pb.PruneImagesRequest, context: Ctx) -> pb.PruneImagesResponse:
        result = await self._images.prune(request.all, list(request.filters))
        return pb.PruneImagesResponse(
            untagged=result.untagged, deleted=result.deleted, space_reclaimed=result.space_reclaimed
        )
