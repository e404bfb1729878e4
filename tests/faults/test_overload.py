"""Overload sheds instead of queueing: past its limits a server process refuses calls at once
with RESOURCE_EXHAUSTED and a retry delay in the status details, health keeps answering, and
the calls it admitted finish."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from devtools.server_processes import free_port, start_server_process, wait_until_serving
from taskrun.v1 import state_pb2, task_run_service_pb2, task_run_service_pb2_grpc
from tests.faults.row_lock import lock_waiters, row_locked

pb = task_run_service_pb2


@pytest.fixture
async def limited(database_url: str) -> AsyncIterator[Any]:
    """A server process that runs at most 4 calls and 2 streams at once; yields a stub."""
    port = free_port()
    process = start_server_process(
        database_url, port, MAX_CONCURRENT_CALLS="4", MAX_CONCURRENT_STREAMS="2"
    )
    try:
        await asyncio.to_thread(wait_until_serving, f"127.0.0.1:{port}", time.monotonic() + 60)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        process.terminate()
        process.wait(timeout=30)


def retry_delay_of(error: grpc.aio.AioRpcError) -> float:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no rich status details"
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.ToTimedelta().total_seconds())
    raise AssertionError("no RetryInfo in the details")


async def test_calls_past_the_limit_are_refused_with_a_retry_delay(
    limited: grpc.aio.Channel, database_url: str
) -> None:
    stub = task_run_service_pb2_grpc.TaskRunServiceStub(limited)
    run = (
        await stub.CreateTaskRun(pb.CreateTaskRunRequest(task_key="full", dynamic_key="0"))
    ).task_run
    running = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING)
    async with row_locked(database_url, run.id) as lock:
        held = [
            asyncio.ensure_future(
                stub.SetTaskRunState(
                    pb.SetTaskRunStateRequest(task_run_id=run.id, state=running), timeout=30
                )
            )
            for _ in range(4)
        ]
        async with asyncio.timeout(20):
            while await lock_waiters(lock) < 1:  # noqa: ASYNC110 (the database is polled)
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # all four are inside the server by now
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CountTaskRuns(pb.CountTaskRunsRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert retry_delay_of(refused.value) == 1.0
        health: Any = health_pb2_grpc.HealthStub(limited)
        answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    results = await asyncio.gather(*held)
    assert [r.status for r in results].count(pb.SET_STATE_STATUS_ACCEPT) >= 1
    assert (await stub.CountTaskRuns(pb.CountTaskRunsRequest(), timeout=5)).count >= 1


async def test_streams_past_the_limit_are_refused(limited: grpc.aio.Channel) -> None:
    stub = task_run_service_pb2_grpc.TaskRunServiceStub(limited)
    request = pb.SubscribeScheduledTasksRequest(task_keys=["nothing"])
    open_streams = [stub.SubscribeScheduledTasks(request) for _ in range(2)]
    try:
        await asyncio.sleep(0.5)
        third = stub.SubscribeScheduledTasks(request)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await third.read()
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert retry_delay_of(refused.value) == 1.0
    finally:
        for stream in open_streams:
            stream.cancel()
