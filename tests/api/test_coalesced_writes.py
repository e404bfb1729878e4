"""Concurrent CreateTaskRun and SetTaskRunState calls share transactions (service/coalescing.py);
each caller still gets the answer, or the error, it would have got alone, and one busy run
holds up nobody else."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from sqlalchemy import select

from taskrun.v1 import state_pb2 as T
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun.v1 import task_run_service_pb2_grpc
from taskrun_server.database.tables import task_run
from taskrun_server.server import RunningServer, start_server
from taskrun_server.settings import Settings
from tests.factories import (
    FlowRunStub,
    FlowStub,
    TaskRunStub,
    create_flow_run,
    create_run,
    history,
    propose,
    state,
)


@pytest.fixture
async def stubs(fresh_server: RunningServer) -> AsyncIterator[list[TaskRunStub]]:
    """Twenty clients, each on its own connection, so that their calls truly overlap."""
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{fresh_server.port}") for _ in range(20)]
    yield [task_run_service_pb2_grpc.TaskRunServiceStub(ch) for ch in channels]
    await asyncio.gather(*(ch.close() for ch in channels))


def create(**fields: object) -> pb.CreateTaskRunRequest:
    return pb.CreateTaskRunRequest(task_key="together", **fields)  # type: ignore[arg-type]


async def test_concurrent_creates_are_each_answered_as_if_alone(
    task_runs: TaskRunStub,
    flows: FlowStub,
    flow_runs: FlowRunStub,
    stubs: list[TaskRunStub],
) -> None:
    flow_run = await create_flow_run(flows, flow_runs)
    taken = await create_run(task_runs, task_key="elsewhere")
    requests = [create(dynamic_key=str(i), flow_run_id=flow_run.id) for i in range(16)]
    requests.append(create(dynamic_key="lost", flow_run_id=str(uuid.uuid4())))
    requests.append(create(dynamic_key="squatter", id=taken.id))
    requests += [create(dynamic_key="twice"), create(dynamic_key="twice")]
    answers = await asyncio.gather(
        *(stub.CreateTaskRun(r) for stub, r in zip(stubs, requests, strict=True)),
        return_exceptions=True,
    )
    made = [a for a in answers[:16] if isinstance(a, pb.CreateTaskRunResponse)]
    assert len(made) == 16 and all(a.created for a in made)
    assert isinstance(answers[16], grpc.aio.AioRpcError)
    assert answers[16].code() == grpc.StatusCode.NOT_FOUND
    assert isinstance(answers[17], grpc.aio.AioRpcError)
    assert answers[17].code() == grpc.StatusCode.ALREADY_EXISTS
    twice = [a for a in answers[18:] if isinstance(a, pb.CreateTaskRunResponse)]
    assert sorted(a.created for a in twice) == [False, True]
    assert twice[0].task_run.id == twice[1].task_run.id


async def test_concurrent_proposals_are_each_answered_as_if_alone(
    task_runs: TaskRunStub, stubs: list[TaskRunStub]
) -> None:
    runs = [await create_run(task_runs) for _ in range(18)]
    done = await create_run(task_runs, state=state(T.STATE_TYPE_COMPLETED))
    ids = [r.id for r in runs] + [done.id, str(uuid.uuid4())]
    proposals = [state(T.STATE_TYPE_RUNNING)] * 18 + [state(T.STATE_TYPE_CANCELLING)] * 2
    answers = await asyncio.gather(
        *(propose(s, i, p) for s, i, p in zip(stubs, ids, proposals, strict=True)),
        return_exceptions=True,
    )
    accepted = [a for a in answers[:18] if isinstance(a, pb.SetTaskRunStateResponse)]
    assert [a.status for a in accepted] == [pb.SET_STATE_STATUS_ACCEPT] * 18
    assert [a.task_run.id for a in accepted] == [r.id for r in runs]
    assert isinstance(answers[18], pb.SetTaskRunStateResponse)
    assert answers[18].status == pb.SET_STATE_STATUS_ABORT
    assert isinstance(answers[19], grpc.aio.AioRpcError)
    assert answers[19].code() == grpc.StatusCode.NOT_FOUND


async def test_a_run_locked_elsewhere_holds_up_only_its_own_proposal(
    task_runs: TaskRunStub, fresh_server: RunningServer, stubs: list[TaskRunStub]
) -> None:
    busy, free = await create_run(task_runs), await create_run(task_runs)
    async with fresh_server.engine.connect() as conn, conn.begin() as holding:
        lock = select(task_run.c.id).where(task_run.c.id == uuid.UUID(busy.id)).with_for_update()
        await conn.execute(lock)
        waiting = asyncio.create_task(propose(stubs[0], busy.id, state(T.STATE_TYPE_RUNNING)))
        answered = await asyncio.wait_for(
            propose(stubs[1], free.id, state(T.STATE_TYPE_RUNNING)), timeout=10
        )
        assert answered.status == pb.SET_STATE_STATUS_ACCEPT
        assert not waiting.done()
        await holding.rollback()
    assert (await asyncio.wait_for(waiting, timeout=10)).status == pb.SET_STATE_STATUS_ACCEPT
    assert len(await history(task_runs, busy.id)) == 2


@pytest.fixture
async def second_replica(fresh_server: RunningServer, database_url: str) -> AsyncIterator[int]:
    """Another server on the same database: its transactions wait for this one's locks."""
    settings = Settings(
        database_url=database_url, host="127.0.0.1", port=0, metrics_port=0, dashboard_port=0
    )
    other = await start_server(settings, database_url)
    yield other.port
    await other.stop(grace=1.0)


async def test_replicas_proposing_for_one_run_see_each_others_states(
    task_runs: TaskRunStub, fresh_server: RunningServer, second_replica: int
) -> None:
    """Fifteen clients of each of two replicas propose RUNNING for one run at once. Each
    replica's transaction that waited for the other's lock must orchestrate from the state the
    other stored, not from its own older snapshot: the history stays one clean sequence."""
    run = await create_run(task_runs)
    ports = [fresh_server.port, second_replica] * 15
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for port in ports]
    try:
        answers = await asyncio.gather(
            *(
                propose(
                    task_run_service_pb2_grpc.TaskRunServiceStub(ch),
                    run.id,
                    state(T.STATE_TYPE_RUNNING),
                )
                for ch in channels
            )
        )
    finally:
        await asyncio.gather(*(ch.close() for ch in channels))
    assert all(a.status == pb.SET_STATE_STATUS_ACCEPT for a in answers)
    states = await history(task_runs, run.id)
    assert len(states) == 31
    times = [s.timestamp.ToDatetime() for s in states]
    assert times == sorted(times)
    final = (await task_runs.ReadTaskRun(pb.ReadTaskRunRequest(task_run_id=run.id))).task_run
    assert final.run_count == 30 and final.state_id == states[-1].id
    assert final.total_run_time.ToTimedelta() == times[-1] - times[1]
    assert sorted(a.task_run.run_count for a in answers) == list(range(1, 31))
