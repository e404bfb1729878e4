"""Execution-lease decisions, as pure functions: fencing, the lease after a stored state, what
the reaper does with a run, and when a worker should heartbeat next."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from taskrun_server.domain.states import State, StateCreate, StateDetails, StateType
from taskrun_server.domain.task_runs import RunLease, TaskRun, TaskRunPolicy
from taskrun_server.orchestration.leases import (
    LeaseSettings,
    fence,
    lease_after,
    next_heartbeat,
    reap,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
S = StateType
SETTINGS = LeaseSettings(heartbeat_timeout=timedelta(seconds=30), execution_timeout=None)


def stored(kind: StateType, transition_id: uuid.UUID | None = None) -> State:
    return State(
        id=uuid.uuid4(),
        task_run_id=uuid.uuid4(),
        type=kind,
        name=kind.default_name,
        timestamp=NOW,
        state_details=StateDetails(transition_id=transition_id),
    )


def run_in(
    kind: StateType,
    *,
    lease: RunLease | None = None,
    policy: TaskRunPolicy | None = None,
    run_count: int = 0,
    deadline: datetime | None = None,
) -> TaskRun:
    return TaskRun(
        id=uuid.uuid4(), created=NOW, updated=NOW, name="r", flow_run_id=None, task_key="k",
        dynamic_key="0", state_type=kind, state=stored(kind), lease=lease, run_count=run_count,
        empirical_policy=policy or TaskRunPolicy(), execution_deadline=deadline,
    )  # fmt: skip


def lease(expires: datetime | None = NOW + timedelta(seconds=5)) -> RunLease:
    return RunLease(id=uuid.uuid4(), owner="worker/1", expires_at=expires)


def test_a_caller_naming_no_lease_is_never_fenced() -> None:
    assert fence(run_in(S.RUNNING, lease=lease()), None, StateCreate(type=S.COMPLETED)) is None


def test_the_holder_passes_and_anyone_else_naming_a_lease_is_fenced() -> None:
    held = lease()
    run = run_in(S.RUNNING, lease=held)
    assert fence(run, held.id, StateCreate(type=S.COMPLETED)) is None
    assert "no longer held" in (fence(run, uuid.uuid4(), StateCreate(type=S.COMPLETED)) or "")
    assert fence(run_in(S.CRASHED), held.id, StateCreate(type=S.COMPLETED)) is not None


def test_the_holder_of_a_run_being_cancelled_may_only_end_it() -> None:
    held = lease()
    run = run_in(S.CANCELLING, lease=held)
    assert "being cancelled" in (fence(run, held.id, StateCreate(type=S.RUNNING)) or "")
    assert fence(run, held.id, StateCreate(type=S.CANCELLED)) is None


def test_a_retry_of_the_applied_proposal_is_left_to_the_duplicate_rule() -> None:
    transition = uuid.uuid4()
    run = run_in(S.COMPLETED)
    run.state = stored(S.COMPLETED, transition)
    proposal = StateCreate(type=S.COMPLETED, state_details=StateDetails(transition_id=transition))
    assert fence(run, uuid.uuid4(), proposal) is None


def test_the_holder_keeps_its_lease_renewed_for_a_heartbeat_timeout() -> None:
    held = lease()
    terms = lease_after(
        run_in(S.SCHEDULED, lease=held),
        stored(S.PENDING),
        caller_lease=held.id,
        now=NOW,
        settings=SETTINGS,
    )
    assert terms.lease == RunLease(held.id, "worker/1", NOW + timedelta(seconds=30), renewed_at=NOW)
    assert terms.caller_lease == held.id


@pytest.mark.parametrize("end", [S.COMPLETED, S.FAILED, S.CRASHED, S.SCHEDULED, S.PAUSED])
def test_leaving_the_executing_states_ends_the_lease(end: StateType) -> None:
    held = lease()
    terms = lease_after(
        run_in(S.RUNNING, lease=held),
        stored(end),
        caller_lease=held.id,
        now=NOW,
        settings=SETTINGS,
    )
    assert terms.lease is None and terms.caller_lease is None


def test_settling_a_delivery_without_naming_the_lease_ends_it() -> None:
    """An older worker that names no lease would never heartbeat it."""
    terms = lease_after(
        run_in(S.SCHEDULED, lease=lease()),
        stored(S.PENDING),
        caller_lease=None,
        now=NOW,
        settings=SETTINGS,
    )
    assert terms.lease is None


@pytest.mark.parametrize("before", [S.SCHEDULED, S.RUNNING])
def test_an_operator_cancelling_leaves_the_lease_for_the_worker_to_hear_of(
    before: StateType,
) -> None:
    held = lease()
    terms = lease_after(
        run_in(before, lease=held),
        stored(S.CANCELLING),
        caller_lease=None,
        now=NOW,
        settings=SETTINGS,
    )
    assert terms.lease == held and terms.caller_lease is None


def test_a_policy_asking_for_heartbeats_grants_a_lease_on_starting() -> None:
    run = run_in(S.PENDING, policy=TaskRunPolicy(heartbeat_timeout_seconds=5))
    terms = lease_after(run, stored(S.RUNNING), caller_lease=None, now=NOW, settings=SETTINGS)
    assert terms.lease is not None and terms.lease.owner is None
    assert terms.lease.expires_at == NOW + timedelta(seconds=5)
    assert terms.caller_lease == terms.lease.id


def test_a_zero_heartbeat_timeout_means_a_lease_that_never_lapses() -> None:
    held = lease()
    run = run_in(S.PENDING, lease=held, policy=TaskRunPolicy(heartbeat_timeout_seconds=0))
    terms = lease_after(run, stored(S.RUNNING), caller_lease=held.id, now=NOW, settings=SETTINGS)
    assert terms.lease is not None and terms.lease.expires_at is None


def test_entering_running_sets_the_execution_deadline_and_leaving_clears_it() -> None:
    policy = TaskRunPolicy(execution_timeout_seconds=60)
    entering = lease_after(
        run_in(S.PENDING, policy=policy), stored(S.RUNNING), caller_lease=None, now=NOW,
        settings=SETTINGS,
    )  # fmt: skip
    assert entering.execution_deadline == NOW + timedelta(seconds=60)
    leaving = lease_after(
        run_in(S.RUNNING, policy=policy, deadline=NOW), stored(S.COMPLETED), caller_lease=None,
        now=NOW, settings=SETTINGS,
    )  # fmt: skip
    assert leaving.execution_deadline is None


def test_nothing_is_reaped_while_the_lease_is_live() -> None:
    assert reap(run_in(S.RUNNING, lease=lease()), NOW, SETTINGS, random.Random(0)) is None
    assert reap(run_in(S.RUNNING), NOW, SETTINGS, random.Random(0)) is None


def test_a_lapsed_running_run_with_retries_left_awaits_a_retry() -> None:
    run = run_in(
        S.RUNNING,
        lease=lease(NOW - timedelta(seconds=1)),
        policy=TaskRunPolicy(retries=2, retry_delay=[10]),
        run_count=1,
    )
    reaping = reap(run, NOW, SETTINGS, random.Random(0))
    assert reaping is not None and not reaping.orchestrated
    proposal = reaping.proposal
    assert (proposal.type, proposal.name) == (S.SCHEDULED, "AwaitingRetry")
    assert proposal.state_details.scheduled_time == NOW + timedelta(seconds=10)


def test_a_lapsed_running_run_without_retries_crashes() -> None:
    run = run_in(S.RUNNING, lease=lease(NOW - timedelta(seconds=1)), run_count=1)
    reaping = reap(run, NOW, SETTINGS, random.Random(0))
    assert reaping is not None and reaping.proposal.type is S.CRASHED
    assert "stopped heartbeating for 30s" in (reaping.proposal.message or "")


def test_a_lapsed_pending_run_is_delivered_again_without_spending_a_retry() -> None:
    run = run_in(S.PENDING, lease=lease(NOW - timedelta(seconds=1)))
    reaping = reap(run, NOW, SETTINGS, random.Random(0))
    assert reaping is not None
    assert reaping.proposal.type is S.SCHEDULED
    assert reaping.proposal.state_details.scheduled_time == NOW


def test_a_lapsed_cancelling_run_is_cancelled() -> None:
    run = run_in(S.CANCELLING, lease=lease(NOW - timedelta(seconds=1)))
    reaping = reap(run, NOW, SETTINGS, random.Random(0))
    assert reaping is not None and reaping.proposal.type is S.CANCELLED


def test_a_passed_deadline_fails_the_attempt_through_the_rules() -> None:
    run = run_in(S.RUNNING, lease=lease(), deadline=NOW - timedelta(seconds=1))
    reaping = reap(run, NOW, SETTINGS, random.Random(0))
    assert reaping is not None and reaping.orchestrated
    assert (reaping.proposal.type, reaping.proposal.name) == (S.FAILED, "TimedOut")


def test_workers_heartbeat_within_a_third_of_their_shortest_lease() -> None:
    assert next_heartbeat([timedelta(seconds=30), timedelta(seconds=9)]) == timedelta(seconds=3)
    assert next_heartbeat([timedelta(milliseconds=30)]) == timedelta(milliseconds=100)
    assert next_heartbeat([]) == timedelta(seconds=10)
