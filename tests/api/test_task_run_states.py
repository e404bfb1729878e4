"""ReadTaskRunState, ReadTaskRunStates and DeleteTaskRunState."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
from sqlalchemy import insert

from taskrun.v1 import state_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_server.database.tables import task_run_state
from taskrun_server.domain.identifiers import new_id
from taskrun_server.domain.states import StateType
from taskrun_server.server import RunningServer
from tests.factories import TaskRunStub, at, create_run, expect_status


async def add_past_state(server: RunningServer, task_run_id: str, before: timedelta) -> str:
    """Put an older state in a run's history, as orchestration would have left it."""
    state_id = new_id()
    async with server.engine.begin() as conn:
        await conn.execute(
            insert(task_run_state).values(
                id=state_id,
                task_run_id=uuid.UUID(task_run_id),
                type=StateType.SCHEDULED,
                name="Scheduled",
                timestamp=datetime.now(UTC) - before,
                state_details={},
            )
        )
    return str(state_id)


async def test_read_state_returns_the_stored_state(task_runs: TaskRunStub) -> None:
    run = await create_run(
        task_runs, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_PENDING, message="hi")
    )
    read = (
        await task_runs.ReadTaskRunState(pb.ReadTaskRunStateRequest(state_id=run.state_id))
    ).state
    assert read == run.state
    assert read.message == "hi"


async def test_read_unknown_state_is_not_found(task_runs: TaskRunStub) -> None:
    request = pb.ReadTaskRunStateRequest(state_id=str(uuid.uuid4()))
    await expect_status(task_runs.ReadTaskRunState(request), grpc.StatusCode.NOT_FOUND, "state_id")


async def test_states_are_listed_oldest_first(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    run = await create_run(task_runs)
    older = await add_past_state(fresh_server, run.id, timedelta(minutes=5))
    oldest = await add_past_state(fresh_server, run.id, timedelta(minutes=10))
    states = (
        await task_runs.ReadTaskRunStates(pb.ReadTaskRunStatesRequest(task_run_id=run.id))
    ).states
    assert [s.id for s in states] == [oldest, older, run.state_id]
    assert at(states[0].timestamp) < at(states[1].timestamp) < at(states[2].timestamp)


async def test_states_of_unknown_run_is_not_found(task_runs: TaskRunStub) -> None:
    request = pb.ReadTaskRunStatesRequest(task_run_id=str(uuid.uuid4()))
    await expect_status(
        task_runs.ReadTaskRunStates(request), grpc.StatusCode.NOT_FOUND, "task_run_id"
    )


async def test_a_past_state_can_be_deleted(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    run = await create_run(task_runs)
    past = await add_past_state(fresh_server, run.id, timedelta(minutes=1))
    await task_runs.DeleteTaskRunState(pb.DeleteTaskRunStateRequest(state_id=past))
    states = (
        await task_runs.ReadTaskRunStates(pb.ReadTaskRunStatesRequest(task_run_id=run.id))
    ).states
    assert [s.id for s in states] == [run.state_id]


async def test_the_current_state_cannot_be_deleted(task_runs: TaskRunStub) -> None:
    run = await create_run(task_runs)
    await expect_status(
        task_runs.DeleteTaskRunState(pb.DeleteTaskRunStateRequest(state_id=run.state_id)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "state_id",
    )
    read = await task_runs.ReadTaskRun(pb.ReadTaskRunRequest(task_run_id=run.id))
    assert read.task_run.state.id == run.state_id


async def test_delete_unknown_state_is_not_found(task_runs: TaskRunStub) -> None:
    request = pb.DeleteTaskRunStateRequest(state_id=str(uuid.uuid4()))
    await expect_status(
        task_runs.DeleteTaskRunState(request), grpc.StatusCode.NOT_FOUND, "state_id"
    )
