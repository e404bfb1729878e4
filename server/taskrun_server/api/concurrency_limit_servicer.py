"""ConcurrencyLimitService: create, read, list, reset and delete tag concurrency limits."""

from __future__ import annotations

from typing import Any

import grpc

from taskrun.v1 import concurrency_limits_pb2 as pb
from taskrun.v1 import concurrency_limits_pb2_grpc as pb_grpc
from taskrun_server.api.filter_codec import parse_limit, parse_offset
from taskrun_server.api.wire import timestamp_to_proto
from taskrun_server.domain.concurrency_limits import ConcurrencyLimit
from taskrun_server.domain.errors import InvalidArgument
from taskrun_server.domain.limits import MAX_TAG_BYTES, check_required_text
from taskrun_server.service.concurrency_limits import ConcurrencyLimitService

Context = grpc.aio.ServicerContext[Any, Any]


def limit_to_proto(limit: ConcurrencyLimit) -> pb.ConcurrencyLimit:
    return pb.ConcurrencyLimit(
        id=str(limit.id),
        created=timestamp_to_proto(limit.created),
        updated=timestamp_to_proto(limit.updated),
        tag=limit.tag,
        concurrency_limit=limit.concurrency_limit,
        active_slots=[str(slot) for slot in limit.active_slots],
    )


def _tag(value: str) -> str:
    return check_required_text(value, "tag", max_bytes=MAX_TAG_BYTES)


class ConcurrencyLimitServicer(pb_grpc.ConcurrencyLimitServiceServicer):
    def __init__(self, service: ConcurrencyLimitService) -> None:
        self._service = service

    async def CreateConcurrencyLimit(
        self, request: pb.CreateConcurrencyLimitRequest, context: Context
    ) -> pb.CreateConcurrencyLimitResponse:
        if request.concurrency_limit < 0:
            raise InvalidArgument("must not be negative", "concurrency_limit")
        limit, created = await self._service.upsert(_tag(request.tag), request.concurrency_limit)
        return pb.CreateConcurrencyLimitResponse(
            concurrency_limit=limit_to_proto(limit), created=created
        )

    async def ReadConcurrencyLimit(
        self, request: pb.ReadConcurrencyLimitRequest, context: Context
    ) -> pb.ReadConcurrencyLimitResponse:
        limit = await self._service.read(_tag(request.tag))
        return pb.ReadConcurrencyLimitResponse(concurrency_limit=limit_to_proto(limit))

    async def ReadConcurrencyLimits(
        self, request: pb.ReadConcurrencyLimitsRequest, context: Context
    ) -> pb.ReadConcurrencyLimitsResponse:
        limits = await self._service.read_many(
            limit=parse_limit(request.HasField("limit"), request.limit),
            offset=parse_offset(request.offset),
        )
        return pb.ReadConcurrencyLimitsResponse(
            concurrency_limits=[limit_to_proto(item) for item in limits]
        )

    async def ResetConcurrencyLimit(
        self, request: pb.ResetConcurrencyLimitRequest, context: Context
    ) -> pb.ResetConcurrencyLimitResponse:
        limit = await self._service.reset(_tag(request.tag))
        return pb.ResetConcurrencyLimitResponse(concurrency_limit=limit_to_proto(limit))

    async def DeleteConcurrencyLimit(
        self, request: pb.DeleteConcurrencyLimitRequest, context: Context
    ) -> pb.DeleteConcurrencyLimitResponse:
        await self._service.delete(_tag(request.tag))
        return pb.DeleteConcurrencyLimitResponse()
