"""BatchCreateTaskRuns: many runs in one call, all or nothing, each answered as CreateTaskRun."""

from __future__ import annotations

import asyncio
import uuid

import grpc

from taskrun.v1 import state_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_server.server import RunningServer
from tests.api.test_create_task_run import count_rows
from tests.factories import (
    FlowRunStub,
    FlowStub,
    TaskRunStub,
    create_flow_run,
    create_run,
    expect_status,
    state,
)


def item(dynamic_key: str, **fields: object) -> pb.CreateTaskRunRequest:
    return pb.CreateTaskRunRequest(task_key="batch", dynamic_key=dynamic_key, **fields)  # type: ignore[arg-type]


async def batch(
    stub: TaskRunStub, *items: pb.CreateTaskRunRequest
) -> list[pb.CreateTaskRunResponse]:
    answer = await stub.BatchCreateTaskRuns(pb.BatchCreateTaskRunsRequest(requests=items))
    return list(answer.responses)


async def test_every_run_is_created_and_answered_in_request_order(task_runs: TaskRunStub) -> None:
    answers = await batch(task_runs, *(item(str(i)) for i in range(300)))
    assert [a.task_run.dynamic_key for a in answers] == [str(i) for i in range(300)]
    assert all(a.created for a in answers)
    stored = await task_runs.ReadTaskRun(pb.ReadTaskRunRequest(task_run_id=answers[7].task_run.id))
    assert stored.task_run.state_type == state_pb2.STATE_TYPE_PENDING


async def test_first_states_get_the_same_bookkeeping_as_a_single_create(
    task_runs: TaskRunStub,
) -> None:
    (running,) = await batch(task_runs, item("r", state=state(state_pb2.STATE_TYPE_RUNNING)))
    assert running.task_run.run_count == 1 and running.task_run.HasField("start_time")
    history = await task_runs.ReadTaskRunStates(
        pb.ReadTaskRunStatesRequest(task_run_id=running.task_run.id)
    )
    assert [s.name for s in history.states] == ["Running"]


async def test_a_taken_key_answers_the_existing_run_and_a_repeated_one_the_first(
    task_runs: TaskRunStub,
) -> None:
    existing = await create_run(task_runs, task_key="batch", dynamic_key="old")
    answers = await batch(task_runs, item("old"), item("new"), item("new"))
    assert [a.created for a in answers] == [False, True, False]
    assert answers[0].task_run.id == existing.id
    assert answers[1].task_run.id == answers[2].task_run.id


async def test_an_invalid_item_fails_the_call_naming_it_and_stores_nothing(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    before = await count_rows(fresh_server)
    bad = pb.CreateTaskRunRequest(task_key="", dynamic_key="x")
    await expect_status(
        batch(task_runs, item("a"), item("b"), bad),
        grpc.StatusCode.INVALID_ARGUMENT,
        "requests[2].task_key",
    )
    assert await count_rows(fresh_server) == before


async def test_an_unknown_flow_run_fails_the_call_naming_the_item(
    task_runs: TaskRunStub, flows: FlowStub, flow_runs: FlowRunStub, fresh_server: RunningServer
) -> None:
    real = await create_flow_run(flows, flow_runs)
    before = await count_rows(fresh_server)
    await expect_status(
        batch(task_runs, item("a", flow_run_id=real.id), item("b", flow_run_id=str(uuid.uuid4()))),
        grpc.StatusCode.NOT_FOUND,
        "requests[1].flow_run_id",
    )
    assert await count_rows(fresh_server) == before


async def test_a_client_id_taken_under_another_key_fails_the_whole_call(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    taken = await create_run(task_runs, task_key="batch", dynamic_key="first")
    before = await count_rows(fresh_server)
    await expect_status(
        batch(task_runs, item("fresh"), item("other", id=taken.id)),
        grpc.StatusCode.ALREADY_EXISTS,
        "requests",
    )
    assert await count_rows(fresh_server) == before


async def test_more_than_a_thousand_items_are_refused(task_runs: TaskRunStub) -> None:
    await expect_status(
        batch(task_runs, *(item(str(i)) for i in range(1001))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "requests",
    )


async def test_an_empty_batch_creates_nothing(task_runs: TaskRunStub) -> None:
    assert await batch(task_runs) == []


async def test_batches_of_the_same_keys_in_opposite_orders_never_deadlock(
    task_runs: TaskRunStub,
) -> None:
    """Two calls inserting the same new keys wait for each other's rows on the key's unique
    index: inserted in different orders, each would hold a key the other waits for, and
    Postgres would fail one (deadlock detected). Runs go in in key order, so they cannot."""
    for _ in range(10):
        keys = [f"{uuid.uuid4().hex[:8]}-{i}" for i in range(200)]
        forwards, backwards = (
            pb.BatchCreateTaskRunsRequest(
                requests=[pb.CreateTaskRunRequest(task_key="both", dynamic_key=k) for k in order]
            )
            for order in (keys, keys[::-1])
        )
        one, other = await asyncio.gather(
            task_runs.BatchCreateTaskRuns(forwards), task_runs.BatchCreateTaskRuns(backwards)
        )
        ids = {r.task_run.id for r in one.responses} | {r.task_run.id for r in other.responses}
        assert len(ids) == len(keys)  # each key's run, whichever call created it
