"""BatchSetTaskRunStates: many proposals in one transaction, each orchestrated and answered as
SetTaskRunState would answer it alone, in order."""

from __future__ import annotations

import uuid

import grpc

from taskrun.v1 import concurrency_limits_pb2 as limits_pb
from taskrun.v1 import state_pb2 as T
from taskrun.v1 import task_run_service_pb2 as pb
from tests.factories import (
    LimitStub,
    TaskRunStub,
    create_run,
    expect_status,
    history,
    hours,
    now,
    scheduled,
    state,
)

ACCEPT = pb.SET_STATE_STATUS_ACCEPT
REJECT = pb.SET_STATE_STATUS_REJECT
WAIT = pb.SET_STATE_STATUS_WAIT
ABORT = pb.SET_STATE_STATUS_ABORT


def proposal(run_id: str, kind: int, **fields: object) -> pb.SetTaskRunStateRequest:
    return pb.SetTaskRunStateRequest(task_run_id=run_id, state=state(kind), **fields)  # type: ignore[arg-type]


async def batch(
    stub: TaskRunStub, *proposals: pb.SetTaskRunStateRequest
) -> list[pb.BatchSetTaskRunStateResult]:
    answer = await stub.BatchSetTaskRunStates(pb.BatchSetTaskRunStatesRequest(requests=proposals))
    return list(answer.results)


def statuses(results: list[pb.BatchSetTaskRunStateResult]) -> list[int]:
    return [r.response.status for r in results]


async def test_each_proposal_is_orchestrated_on_its_own_in_order(task_runs: TaskRunStub) -> None:
    running = await create_run(task_runs)
    later = await create_run(task_runs, state=scheduled(now() + hours(1)))
    done = await create_run(task_runs, state=state(T.STATE_TYPE_COMPLETED))
    results = await batch(
        task_runs,
        proposal(running.id, T.STATE_TYPE_RUNNING),
        proposal(later.id, T.STATE_TYPE_RUNNING),
        proposal(done.id, T.STATE_TYPE_CANCELLING),
    )
    assert statuses(results) == [ACCEPT, WAIT, ABORT]
    assert results[0].response.state.type == T.STATE_TYPE_RUNNING
    assert results[0].response.task_run.run_count == 1
    assert results[1].response.details.delay.seconds > 3000
    assert [s.type for s in await history(task_runs, later.id)] == [T.STATE_TYPE_SCHEDULED]


async def test_a_later_proposal_for_the_same_run_sees_the_earlier_one(
    task_runs: TaskRunStub,
) -> None:
    run = await create_run(task_runs)
    results = await batch(
        task_runs,
        proposal(run.id, T.STATE_TYPE_RUNNING),
        proposal(run.id, T.STATE_TYPE_COMPLETED),
        proposal(run.id, T.STATE_TYPE_CANCELLING),
    )
    assert statuses(results) == [ACCEPT, ACCEPT, ABORT]
    states = await history(task_runs, run.id)
    assert [s.type for s in states] == [
        T.STATE_TYPE_PENDING,
        T.STATE_TYPE_RUNNING,
        T.STATE_TYPE_COMPLETED,
    ]
    read = await task_runs.ReadTaskRun(pb.ReadTaskRunRequest(task_run_id=run.id))
    assert read.task_run.state_id == states[-1].id
    assert read.task_run.run_count == 1
    ran = states[2].timestamp.ToDatetime() - states[1].timestamp.ToDatetime()
    assert read.task_run.total_run_time.ToTimedelta() == ran


async def test_an_unknown_run_is_answered_not_found_and_the_others_are_stored(
    task_runs: TaskRunStub,
) -> None:
    run = await create_run(task_runs)
    missing = str(uuid.uuid4())
    results = await batch(
        task_runs,
        proposal(missing, T.STATE_TYPE_RUNNING),
        proposal(run.id, T.STATE_TYPE_RUNNING),
    )
    assert results[0].WhichOneof("result") == "error"
    assert results[0].error.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert missing in results[0].error.message
    assert results[1].response.status == ACCEPT
    assert len(await history(task_runs, run.id)) == 2


async def test_a_malformed_proposal_fails_the_call_by_name_and_stores_nothing(
    task_runs: TaskRunStub,
) -> None:
    run = await create_run(task_runs)
    request = pb.BatchSetTaskRunStatesRequest(
        requests=[
            proposal(run.id, T.STATE_TYPE_RUNNING),
            pb.SetTaskRunStateRequest(task_run_id=run.id),
        ]
    )
    await expect_status(
        task_runs.BatchSetTaskRunStates(request),
        grpc.StatusCode.INVALID_ARGUMENT,
        "requests[1].state",
    )
    assert len(await history(task_runs, run.id)) == 1


async def test_more_than_a_thousand_proposals_are_refused(task_runs: TaskRunStub) -> None:
    run = await create_run(task_runs)
    request = pb.BatchSetTaskRunStatesRequest(
        requests=[proposal(run.id, T.STATE_TYPE_RUNNING)] * 1001
    )
    await expect_status(
        task_runs.BatchSetTaskRunStates(request), grpc.StatusCode.INVALID_ARGUMENT, "requests"
    )
    assert len(await history(task_runs, run.id)) == 1


async def test_an_empty_batch_is_answered_empty(task_runs: TaskRunStub) -> None:
    assert await batch(task_runs) == []


async def test_tag_slots_taken_and_freed_in_one_batch_are_counted_in_order(
    task_runs: TaskRunStub, limits: LimitStub
) -> None:
    await limits.CreateConcurrencyLimit(
        limits_pb.CreateConcurrencyLimitRequest(tag="db", concurrency_limit=1)
    )
    first, second = [await create_run(task_runs, tags=["db"]) for _ in range(2)]
    taken = await batch(
        task_runs,
        proposal(first.id, T.STATE_TYPE_RUNNING),
        proposal(second.id, T.STATE_TYPE_RUNNING),
    )
    assert statuses(taken) == [ACCEPT, WAIT]
    handed_over = await batch(
        task_runs,
        proposal(first.id, T.STATE_TYPE_COMPLETED),
        proposal(second.id, T.STATE_TYPE_RUNNING),
    )
    assert statuses(handed_over) == [ACCEPT, ACCEPT]
    read = await limits.ReadConcurrencyLimit(limits_pb.ReadConcurrencyLimitRequest(tag="db"))
    assert list(read.concurrency_limit.active_slots) == [second.id]


async def test_a_result_cached_earlier_in_the_batch_is_found_by_a_later_proposal(
    task_runs: TaskRunStub,
) -> None:
    cached = T.StateDetails(cache_key=f"key-{uuid.uuid4()}")
    producer = await create_run(task_runs, state=state(T.STATE_TYPE_RUNNING))
    consumer = await create_run(task_runs)
    results = await batch(
        task_runs,
        pb.SetTaskRunStateRequest(
            task_run_id=producer.id,
            state=T.StateCreate(type=T.STATE_TYPE_COMPLETED, state_details=cached),
        ),
        pb.SetTaskRunStateRequest(
            task_run_id=consumer.id,
            state=T.StateCreate(type=T.STATE_TYPE_RUNNING, state_details=cached),
        ),
    )
    assert statuses(results) == [ACCEPT, REJECT]
    assert results[1].response.state.type == T.STATE_TYPE_COMPLETED
    assert results[1].response.state.name == "Cached"


async def test_each_proposal_is_fenced_by_its_own_lease(task_runs: TaskRunStub) -> None:
    run = await create_run(task_runs)
    stale = str(uuid.uuid4())
    results = await batch(
        task_runs,
        proposal(run.id, T.STATE_TYPE_RUNNING, lease_id=stale),
        proposal(run.id, T.STATE_TYPE_RUNNING),
    )
    assert statuses(results) == [ABORT, ACCEPT]
