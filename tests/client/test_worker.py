"""TaskWorker against the real server: it runs registered functions for delivered task runs,
reports results and failures through SetTaskRunState, and follows WAIT and retries."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf import struct_pb2

from taskrun.v1 import concurrency_limits_pb2 as limits_pb
from taskrun.v1 import resources_pb2, state_pb2, task_run_pb2
from taskrun_client import AsyncTaskRunClient, ClientConfig, TaskWorker, current_task_run
from taskrun_server.server import RunningServer
from tests.factories import LimitStub, LogStub, now, scheduled

T = state_pb2


@pytest.fixture
async def client(fresh_server: RunningServer) -> AsyncIterator[AsyncTaskRunClient]:
    async with AsyncTaskRunClient(ClientConfig(target=f"127.0.0.1:{fresh_server.port}")) as c:
        yield c


def struct(**values: Any) -> struct_pb2.Struct:
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
                "double", str(i), parameters=struct(x=i), state=scheduled(now())
            )
        ).task_run.id
        for i in range(12)
    ]
    worker = TaskWorker(ClientConfig(target=f"127.0.0.1:{fresh_server.port}"), concurrency=3)

    @worker.task("double")
    def double(x: float) -> int:
        return int(x) * 2

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
    async def flaky() -> str:
        run = current_task_run()
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
    def broken() -> None:
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
    async def slow() -> None:
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


def config(server: RunningServer) -> ClientConfig:
    return ClientConfig(target=f"127.0.0.1:{server.port}")


async def test_sync_functions_run_at_the_same_time_up_to_the_concurrency(
    client: AsyncTaskRunClient, fresh_server: RunningServer
) -> None:
    for i in range(4):
        await client.create_task_run("nap", str(i), state=scheduled(now()))
    spans: list[tuple[float, float]] = []
    worker = TaskWorker(config(fresh_server), concurrency=4)

    @worker.task("nap")
    def nap() -> None:
        start = time.monotonic()
        time.sleep(0.5)  # blocks its own thread, not the worker
        spans.append((start, time.monotonic()))

    await working(worker, lambda: worker.completed == 4)
    assert max(start for start, _ in spans) < min(end for _, end in spans)


async def test_a_result_json_cannot_hold_fails_the_run_naming_its_type(
    client: AsyncTaskRunClient, fresh_server: RunningServer
) -> None:
    run = (await client.create_task_run("when", "0", state=scheduled(now()))).task_run
    worker = TaskWorker(config(fresh_server))

    @worker.task("when")
    def when() -> datetime:
        return datetime.now(UTC)

    await working(worker, lambda: worker.failed == 1)
    final = await client.read_task_run(run.id)
    assert final.state_type == T.STATE_TYPE_FAILED
    assert "datetime" in final.state.message


async def test_a_failure_carries_the_exception_type_message_and_traceback(
    client: AsyncTaskRunClient, fresh_server: RunningServer
) -> None:
    run = (await client.create_task_run("raise", "0", state=scheduled(now()))).task_run
    worker = TaskWorker(config(fresh_server))

    @worker.task("raise")
    def explode() -> None:
        raise KeyError("missing")

    await working(worker, lambda: worker.failed == 1)
    data = (await client.read_task_run(run.id)).state.data.struct_value.fields
    assert data["type"].string_value == "KeyError"
    assert data["message"].string_value == "'missing'"
    assert "in explode" in data["traceback"].string_value


async def running_soon(client: AsyncTaskRunClient, run_id: str) -> None:
    for _ in range(200):
        if (await client.read_task_run(run_id)).state_type == T.STATE_TYPE_RUNNING:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the run never started")


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_cancelling_a_running_task_stops_it_and_ends_cancelled(
    client: AsyncTaskRunClient, fresh_server: RunningServer, kind: str
) -> None:
    quick_heartbeats = task_run_pb2.TaskRunPolicy(heartbeat_timeout_seconds=1.5)
    run = (
        await client.create_task_run(
            "forever", "0", state=scheduled(now()), empirical_policy=quick_heartbeats
        )
    ).task_run
    worker = TaskWorker(config(fresh_server))
    if kind == "sync":

        @worker.task("forever")
        def block() -> None:
            time.sleep(30)

    else:

        @worker.task("forever")
        async def wait() -> None:
            await asyncio.sleep(30)

    serving = asyncio.ensure_future(worker.serve())
    try:
        await running_soon(client, run.id)
        await client.set_task_run_state(run.id, T.STATE_TYPE_CANCELLING)
        for _ in range(200):
            if worker.counts.cancelled == 1:
                break
            await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await asyncio.wait_for(serving, 30)
    final = await client.read_task_run(run.id)
    assert final.state_type == T.STATE_TYPE_CANCELLED


async def test_the_execution_timeout_is_enforced_by_the_worker(
    client: AsyncTaskRunClient, fresh_server: RunningServer
) -> None:
    policy = task_run_pb2.TaskRunPolicy(execution_timeout_seconds=0.3)
    run = (
        await client.create_task_run("slow", "0", state=scheduled(now()), empirical_policy=policy)
    ).task_run
    worker = TaskWorker(config(fresh_server))

    @worker.task("slow")
    def slow() -> None:
        time.sleep(30)

    await working(worker, lambda: worker.failed == 1)
    final = await client.read_task_run(run.id)
    assert (final.state_type, final.state_name) == (T.STATE_TYPE_FAILED, "TimedOut")


async def test_records_logged_in_a_task_reach_the_log_service(
    client: AsyncTaskRunClient, fresh_server: RunningServer, logs: LogStub
) -> None:
    run = (await client.create_task_run("chatty", "0", state=scheduled(now()))).task_run
    worker = TaskWorker(config(fresh_server))
    task_logger = logging.getLogger("tests.chatty")

    @worker.task("chatty")
    def chatty() -> None:
        task_logger.warning("step %d done", 1)

    logging.getLogger("tests.outside").warning("not from a task")
    await working(worker, lambda: worker.completed == 1)
    stored = await logs.ReadLogs(resources_pb2.ReadLogsRequest(task_run_id=run.id))
    assert [(log.name, log.message) for log in stored.logs] == [("tests.chatty", "step 1 done")]


async def test_a_task_that_cancels_itself_fails_instead_of_hanging(
    client: AsyncTaskRunClient, fresh_server: RunningServer
) -> None:
    run = (await client.create_task_run("self-cancel", "0", state=scheduled(now()))).task_run
    worker = TaskWorker(config(fresh_server))

    @worker.task("self-cancel")
    async def gives_up() -> None:
        raise asyncio.CancelledError

    await working(worker, lambda: worker.failed == 1)
    final = await client.read_task_run(run.id)
    assert final.state_type == T.STATE_TYPE_FAILED
