"""TaskWorker against the real server: it runs registered functions for delivered task runs,
reports results and failures through SetTaskRunState, and follows WAIT and retries."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from google.protobuf import struct_pb2

from taskrun.v1 import concurrency_limits_pb2 as limits_pb
from taskrun.v1 import state_pb2, task_run_pb2
from taskrun_client import AsyncTaskRunClient, ClientConfig, TaskWorker
from taskrun_server.server import RunningServer
from tests.factories import LimitStub, now, scheduled

T = state_pb2


@pytest.fixture
async def client(fresh_server: RunningServer) -> AsyncIterator[AsyncTaskRunClient]:
    async with AsyncTaskRunClient(ClientConfig(target=f"127.0.0.1:{fresh_server.port}")) as c:
        yield c


def labels(**values: Any) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(values)
    return out


async def working(worker: TaskWorker, until: Callable[[], bool]) -> None:
    """Run the worker until `until()` holds (checked every 50 ms, at most 30 s), then stop it."""
    serving = asyncio.ensure_future(worker.serve())
    try:
        for _ in range(600):
            if until():
                break
            await asyncio.sleep(0.05)
        assert until(), "the worker did not finish in time"
    finally:
        worker.stop()
        await asyncio.wait_for(serving, 30)


async def test_results_are_stored_as_completed_data(
    client: AsyncTaskRunClient, fresh_server: RunningServer
) -> None:
    ids = [
        (
            await client.create_task_run(
                "double", str(i), labels=labels(x=i), state=scheduled(now())
            )
        ).task_run.id
        for i in range(12)
    ]
    worker = TaskWorker(ClientConfig(target=f"127.0.0.1:{fresh_server.port}"), concurrency=3)

    @worker.task("double")
    def double(run: task_run_pb2.TaskRun) -> int:
        return int(run.labels.fields["x"].number_value) * 2

    await working(worker, lambda: worker.completed == 12)
    for i, run_id in enumerate(ids):
        run = await client.read_task_run(run_id)
        assert run.state_type == T.STATE_TYPE_COMPLETED
        assert run.state.data.number_value == i * 2


async def test_a_failure_within_the_retry_budget_is_retried(
    client: AsyncTaskRunClient, fresh_server: RunningServer
) -> None:
    run = (
        await client.create_task_run(
            "flaky",
            "0",
            state=scheduled(now()),
            empirical_policy=task_run_pb2.TaskRunPolicy(retries=1, retry_delay=[0]),
        )
    ).task_run
    attempts = Counter[str]()
    worker = TaskWorker(ClientConfig(target=f"127.0.0.1:{fresh_server.port}"))

    @worker.task("flaky")
    async def flaky(run: task_run_pb2.TaskRun) -> str:
        attempts[run.id] += 1
        if attempts[run.id] == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    await working(worker, lambda: worker.completed == 1)
    final = await client.read_task_run(run.id)
    assert (final.state_type, final.run_count) == (T.STATE_TYPE_COMPLETED, 2)
    names = [s.name for s in await client.read_task_run_states(run.id)]
    assert "AwaitingRetry" in names and "Retrying" in names


async def test_a_failure_without_retries_is_final(
    client: AsyncTaskRunClient, fresh_server: RunningServer
) -> None:
    run = (await client.create_task_run("broken", "0", state=scheduled(now()))).task_run
    worker = TaskWorker(ClientConfig(target=f"127.0.0.1:{fresh_server.port}"))

    @worker.task("broken")
    def broken(run: task_run_pb2.TaskRun) -> None:
        raise ValueError("bad input")

    await working(worker, lambda: worker.failed == 1)
    final = await client.read_task_run(run.id)
    assert final.state_type == T.STATE_TYPE_FAILED
    assert final.state.message == "ValueError: bad input"


async def test_wait_answers_make_runs_take_turns(
    client: AsyncTaskRunClient, fresh_server: RunningServer, limits: LimitStub
) -> None:
    """A tag limit of 1: the worker is told to WAIT (0.3 s here) and runs them one at a time."""
    await limits.CreateConcurrencyLimit(
        limits_pb.CreateConcurrencyLimitRequest(tag="single", concurrency_limit=1)
    )
    ids = [
        (
            await client.create_task_run("one", str(i), tags=["single"], state=scheduled(now()))
        ).task_run.id
        for i in range(3)
    ]
    worker = TaskWorker(ClientConfig(target=f"127.0.0.1:{fresh_server.port}"), concurrency=3)

    @worker.task("one")
    async def slow(run: task_run_pb2.TaskRun) -> None:
        await asyncio.sleep(0.2)

    await working(worker, lambda: worker.completed == 3)
    spans = []
    for run_id in ids:
        states = await client.read_task_run_states(run_id)
        start = next(s.timestamp.ToDatetime() for s in states if s.type == T.STATE_TYPE_RUNNING)
        end = next(s.timestamp.ToDatetime() for s in states if s.type == T.STATE_TYPE_COMPLETED)
        spans.append((start, end))
    spans.sort()
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(spans))
