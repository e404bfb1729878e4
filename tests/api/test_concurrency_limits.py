"""ConcurrencyLimitService: create (upsert), read, list, reset and delete by tag."""

from __future__ import annotations

import grpc

from taskrun.v1 import concurrency_limits_pb2 as pb
from tests.factories import LimitStub, expect_status


def request(tag: str, limit: int) -> pb.CreateConcurrencyLimitRequest:
    return pb.CreateConcurrencyLimitRequest(tag=tag, concurrency_limit=limit)


async def test_create_then_change_a_limit(limits: LimitStub) -> None:
    first = await limits.CreateConcurrencyLimit(
        pb.CreateConcurrencyLimitRequest(tag="db", concurrency_limit=3)
    )
    again = await limits.CreateConcurrencyLimit(
        pb.CreateConcurrencyLimitRequest(tag="db", concurrency_limit=5)
    )
    assert first.created and not again.created
    assert again.concurrency_limit.id == first.concurrency_limit.id
    read = await limits.ReadConcurrencyLimit(pb.ReadConcurrencyLimitRequest(tag="db"))
    assert read.concurrency_limit.concurrency_limit == 5


async def test_limits_are_listed_by_tag(limits: LimitStub) -> None:
    for tag in ("c", "a", "b"):
        await limits.CreateConcurrencyLimit(
            pb.CreateConcurrencyLimitRequest(tag=tag, concurrency_limit=1)
        )
    listed = await limits.ReadConcurrencyLimits(pb.ReadConcurrencyLimitsRequest())
    assert [item.tag for item in listed.concurrency_limits] == ["a", "b", "c"]


async def test_reset_and_delete(limits: LimitStub) -> None:
    await limits.CreateConcurrencyLimit(
        pb.CreateConcurrencyLimitRequest(tag="db", concurrency_limit=1)
    )
    reset = await limits.ResetConcurrencyLimit(pb.ResetConcurrencyLimitRequest(tag="db"))
    assert list(reset.concurrency_limit.active_slots) == []
    await limits.DeleteConcurrencyLimit(pb.DeleteConcurrencyLimitRequest(tag="db"))
    await expect_status(
        limits.ReadConcurrencyLimit(pb.ReadConcurrencyLimitRequest(tag="db")),
        grpc.StatusCode.NOT_FOUND,
        "tag",
    )


async def test_bad_requests_name_the_field(limits: LimitStub) -> None:
    await expect_status(
        limits.CreateConcurrencyLimit(
            pb.CreateConcurrencyLimitRequest(tag="", concurrency_limit=1)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "tag",
    )
    await expect_status(
        limits.CreateConcurrencyLimit(
            pb.CreateConcurrencyLimitRequest(tag="x", concurrency_limit=-1)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "concurrency_limit",
    )
    await expect_status(
        limits.DeleteConcurrencyLimit(pb.DeleteConcurrencyLimitRequest(tag="missing")),
        grpc.StatusCode.NOT_FOUND,
        "tag",
    )
