"""SetTaskRunState through the real server: each status, force, the rules that need stored
facts (cache, flow runs, concurrency limits), the bookkeeping of a whole life, and races."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import grpc
from google.protobuf import struct_pb2

from taskrun.v1 import concurrency_limits_pb2 as limits_pb
from taskrun.v1 import resources_pb2, state_pb2, task_run_pb2, task_run_service_pb2_grpc
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_server.server import RunningServer
from tests.factories import (
    FlowRunStub,
    FlowStub,
    LimitStub,
    TaskRunStub,
    at,
    create_flow_run,
    create_run,
    expect_status,
    history,
    now,
    propose,
    scheduled,
    state,
    ts,
)

ACCEPT = pb.SET_STATE_STATUS_ACCEPT
REJECT = pb.SET_STATE_STATUS_REJECT
WAIT = pb.SET_STATE_STATUS_WAIT
ABORT = pb.SET_STATE_STATUS_ABORT
T = state_pb2


def value(data: object) -> struct_pb2.Value:
    out = struct_pb2.Value()
    out.struct_value.update(data)  # type: ignore[arg-type]
    return out


def with_details(kind: int, details: state_pb2.StateDetails) -> state_pb2.StateCreate:
    return state_pb2.StateCreate(type=kind, state_details=details)  # type: ignore[arg-type]


async def set_flow_run_state(stub: FlowRunStub, flow_run_id: str, kind: int) -> None:
    request = resources_pb2.SetFlowRunStateRequest(flow_run_id=flow_run_id, state_type=kind)  # type: ignore[arg-type]
    await stub.SetFlowRunState(request)


async def set_limit(stub: LimitStub, tag: str, limit: int) -> None:
    request = limits_pb.CreateConcurrencyLimitRequest(tag=tag, concurrency_limit=limit)
    await stub.CreateConcurrencyLimit(request)


async def read_limit(stub: LimitStub, tag: str) -> limits_pb.ConcurrencyLimit:
    request = limits_pb.ReadConcurrencyLimitRequest(tag=tag)
    return (await stub.ReadConcurrencyLimit(request)).concurrency_limit


async def test_accepted_state_is_stored_and_becomes_current(task_runs: TaskRunStub) -> None:
    run = await create_run(task_runs)
    answer = await propose(task_runs, run.id, state(T.STATE_TYPE_RUNNING))
    assert answer.status == ACCEPT
    assert answer.state.type == T.STATE_TYPE_RUNNING
    assert answer.task_run.state_id == answer.state.id
    assert [s.id for s in await history(task_runs, run.id)] == [run.state_id, answer.state.id]


async def test_abort_stores_nothing_and_answers_the_current_state(task_runs: TaskRunStub) -> None:
    run = await create_run(task_runs, state=state(T.STATE_TYPE_RUNNING))
    deferred = state_pb2.StateCreate(
        type=T.STATE_TYPE_PENDING, state_details=state_pb2.StateDetails(deferred=True)
    )
    answer = await propose(task_runs, run.id, deferred)
    assert answer.status == ABORT
    assert "cannot transition to a PENDING state" in answer.details.reason
    assert answer.state.id == run.state_id
    assert len(await history(task_runs, run.id)) == 1


async def test_wait_gives_the_remaining_delay_and_stores_nothing(task_runs: TaskRunStub) -> None:
    run = await create_run(task_runs, state=scheduled(now() + timedelta(seconds=60)))
    answer = await propose(task_runs, run.id, state(T.STATE_TYPE_RUNNING))
    assert answer.status == WAIT
    assert timedelta(seconds=55) < answer.details.delay.ToTimedelta() <= timedelta(seconds=60)
    assert answer.state.id == run.state_id
    assert len(await history(task_runs, run.id)) == 1


async def test_reject_without_replacement_keeps_the_current_state(task_runs: TaskRunStub) -> None:
    transition = str(uuid.uuid4())
    run = await create_run(task_runs)
    proposal = state_pb2.StateCreate(
        type=T.STATE_TYPE_RUNNING,
        state_details=state_pb2.StateDetails(transition_id=transition),
    )
    first = await propose(task_runs, run.id, proposal)
    again = await propose(task_runs, run.id, proposal)
    assert (first.status, again.status) == (ACCEPT, REJECT)
    assert again.state.id == first.state.id
    assert again.task_run.run_count == 1
    assert len(await history(task_runs, run.id)) == 2


async def test_force_skips_the_rules_but_not_the_bookkeeping(task_runs: TaskRunStub) -> None:
    run = await create_run(task_runs, state=state(T.STATE_TYPE_RUNNING))
    forced = await propose(task_runs, run.id, state(T.STATE_TYPE_PENDING), force=True)
    assert forced.status == ACCEPT and forced.state.type == T.STATE_TYPE_PENDING
    assert forced.task_run.total_run_time.ToTimedelta() > timedelta(0)
    rerun = await propose(task_runs, run.id, state(T.STATE_TYPE_RUNNING), force=True)
    assert rerun.task_run.run_count == 2


async def test_a_whole_life_keeps_exact_bookkeeping(task_runs: TaskRunStub) -> None:
    """SCHEDULED, PENDING, RUNNING, FAILED (retried as AwaitingRetry), RUNNING, COMPLETED."""
    due = now() - timedelta(seconds=2)
    run = await create_run(
        task_runs,
        state=scheduled(due),
        empirical_policy=task_run_pb2.TaskRunPolicy(retries=1, retry_delay=[0]),
    )
    assert at(run.expected_start_time) == due and at(run.next_scheduled_start_time) == due

    pending = await propose(task_runs, run.id, state(T.STATE_TYPE_PENDING))
    assert pending.status == ACCEPT
    assert at(pending.state.state_details.scheduled_time) == due
    assert not pending.task_run.HasField("next_scheduled_start_time")

    running = await propose(task_runs, run.id, state(T.STATE_TYPE_RUNNING))
    assert (running.status, running.state.name, running.task_run.run_count) == (
        ACCEPT,
        "Running",
        1,
    )
    first_start = at(running.state.timestamp)
    assert at(running.task_run.start_time) == first_start

    failed = await propose(task_runs, run.id, state(T.STATE_TYPE_FAILED))
    assert failed.status == REJECT and failed.details.reason == "Retrying"
    assert (failed.state.type, failed.state.name) == (T.STATE_TYPE_SCHEDULED, "AwaitingRetry")
    assert not failed.task_run.HasField("end_time")
    retry_at = at(failed.state.state_details.scheduled_time)
    assert at(failed.task_run.next_scheduled_start_time) == retry_at

    rerun = await propose(task_runs, run.id, state(T.STATE_TYPE_RUNNING))
    assert (rerun.status, rerun.state.name, rerun.task_run.run_count) == (ACCEPT, "Retrying", 2)
    assert at(rerun.task_run.start_time) == first_start

    done = await propose(task_runs, run.id, state(T.STATE_TYPE_COMPLETED))
    assert done.status == ACCEPT
    final = done.task_run
    assert at(final.end_time) == at(done.state.timestamp)
    assert at(final.expected_start_time) == due

    states = await history(task_runs, run.id)
    names = [s.name for s in states]
    assert names == ["Scheduled", "Pending", "Running", "AwaitingRetry", "Retrying", "Completed"]
    times = [at(s.timestamp) for s in states]
    assert times == sorted(times)
    running_spans = (times[3] - times[2]) + (times[5] - times[4])
    assert final.total_run_time.ToTimedelta() == running_spans
    assert all(s.state_details.task_run_id == run.id for s in states)


async def test_failure_without_retries_left_is_final(task_runs: TaskRunStub) -> None:
    run = await create_run(task_runs, state=state(T.STATE_TYPE_RUNNING))
    failed = await propose(task_runs, run.id, state(T.STATE_TYPE_FAILED))
    assert failed.status == ACCEPT and failed.task_run.HasField("end_time")


async def test_cached_completed_state_is_reused(task_runs: TaskRunStub) -> None:
    details = state_pb2.StateDetails(
        cache_key="sum-1-2", cache_expiration=ts(now() + timedelta(hours=1))
    )
    first = await create_run(task_runs, state=state(T.STATE_TYPE_RUNNING))
    stored = await propose(
        task_runs,
        first.id,
        state_pb2.StateCreate(
            type=T.STATE_TYPE_COMPLETED, state_details=details, data=value({"v": 3})
        ),
    )
    assert stored.status == ACCEPT

    second = await create_run(task_runs)
    hit = await propose(
        task_runs,
        second.id,
        state_pb2.StateCreate(type=T.STATE_TYPE_RUNNING, state_details=details),
    )
    assert hit.status == REJECT and hit.details.reason == "Retrieved state from cache"
    assert hit.state.type == T.STATE_TYPE_COMPLETED and hit.state.id != stored.state.id
    assert dict(hit.state.data.struct_value) == {"v": 3}
    assert hit.task_run.state_type == T.STATE_TYPE_COMPLETED


async def test_refresh_or_expiry_bypasses_the_cache(task_runs: TaskRunStub) -> None:
    expired = state_pb2.StateDetails(
        cache_key="old", cache_expiration=ts(now() - timedelta(seconds=1))
    )
    source = await create_run(task_runs, state=state(T.STATE_TYPE_RUNNING))
    await propose(
        task_runs,
        source.id,
        state_pb2.StateCreate(type=T.STATE_TYPE_COMPLETED, state_details=expired),
    )
    late = await create_run(task_runs)
    miss = await propose(
        task_runs, late.id, state_pb2.StateCreate(type=T.STATE_TYPE_RUNNING, state_details=expired)
    )
    assert miss.status == ACCEPT

    fresh = state_pb2.StateDetails(cache_key="new")
    source2 = await create_run(task_runs, state=state(T.STATE_TYPE_RUNNING))
    await propose(
        task_runs,
        source2.id,
        state_pb2.StateCreate(type=T.STATE_TYPE_COMPLETED, state_details=fresh),
    )
    refresh = state_pb2.StateDetails(cache_key="new", refresh_cache=True)
    other = await create_run(task_runs)
    bypass = await propose(
        task_runs, other.id, state_pb2.StateCreate(type=T.STATE_TYPE_RUNNING, state_details=refresh)
    )
    assert bypass.status == ACCEPT


async def test_tasks_follow_their_flow_run(
    task_runs: TaskRunStub, flows: FlowStub, flow_runs: FlowRunStub
) -> None:
    flow_run = await create_flow_run(flows, flow_runs)
    run = await create_run(task_runs, flow_run_id=flow_run.id)
    aborted = await propose(task_runs, run.id, state(T.STATE_TYPE_RUNNING))
    assert aborted.status == ABORT and "flow must be running" in aborted.details.reason

    await flow_runs.SetFlowRunState(
        resources_pb2.SetFlowRunStateRequest(
            flow_run_id=flow_run.id, state_type=T.STATE_TYPE_PAUSED
        )
    )
    paused = await propose(task_runs, run.id, state(T.STATE_TYPE_RUNNING))
    assert paused.status == REJECT
    assert (paused.state.type, paused.state.name) == (T.STATE_TYPE_PAUSED, "NotReady")
    assert paused.task_run.state_type == T.STATE_TYPE_PAUSED  # stored

    await flow_runs.SetFlowRunState(
        resources_pb2.SetFlowRunStateRequest(
            flow_run_id=flow_run.id, state_type=T.STATE_TYPE_RUNNING
        )
    )
    started = await propose(task_runs, run.id, state(T.STATE_TYPE_RUNNING))
    assert started.status == ACCEPT and started.task_run.flow_run_run_count == 1


async def test_completed_run_with_a_result_does_not_rerun(task_runs: TaskRunStub) -> None:
    run = await create_run(task_runs, state=state(T.STATE_TYPE_RUNNING))
    await propose(
        task_runs, run.id, state_pb2.StateCreate(type=T.STATE_TYPE_COMPLETED, data=value({"r": 1}))
    )
    again = await propose(task_runs, run.id, state(T.STATE_TYPE_RUNNING))
    assert again.status == REJECT and again.state.type == T.STATE_TYPE_COMPLETED
    crash = await propose(task_runs, run.id, state(T.STATE_TYPE_CRASHED))
    assert crash.status == ABORT


async def test_concurrency_limit_holds_then_releases_slots(
    task_runs: TaskRunStub, limits: LimitStub
) -> None:
    await limits.CreateConcurrencyLimit(
        limits_pb.CreateConcurrencyLimitRequest(tag="db", concurrency_limit=1)
    )
    first = await create_run(task_runs, tags=["db"])
    second = await create_run(task_runs, tags=["db"])
    assert (await propose(task_runs, first.id, state(T.STATE_TYPE_RUNNING))).status == ACCEPT
    blocked = await propose(task_runs, second.id, state(T.STATE_TYPE_RUNNING))
    # The session server's configured slot wait (TASKRUN_CONCURRENCY_SLOT_WAIT_SECONDS) is 0.3 s:
    # the wait is drawn around it, between 0.75 and 1.3 times it.
    assert blocked.status == WAIT
    assert 0.22 <= blocked.details.delay.ToTimedelta().total_seconds() <= 0.39
    slots = (
        await limits.ReadConcurrencyLimit(limits_pb.ReadConcurrencyLimitRequest(tag="db"))
    ).concurrency_limit
    assert list(slots.active_slots) == [first.id]

    await propose(task_runs, first.id, state(T.STATE_TYPE_COMPLETED))
    assert (await propose(task_runs, second.id, state(T.STATE_TYPE_RUNNING))).status == ACCEPT
    slots = (
        await limits.ReadConcurrencyLimit(limits_pb.ReadConcurrencyLimitRequest(tag="db"))
    ).concurrency_limit
    assert list(slots.active_slots) == [second.id]


async def test_slots_are_released_by_forced_transitions_and_deletion(
    task_runs: TaskRunStub, limits: LimitStub
) -> None:
    await limits.CreateConcurrencyLimit(
        limits_pb.CreateConcurrencyLimitRequest(tag="gpu", concurrency_limit=2)
    )
    forced = await create_run(task_runs, tags=["gpu"])
    deleted = await create_run(task_runs, tags=["gpu"])
    await propose(task_runs, forced.id, state(T.STATE_TYPE_RUNNING))
    await propose(task_runs, deleted.id, state(T.STATE_TYPE_RUNNING))
    await propose(task_runs, forced.id, state(T.STATE_TYPE_CANCELLED), force=True)
    await task_runs.DeleteTaskRun(pb.DeleteTaskRunRequest(task_run_id=deleted.id))
    slots = (
        await limits.ReadConcurrencyLimit(limits_pb.ReadConcurrencyLimitRequest(tag="gpu"))
    ).concurrency_limit
    assert list(slots.active_slots) == []


async def test_zero_limit_aborts_running(task_runs: TaskRunStub, limits: LimitStub) -> None:
    await limits.CreateConcurrencyLimit(
        limits_pb.CreateConcurrencyLimitRequest(tag="off", concurrency_limit=0)
    )
    run = await create_run(task_runs, tags=["off"])
    assert (await propose(task_runs, run.id, state(T.STATE_TYPE_RUNNING))).status == ABORT


async def test_invalid_proposals_name_the_field(task_runs: TaskRunStub) -> None:
    run = await create_run(task_runs)
    cases: list[tuple[pb.SetTaskRunStateRequest, grpc.StatusCode, str]] = [
        (pb.SetTaskRunStateRequest(task_run_id=run.id), grpc.StatusCode.INVALID_ARGUMENT, "state"),
        (
            pb.SetTaskRunStateRequest(task_run_id=run.id, state=state_pb2.StateCreate()),
            grpc.StatusCode.INVALID_ARGUMENT,
            "state.type",
        ),
        (
            pb.SetTaskRunStateRequest(task_run_id="x", state=state(T.STATE_TYPE_RUNNING)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "task_run_id",
        ),
        (
            pb.SetTaskRunStateRequest(
                task_run_id=str(uuid.uuid4()), state=state(T.STATE_TYPE_RUNNING)
            ),
            grpc.StatusCode.NOT_FOUND,
            "task_run_id",
        ),
        (
            pb.SetTaskRunStateRequest(
                task_run_id=run.id,
                state=state_pb2.StateCreate(
                    type=T.STATE_TYPE_RUNNING, data=struct_pb2.Value(number_value=float("inf"))
                ),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "state.data",
        ),
    ]
    for request, code, field in cases:
        await expect_status(task_runs.SetTaskRunState(request), code, field)
    assert len(await history(task_runs, run.id)) == 1


async def test_concurrent_proposals_on_one_run_are_serialised(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    """30 clients on their own connections propose RUNNING at once: every proposal is applied
    in turn, so the history is a clean sequence and the counters are exact."""
    run = await create_run(task_runs)
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{fresh_server.port}") for _ in range(30)]
    try:
        stubs = [task_run_service_pb2_grpc.TaskRunServiceStub(ch) for ch in channels]
        answers = await asyncio.gather(
            *(propose(s, run.id, state(T.STATE_TYPE_RUNNING)) for s in stubs)
        )
    finally:
        await asyncio.gather(*(ch.close() for ch in channels))
    assert all(a.status == ACCEPT for a in answers)
    states = await history(task_runs, run.id)
    assert len(states) == 31
    times = [at(s.timestamp) for s in states]
    assert times == sorted(times)
    final = (await task_runs.ReadTaskRun(pb.ReadTaskRunRequest(task_run_id=run.id))).task_run
    assert final.run_count == 30
    assert final.state_id == states[-1].id
    assert final.total_run_time.ToTimedelta() == times[-1] - times[1]
    assert sorted(a.task_run.run_count for a in answers) == list(range(1, 31))


async def test_a_slot_is_never_granted_twice(
    task_runs: TaskRunStub, limits: LimitStub, fresh_server: RunningServer
) -> None:
    await limits.CreateConcurrencyLimit(
        limits_pb.CreateConcurrencyLimitRequest(tag="db", concurrency_limit=2)
    )
    runs = [await create_run(task_runs, tags=["db"]) for _ in range(12)]
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{fresh_server.port}") for _ in runs]
    try:
        answers = await asyncio.gather(
            *(
                propose(
                    task_run_service_pb2_grpc.TaskRunServiceStub(ch),
                    r.id,
                    state(T.STATE_TYPE_RUNNING),
                )
                for ch, r in zip(channels, runs, strict=True)
            )
        )
    finally:
        await asyncio.gather(*(ch.close() for ch in channels))
    statuses = sorted(a.status for a in answers)
    assert statuses.count(ACCEPT) == 2 and statuses.count(WAIT) == 10
    slots = (
        await limits.ReadConcurrencyLimit(limits_pb.ReadConcurrencyLimitRequest(tag="db"))
    ).concurrency_limit
    accepted = {a.task_run.id for a in answers if a.status == ACCEPT}
    assert set(slots.active_slots) == accepted


async def test_an_answer_that_stores_nothing_carries_the_run_as_stored(
    task_runs: TaskRunStub, limits: LimitStub
) -> None:
    """Leaving a terminal state resets the run count, but here the tag's only slot is taken and
    the answer is WAIT: nothing is stored, so the answer's run keeps its count (it said 0 while
    the database kept 2)."""
    await limits.CreateConcurrencyLimit(
        limits_pb.CreateConcurrencyLimitRequest(tag="one", concurrency_limit=1)
    )
    holder = await create_run(task_runs, tags=["one"])
    await propose(task_runs, holder.id, state(T.STATE_TYPE_RUNNING))
    run = await create_run(task_runs, tags=["one"], state=state(T.STATE_TYPE_FAILED))
    for kind in (T.STATE_TYPE_RUNNING, T.STATE_TYPE_FAILED, T.STATE_TYPE_RUNNING):
        await propose(task_runs, run.id, state(kind), force=True)
    await propose(task_runs, run.id, state(T.STATE_TYPE_FAILED), force=True)
    waited = await propose(task_runs, run.id, state(T.STATE_TYPE_RUNNING))
    stored = (await task_runs.ReadTaskRun(pb.ReadTaskRunRequest(task_run_id=run.id))).task_run
    assert waited.status == WAIT
    assert waited.task_run.run_count == stored.run_count == 2


async def test_ending_without_having_run_sets_the_start_time(task_runs: TaskRunStub) -> None:
    created = await create_run(task_runs, state=state(T.STATE_TYPE_COMPLETED))
    assert created.HasField("start_time") and created.start_time == created.end_time
    queued = await create_run(task_runs, state=scheduled(now() + timedelta(hours=1)))
    cancelled = await propose(task_runs, queued.id, state(T.STATE_TYPE_CANCELLED))
    assert cancelled.task_run.start_time == cancelled.state.timestamp


async def test_a_false_flag_in_state_details_reads_back_false(task_runs: TaskRunStub) -> None:
    run = await create_run(task_runs, state=state(T.STATE_TYPE_RUNNING))
    proposal = state_pb2.StateCreate(
        type=T.STATE_TYPE_FAILED, state_details=state_pb2.StateDetails(retriable=False)
    )
    answer = await propose(task_runs, run.id, proposal)
    stored = (await history(task_runs, run.id))[-1]
    assert answer.state.state_details.HasField("retriable")
    assert stored.state_details.HasField("retriable") and not stored.state_details.retriable


async def test_a_cache_key_past_the_key_limit_is_refused_by_name(task_runs: TaskRunStub) -> None:
    run = await create_run(task_runs, state=state(T.STATE_TYPE_RUNNING))
    proposal = state_pb2.StateCreate(
        type=T.STATE_TYPE_COMPLETED, state_details=state_pb2.StateDetails(cache_key="k" * 2001)
    )
    await expect_status(
        propose(task_runs, run.id, proposal),
        grpc.StatusCode.INVALID_ARGUMENT,
        "state.state_details.cache_key",
    )
