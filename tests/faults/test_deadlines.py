"""A caller's deadline is honoured: when it passes, the server stops working on the call."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from taskrun.v1 import state_pb2, task_run_service_pb2
from taskrun_server.server import RunningServer
from tests.factories import TaskRunStub, create_run
from tests.faults.row_lock import lock_waiters, row_locked


async def test_a_call_past_its_deadline_stops_and_stores_nothing(
    task_runs: TaskRunStub, fresh_server: RunningServer, database_url: str
) -> None:
    run = await create_run(task_runs)
    proposal = task_run_service_pb2.SetTaskRunStateRequest(
        task_run_id=run.id, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING)
    )
    async with row_locked(database_url, run.id) as lock:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(task_runs.SetTaskRunState(proposal, timeout=0.5), 20)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # The server's transaction was waiting for the lock; the deadline must cancel it.
        for _ in range(60):
            if await lock_waiters(lock) == 0:
                break
            await asyncio.sleep(0.05)
        assert await lock_waiters(lock) == 0, "the server kept waiting after the caller left"

    states = await task_runs.ReadTaskRunStates(
        task_run_service_pb2.ReadTaskRunStatesRequest(task_run_id=run.id)
    )
    assert [state.type for state in states.states] == [state_pb2.STATE_TYPE_PENDING]
