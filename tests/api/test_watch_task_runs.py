"""WatchTaskRuns: the runs as they are, then each state change pushed as it commits."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from sqlalchemy import text

from taskrun.v1 import filters_pb2 as f
from taskrun.v1 import state_pb2 as T
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_server.server import RunningServer
from tests.factories import (
    TaskRunStub,
    create_run,
    expect_status,
    hours,
    now,
    propose,
    scheduled,
    state,
)

DONE = T.StateCreate(type=T.STATE_TYPE_COMPLETED, data=struct_pb2.Value(string_value="42"))


class Watch:
    """A watch read continuously into a queue."""

    def __init__(self, stub: TaskRunStub, request: pb.WatchTaskRunsRequest) -> None:
        self.call: Any = stub.WatchTaskRuns(request)
        self.seen: asyncio.Queue[pb.WatchTaskRunsResponse | grpc.aio.AioRpcError | None] = (
            asyncio.Queue()
        )
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.call:
                await self.seen.put(message)
            await self.seen.put(None)  # the stream ended
        except grpc.aio.AioRpcError as error:
            await self.seen.put(error)

    async def next(self, within: float = 10) -> Any:
        return await asyncio.wait_for(self.seen.get(), within)

    async def states(self, count: int) -> list[tuple[str, int]]:
        found: list[tuple[str, int]] = []
        for _ in range(count):
            message = await self.next()
            assert isinstance(message, pb.WatchTaskRunsResponse), message
            found.append((message.task_run.id, message.task_run.state_type))
        return found


@pytest.fixture
async def watches(task_runs: TaskRunStub) -> AsyncIterator[Any]:
    opened: list[Watch] = []

    def open_one(**request: Any) -> Watch:
        opened.append(Watch(task_runs, pb.WatchTaskRunsRequest(**request)))
        return opened[-1]

    yield open_one
    for watch in opened:
        watch.call.cancel()
        watch.reader.cancel()


async def test_a_watch_starts_with_the_runs_and_follows_each_change(
    task_runs: TaskRunStub, watches: Any
) -> None:
    first, second = await create_run(task_runs), await create_run(task_runs)
    watch = watches(task_run_ids=[first.id, second.id], until_terminal=True)
    assert await watch.states(2) == [
        (first.id, T.STATE_TYPE_PENDING),
        (second.id, T.STATE_TYPE_PENDING),
    ]
    await propose(task_runs, first.id, state(T.STATE_TYPE_RUNNING))
    assert await watch.states(1) == [(first.id, T.STATE_TYPE_RUNNING)]
    await propose(task_runs, first.id, state(T.STATE_TYPE_COMPLETED))
    await propose(task_runs, second.id, state(T.STATE_TYPE_CANCELLED))
    assert sorted(await watch.states(2)) == sorted(
        [(first.id, T.STATE_TYPE_COMPLETED), (second.id, T.STATE_TYPE_CANCELLED)]
    )
    assert await watch.next() is None  # every run is terminal: the stream ended


async def test_runs_already_finished_end_the_watch_at_once(
    task_runs: TaskRunStub, watches: Any
) -> None:
    run = await create_run(task_runs, state=DONE)
    watch = watches(task_run_ids=[run.id], until_terminal=True, view=pb.TASK_RUN_VIEW_FULL)
    message = await watch.next()
    assert message.task_run.state.data.string_value == "42"  # the result, with FULL
    assert await watch.next() is None


async def test_without_until_terminal_the_watch_goes_on_past_the_end(
    task_runs: TaskRunStub, watches: Any
) -> None:
    run = await create_run(task_runs, state=state(T.STATE_TYPE_FAILED))
    watch = watches(task_run_ids=[run.id])
    await watch.states(1)
    await propose(task_runs, run.id, state(T.STATE_TYPE_RUNNING))  # a re-run
    assert await watch.states(1) == [(run.id, T.STATE_TYPE_RUNNING)]


async def test_a_change_that_stores_no_state_is_not_sent(
    task_runs: TaskRunStub, watches: Any
) -> None:
    run = await create_run(task_runs, state=scheduled(now() + hours(1)))
    watch = watches(task_run_ids=[run.id])
    await watch.states(1)
    waited = await propose(task_runs, run.id, state(T.STATE_TYPE_RUNNING))
    assert waited.status == pb.SET_STATE_STATUS_WAIT
    await task_runs.UpdateTaskRun(pb.UpdateTaskRunRequest(task_run_id=run.id, name="renamed"))
    with pytest.raises(TimeoutError):
        await watch.next(within=0.5)


async def test_a_deleted_run_ends_the_watch_not_found(task_runs: TaskRunStub, watches: Any) -> None:
    run = await create_run(task_runs)
    watch = watches(task_run_ids=[run.id])
    await watch.states(1)
    await task_runs.DeleteTaskRun(pb.DeleteTaskRunRequest(task_run_id=run.id))
    ended = await watch.next()
    assert isinstance(ended, grpc.aio.AioRpcError)
    assert ended.code() == grpc.StatusCode.NOT_FOUND


async def test_a_filter_watch_sees_the_runs_it_matches_as_they_change(
    task_runs: TaskRunStub, watches: Any
) -> None:
    tag = f"watched-{uuid.uuid4().hex[:6]}"
    watch = watches(task_runs=f.TaskRunFilter(tags=f.TagsFilter(all=[tag])))
    await asyncio.sleep(0.2)  # the watch is registered before the changes it should see
    ignored = await create_run(task_runs, tags=["other"])
    matching = await create_run(task_runs, tags=[tag])
    await propose(task_runs, ignored.id, state(T.STATE_TYPE_RUNNING))
    await propose(task_runs, matching.id, state(T.STATE_TYPE_RUNNING))
    assert await watch.states(2) == [
        (matching.id, T.STATE_TYPE_PENDING),
        (matching.id, T.STATE_TYPE_RUNNING),
    ]


async def test_watching_a_scheduled_run_takes_no_lease(
    task_runs: TaskRunStub, watches: Any
) -> None:
    run = await create_run(task_runs, task_key=f"watched-{uuid.uuid4()}", state=scheduled(now()))
    watch = watches(task_run_ids=[run.id])
    await watch.states(1)
    await asyncio.sleep(0.3)
    read = (await task_runs.ReadTaskRun(pb.ReadTaskRunRequest(task_run_id=run.id))).task_run
    assert (read.delivery_count, read.lease_owner) == (0, "")


async def test_bad_watches_are_refused_by_field(task_runs: TaskRunStub) -> None:
    async def refused(request: pb.WatchTaskRunsRequest, code: grpc.StatusCode, field: str) -> None:
        call: Any = task_runs.WatchTaskRuns(request)
        await expect_status(call.read(), code, field)

    invalid = grpc.StatusCode.INVALID_ARGUMENT
    await refused(pb.WatchTaskRunsRequest(), invalid, "task_run_ids")
    await refused(pb.WatchTaskRunsRequest(task_run_ids=["nope"]), invalid, "task_run_ids[0]")
    await refused(
        pb.WatchTaskRunsRequest(task_run_ids=[str(uuid.uuid4())] * 1001), invalid, "task_run_ids"
    )
    tags = f.TaskRunFilter(tags=f.TagsFilter(all=["x"]))
    await refused(pb.WatchTaskRunsRequest(task_runs=tags, until_terminal=True), invalid, "until")
    await refused(
        pb.WatchTaskRunsRequest(task_runs=tags, task_run_ids=[str(uuid.uuid4())]),
        invalid,
        "task_runs",
    )
    missing = pb.WatchTaskRunsRequest(task_run_ids=[str(uuid.uuid4())])
    await refused(missing, grpc.StatusCode.NOT_FOUND, "task_run_ids")


async def listening_backends(server: RunningServer) -> int:
    """Connections of this database whose last statement was the state channel's LISTEN."""
    async with server.engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND query = 'LISTEN taskrun_state'"
            )
        )
        return int(found.scalar_one())


async def until(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    for _ in range(int(within / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_state_changes_are_listened_for_only_while_someone_watches(
    server: RunningServer, task_runs: TaskRunStub, watches: Any
) -> None:
    async def quiet() -> bool:
        return not server.listener.hears_states and await listening_backends(server) == 0

    await until(quiet)  # watches of earlier tests have ended
    run = await create_run(task_runs)
    watch = watches(task_run_ids=[run.id])
    assert await watch.states(1) == [(run.id, T.STATE_TYPE_PENDING)]
    assert server.listener.hears_states and await listening_backends(server) == 1
    await propose(task_runs, run.id, state(T.STATE_TYPE_RUNNING))
    assert await watch.states(1) == [(run.id, T.STATE_TYPE_RUNNING)]
    watch.call.cancel()
    await until(quiet)
