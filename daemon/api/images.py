"""ImagesService: the gRPC face of the image store.

Owns: request validation and pb2 conversion for image calls. Must not: touch blobs,
layers or SQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator


from pallet.daemon.api import convert
from pallet.daemon.api.errors import Ctx, unary
from pallet.daemon.errors import InvalidArgument
from pallet.daemon.images.model import ImageStore
from pallet.v1 import images_pb2 as pb
from pallet.v1 import images_pb2_grpc as pb_grpc



async def _chunks(requests: AsyncIterator[pb.ImportRequest] | AsyncIterator[pb.LoadRequest]) -> AsyncIterator[bytes]:
    async for req in requests:
        if req.chunk:
            yield req.chunk


class ImagesServicer(pb_grpc.ImagesServiceServicer):
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
            _chunks(request_iterator), h.reference, h.message, list(h.changes)
        )
        return pb.ImportResponse(image=convert.image(img))

    @unary
    async def Load(
        self, request_iterator: AsyncIterator[pb.LoadRequest], context: Ctx
    ) -> pb.LoadResponse:
        result = await self._images.load(_chunks(request_iterator))
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
        result = await self._images.remove(request.image, request.force)
        return pb.RemoveImageResponse(untagged=result.untagged, deleted=result.deleted)
