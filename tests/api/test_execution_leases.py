"""Execution leases against the in-process server: a delivery's lease outlives the hand-off,
heartbeats renew it and carry cancellation, stale leases are fenced, and the reaper takes back
runs whose worker went quiet or whose attempt ran too long."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import grpc
from google.protobuf import struct_pb2

from taskrun.v1 import state_pb2, task_run_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from tests.factories import TaskRunStub, at, create_run, expect_status, history, state
from tests.subscriptions import Opener, due_run

T = state_pb2
ACCEPT, REJECT, ABORT = (
    pb.SET_STATE_STATUS_ACCEPT,
    pb.SET_STATE_STATUS_REJECT,
    pb.SET_STATE_STATUS_ABORT,
)


def policy(**fields: float) -> task_run_pb2.TaskRunPolicy:
    return task_run_pb2.TaskRunPolicy(**fields)  # type: ignore[arg-type]


async def propose_under(
    stub: TaskRunStub, run_id: str, lease_id: str, kind: int, **details: str
) -> pb.SetTaskRunStateResponse:
    proposal = state(kind)
    for name, value in details.items():
        setattr(proposal.state_details, name, value)
    return await stub.SetTaskRunState(
        pb.SetTaskRunStateRequest(task_run_id=run_id, state=proposal, lease_id=lease_id)
    )


async def heartbeat(stub: TaskRunStub, *leases: tuple[str, str]) -> pb.HeartbeatTaskRunsResponse:
    request = pb.HeartbeatTaskRunsRequest(
        leases=[pb.TaskRunLease(task_run_id=run, lease_id=lease) for run, lease in leases]
    )
    return await stub.HeartbeatTaskRuns(request)


async def eventually(check: Callable[[], object], within: float = 10.0) -> None:
    """Poll an async predicate until it holds (every 50 ms), or fail after `within` seconds."""
    for _ in range(int(within / 0.05)):
        if await check():  # type: ignore[misc]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def taken(
    task_runs: TaskRunStub, subscriptions: Opener, key: str, **fields: object
) -> tuple[str, str]:
    """A due run of `key`, delivered and started (RUNNING) under its lease."""
    run = await due_run(task_runs, key, **fields)
    delivery = await subscriptions(key).receive()
    assert delivery.task_run.id == run.id and delivery.lease_id
    for kind in (T.STATE_TYPE_PENDING, T.STATE_TYPE_RUNNING):
        answer = await propose_under(task_runs, run.id, delivery.lease_id, kind)
        assert answer.status == ACCEPT, answer
    return run.id, delivery.lease_id


async def current(task_runs: TaskRunStub, run_id: str) -> task_run_pb2.TaskRun:
    return (await task_runs.ReadTaskRun(pb.ReadTaskRunRequest(task_run_id=run_id))).task_run


async def test_the_lease_outlives_the_hand_off_and_heartbeats_renew_it(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    run_id, lease = await taken(
        task_runs, subscriptions, "hb", empirical_policy=policy(heartbeat_timeout_seconds=20)
    )
    before = at((await current(task_runs, run_id)).lease_expires)
    answer = await heartbeat(task_runs, (run_id, lease))
    (result,) = answer.results
    assert result.status == pb.LEASE_STATUS_HELD and result.state_type == T.STATE_TYPE_RUNNING
    assert at(result.lease_expires) >= before
    assert 6 <= answer.next_heartbeat.ToTimedelta().total_seconds() <= 7  # a third of 20 s


async def test_a_heartbeat_is_recorded_as_the_lease_s_last_renewal(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    run_id, lease = await taken(
        task_runs, subscriptions, "seen", empirical_policy=policy(heartbeat_timeout_seconds=20)
    )
    taken_at = at((await current(task_runs, run_id)).lease_renewed)
    await asyncio.sleep(0.05)
    await heartbeat(task_runs, (run_id, lease))
    renewed = await current(task_runs, run_id)
    assert renewed.HasField("lease_renewed") and at(renewed.lease_renewed) > taken_at


async def test_heartbeats_answer_lost_for_a_stale_lease_or_an_unknown_run(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    run_id, _ = await taken(task_runs, subscriptions, "lost")
    stale = str(uuid.uuid4())
    unknown = str(uuid.uuid4())
    answer = await heartbeat(task_runs, (run_id, stale), (unknown, stale))
    assert [(r.task_run_id, r.status, r.state_type) for r in answer.results] == [
        (run_id, pb.LEASE_STATUS_LOST, T.STATE_TYPE_RUNNING),
        (unknown, pb.LEASE_STATUS_LOST, T.STATE_TYPE_UNSPECIFIED),
    ]


async def test_cancelling_reaches_the_worker_at_its_heartbeat(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    run_id, lease = await taken(task_runs, subscriptions, "cancel")
    answer = await task_runs.SetTaskRunState(  # an operator, who holds no lease
        pb.SetTaskRunStateRequest(task_run_id=run_id, state=state(T.STATE_TYPE_CANCELLING))
    )
    assert answer.status == ACCEPT
    (result,) = (await heartbeat(task_runs, (run_id, lease))).results
    assert result.status == pb.LEASE_STATUS_CANCELLING
    done = await propose_under(task_runs, run_id, lease, T.STATE_TYPE_CANCELLED)
    assert done.status == ACCEPT and done.task_run.lease_owner == ""


async def test_a_delivered_run_cancelled_before_it_starts_cannot_be_started(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    run = await due_run(task_runs, "cancel-early")
    delivery = await subscriptions("cancel-early").receive()
    await task_runs.SetTaskRunState(
        pb.SetTaskRunStateRequest(task_run_id=run.id, state=state(T.STATE_TYPE_CANCELLING))
    )
    (result,) = (await heartbeat(task_runs, (run.id, delivery.lease_id))).results
    assert result.status == pb.LEASE_STATUS_CANCELLING
    start = await propose_under(task_runs, run.id, delivery.lease_id, T.STATE_TYPE_RUNNING)
    assert start.status == ABORT and start.task_run.state_type == T.STATE_TYPE_CANCELLING
    end = await propose_under(task_runs, run.id, delivery.lease_id, T.STATE_TYPE_CANCELLED)
    assert end.status == ACCEPT


async def test_a_proposal_under_a_lease_the_run_no_longer_holds_is_refused(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    """The run was delivered twice (the first lease lapsed unsettled): the first holder can no
    longer move it, and nothing it proposes is stored."""
    run = await due_run(task_runs, "fence")
    first = await subscriptions("fence").receive()
    second = await subscriptions("fence").receive(within=10)  # after the 2 s lease lapsed
    assert second.lease_id != first.lease_id
    before = len(await history(task_runs, run.id))
    for kind in (T.STATE_TYPE_PENDING, T.STATE_TYPE_COMPLETED):
        answer = await propose_under(task_runs, run.id, first.lease_id, kind)
        assert answer.status == ABORT and "no longer held" in answer.details.reason
    assert len(await history(task_runs, run.id)) == before
    assert (
        await propose_under(task_runs, run.id, second.lease_id, T.STATE_TYPE_PENDING)
    ).status == (ACCEPT)


async def test_a_retried_final_proposal_is_a_duplicate_not_a_lost_lease(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    run_id, lease = await taken(task_runs, subscriptions, "retry-final")
    transition = str(uuid.uuid4())
    first = await propose_under(
        task_runs, run_id, lease, T.STATE_TYPE_COMPLETED, transition_id=transition
    )
    again = await propose_under(
        task_runs, run_id, lease, T.STATE_TYPE_COMPLETED, transition_id=transition
    )
    assert (first.status, again.status) == (ACCEPT, REJECT)
    assert again.state.id == first.state.id


async def test_a_silent_worker_s_run_is_retried_when_it_has_retries_left(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    fields = policy(heartbeat_timeout_seconds=0.5, retries=1)
    run_id, lease = await taken(task_runs, subscriptions, "silent", empirical_policy=fields)

    async def awaiting_retry() -> bool:
        return (await current(task_runs, run_id)).state_name == "AwaitingRetry"

    await eventually(awaiting_retry)
    run = await current(task_runs, run_id)
    assert run.state_type == T.STATE_TYPE_SCHEDULED and "stopped heartbeating" in run.state.message
    (late,) = (await heartbeat(task_runs, (run_id, lease))).results
    assert late.status == pb.LEASE_STATUS_LOST


async def test_a_silent_worker_s_run_without_retries_ends_crashed(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    fields = policy(heartbeat_timeout_seconds=0.5)
    run_id, lease = await taken(task_runs, subscriptions, "crash", empirical_policy=fields)

    async def crashed() -> bool:
        return (await current(task_runs, run_id)).state_type == T.STATE_TYPE_CRASHED

    await eventually(crashed)
    late = await propose_under(task_runs, run_id, lease, T.STATE_TYPE_COMPLETED)
    assert late.status == ABORT
    assert (await current(task_runs, run_id)).state_type == T.STATE_TYPE_CRASHED


async def test_a_cancelling_run_whose_worker_is_gone_ends_cancelled(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    fields = policy(heartbeat_timeout_seconds=0.5)
    run_id, _ = await taken(task_runs, subscriptions, "gone", empirical_policy=fields)
    await task_runs.SetTaskRunState(
        pb.SetTaskRunStateRequest(task_run_id=run_id, state=state(T.STATE_TYPE_CANCELLING))
    )

    async def cancelled() -> bool:
        return (await current(task_runs, run_id)).state_type == T.STATE_TYPE_CANCELLED

    await eventually(cancelled)


async def test_an_attempt_past_its_execution_timeout_fails_as_timed_out(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    fields = policy(execution_timeout_seconds=0.3)
    run_id, _ = await taken(task_runs, subscriptions, "timeout", empirical_policy=fields)

    async def failed() -> bool:
        return (await current(task_runs, run_id)).state_type == T.STATE_TYPE_FAILED

    await eventually(failed)
    run = await current(task_runs, run_id)
    assert run.state_name == "TimedOut" and "0.3s" in run.state.message


async def test_a_timed_out_attempt_with_retries_left_is_retried(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    fields = policy(execution_timeout_seconds=0.3, retries=2)
    run_id, _ = await taken(task_runs, subscriptions, "timeout-retry", empirical_policy=fields)

    async def rescheduled() -> bool:
        return (await current(task_runs, run_id)).state_name == "AwaitingRetry"

    await eventually(rescheduled)


async def test_a_run_whose_policy_asks_for_heartbeats_gets_a_lease_without_a_delivery(
    task_runs: TaskRunStub,
) -> None:
    run = await create_run(task_runs, empirical_policy=policy(heartbeat_timeout_seconds=0.5))
    answer = await task_runs.SetTaskRunState(
        pb.SetTaskRunStateRequest(task_run_id=run.id, state=state(T.STATE_TYPE_RUNNING))
    )
    assert answer.status == ACCEPT and answer.lease_id
    (renewed,) = (await heartbeat(task_runs, (run.id, answer.lease_id))).results
    assert renewed.status == pb.LEASE_STATUS_HELD

    async def crashed() -> bool:
        return (await current(task_runs, run.id)).state_type == T.STATE_TYPE_CRASHED

    await eventually(crashed)


async def test_a_run_without_a_heartbeat_policy_takes_no_lease(task_runs: TaskRunStub) -> None:
    run = await create_run(task_runs)
    answer = await task_runs.SetTaskRunState(
        pb.SetTaskRunStateRequest(task_run_id=run.id, state=state(T.STATE_TYPE_RUNNING))
    )
    assert answer.lease_id == "" and not answer.task_run.HasField("lease_expires")


async def test_parameters_are_stored_once_and_delivered_but_left_out_of_lists(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    parameters = struct_pb2.Struct()
    parameters.update({"x": 3, "names": ["a", "b"], "nested": {"deep": True}})
    run = await due_run(task_runs, "params", parameters=parameters)
    assert run.parameters == parameters
    assert (await current(task_runs, run.id)).parameters == parameters
    assert (await subscriptions("params").receive()).task_run.parameters == parameters
    listed = (await task_runs.ReadTaskRuns(pb.ReadTaskRunsRequest())).task_runs
    assert [r.id for r in listed] == [run.id] and not listed[0].HasField("parameters")


async def test_oversized_parameters_and_bad_timeouts_are_refused_by_name(
    task_runs: TaskRunStub,
) -> None:
    big = struct_pb2.Struct()
    big.update({"blob": "x" * (600 * 1024)})
    await expect_status(
        create_run(task_runs, parameters=big), grpc.StatusCode.INVALID_ARGUMENT, "parameters"
    )
    for name, value in (
        ("heartbeat_timeout_seconds", -1.0),
        ("execution_timeout_seconds", float("inf")),
        ("execution_timeout_seconds", 1e12),
    ):
        await expect_status(
            create_run(task_runs, empirical_policy=policy(**{name: value})),
            grpc.StatusCode.INVALID_ARGUMENT,
            f"empirical_policy.{name}",
        )
    too_many = [(str(uuid.uuid4()), str(uuid.uuid4()))] * 1001
    await expect_status(heartbeat(task_runs, *too_many), grpc.StatusCode.INVALID_ARGUMENT, "leases")
    await expect_status(
        heartbeat(task_runs, ("nope", str(uuid.uuid4()))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "leases[0].task_run_id",
    )
    assert (await task_runs.CountTaskRuns(pb.CountTaskRunsRequest())).count == 0


async def test_heartbeats_and_batched_proposals_over_the_same_runs_never_deadlock(
    task_runs: TaskRunStub,
) -> None:
    """A worker heartbeats its runs while it settles them in batches: both lock the same rows,
    and both must lock them in one order (by id), or Postgres breaks the cycle by failing one
    (deadlock detected, answered UNAVAILABLE). The heartbeat names the runs in the opposite
    order to make the cycle likely."""
    leases: dict[str, str] = {}
    for _ in range(30):
        run = await create_run(task_runs, empirical_policy=policy(heartbeat_timeout_seconds=60))
        answer = await task_runs.SetTaskRunState(
            pb.SetTaskRunStateRequest(task_run_id=run.id, state=state(T.STATE_TYPE_RUNNING))
        )
        leases[run.id] = answer.lease_id
    ascending = sorted(leases, key=uuid.UUID)
    proposals = pb.BatchSetTaskRunStatesRequest(
        requests=[
            pb.SetTaskRunStateRequest(
                task_run_id=run_id, state=state(T.STATE_TYPE_RUNNING), lease_id=leases[run_id]
            )
            for run_id in ascending
        ]
    )
    backwards = [(run_id, leases[run_id]) for run_id in reversed(ascending)]
    for _ in range(40):
        renewed, settled = await asyncio.gather(
            heartbeat(task_runs, *backwards), task_runs.BatchSetTaskRunStates(proposals)
        )
        assert {r.status for r in renewed.results} == {pb.LEASE_STATUS_HELD}
        assert len(settled.results) == len(ascending)
