"""Delivery across real server processes on one Postgres: several replicas share the work,
no task is leased to two subscribers at once, and tasks outlive the servers."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import grpc
from sqlalchemy import func, select

from taskrun.v1 import state_pb2, task_run_service_pb2_grpc
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_server.database.tables import task_run
from taskrun_server.server import RunningServer
from tests.factories import now, scheduled
from tests.processes import server_process

TASKS = 2000
SUBSCRIBERS_PER_SERVER = 4


async def create_due(stub: Any, key: str, count: int) -> set[str]:
    due = scheduled(now() - timedelta(seconds=1))
    ids: set[str] = set()
    for start in range(0, count, 100):
        created = await asyncio.gather(
            *(
                stub.CreateTaskRun(
                    pb.CreateTaskRunRequest(task_key=key, dynamic_key=str(i), state=due)
                )
                for i in range(start, min(start + 100, count))
            )
        )
        ids |= {c.task_run.id for c in created}
    return ids


async def consume(
    stub: Any,
    key: str,
    name: str,
    deliveries: list[tuple[str, str]],
    settled: set[str],
    done: asyncio.Event,
) -> None:
    """Receive and settle (SCHEDULED -> PENDING) until every task has been settled."""
    call = stub.SubscribeScheduledTasks(
        pb.SubscribeScheduledTasksRequest(task_keys=[key], client_id=name, prefetch=10)
    )
    pending = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_PENDING)
    try:
        async for message in call:
            deliveries.append((message.task_run.id, name))
            answer = await stub.SetTaskRunState(
                pb.SetTaskRunStateRequest(task_run_id=message.task_run.id, state=pending)
            )
            assert answer.status == pb.SET_STATE_STATUS_ACCEPT, answer
            settled.add(message.task_run.id)
            if len(settled) >= TASKS:
                done.set()
    finally:
        call.cancel()


async def test_two_replicas_and_eight_subscribers_deliver_every_task_once(
    database_url: str, fresh_server: RunningServer
) -> None:
    with server_process(database_url) as first, server_process(database_url) as second:
        channels = [grpc.aio.insecure_channel(target) for target in (first, second)]
        stubs = [task_run_service_pb2_grpc.TaskRunServiceStub(ch) for ch in channels]
        deliveries: list[tuple[str, str]] = []
        settled: set[str] = set()
        done = asyncio.Event()
        consumers = [
            asyncio.ensure_future(
                consume(stub, "replicated", f"s{n}-{i}", deliveries, settled, done)
            )
            for n, stub in enumerate(stubs)
            for i in range(SUBSCRIBERS_PER_SERVER)
        ]
        try:
            created = await create_due(stubs[0], "replicated", TASKS)
            await asyncio.wait_for(done.wait(), timeout=180)
        finally:
            for consumer in consumers:
                consumer.cancel()
            await asyncio.gather(*consumers, return_exceptions=True)
            await asyncio.gather(*(ch.close() for ch in channels))

    delivered = Counter(run_id for run_id, _ in deliveries)
    assert set(delivered) == created == settled
    assert max(delivered.values()) == 1, "a task was delivered twice"
    by_server = Counter(name.split("-")[0] for _, name in deliveries)
    assert by_server["s0"] > 0 and by_server["s1"] > 0
    async with fresh_server.engine.connect() as conn:
        still_scheduled = await conn.execute(
            select(func.count()).where(
                task_run.c.task_key == "replicated", task_run.c.state_type == "SCHEDULED"
            )
        )
        assert still_scheduled.scalar_one() == 0


async def test_tasks_scheduled_while_no_server_runs_are_delivered_later(
    database_url: str, fresh_server: RunningServer
) -> None:
    with server_process(database_url) as target:
        async with grpc.aio.insecure_channel(target) as channel:
            created = await create_due(
                task_run_service_pb2_grpc.TaskRunServiceStub(channel), "durable", 20
            )
    # That server is gone; a new one starts and a worker subscribes.
    with server_process(database_url) as target:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = task_run_service_pb2_grpc.TaskRunServiceStub(channel)
            call: Any = stub.SubscribeScheduledTasks(
                pb.SubscribeScheduledTasksRequest(task_keys=["durable"], prefetch=50)
            )
            got = set()
            async for message in call:
                got.add(message.task_run.id)
                if len(got) == len(created):
                    break
            call.cancel()
    assert got == created
