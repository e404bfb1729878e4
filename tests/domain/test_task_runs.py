"""The estimates a task run reports at read time, and policy normalisation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from taskrun_server.domain.states import StateType
from taskrun_server.domain.task_runs import TaskRun, TaskRunPolicy

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def run(**fields: object) -> TaskRun:
    return TaskRun(
        id=uuid.uuid4(),
        created=T0,
        updated=T0,
        name="r",
        flow_run_id=None,
        task_key="k",
        dynamic_key="0",
        **fields,  # type: ignore[arg-type]
    )


def test_running_run_time_includes_the_current_stretch() -> None:
    r = run(state_type=StateType.RUNNING, state_timestamp=T0, total_run_time=timedelta(seconds=5))
    assert r.estimated_run_time(T0 + timedelta(seconds=3)) == timedelta(seconds=8)


def test_finished_run_time_is_the_stored_total() -> None:
    r = run(state_type=StateType.COMPLETED, state_timestamp=T0, total_run_time=timedelta(seconds=5))
    assert r.estimated_run_time(T0 + timedelta(hours=1)) == timedelta(seconds=5)


def test_lateness_of_a_started_run_is_fixed() -> None:
    r = run(expected_start_time=T0, start_time=T0 + timedelta(seconds=7))
    assert r.estimated_start_time_delta(T0 + timedelta(hours=1)) == timedelta(seconds=7)


def test_lateness_of_a_waiting_run_grows() -> None:
    r = run(expected_start_time=T0, state_type=StateType.SCHEDULED)
    assert r.estimated_start_time_delta(T0 + timedelta(seconds=30)) == timedelta(seconds=30)


def test_early_and_unstarted_finished_runs_are_not_late() -> None:
    early = run(expected_start_time=T0, start_time=T0 - timedelta(seconds=1))
    cancelled = run(expected_start_time=T0, state_type=StateType.CANCELLED)
    later = T0 + timedelta(hours=1)
    assert early.estimated_start_time_delta(later) == timedelta(0)
    assert cancelled.estimated_start_time_delta(later) == timedelta(0)


def test_policy_keeps_explicit_values_over_deprecated_ones() -> None:
    policy = TaskRunPolicy(max_retries=5, retries=1, retry_delay_seconds=3, retry_delay=[9])
    assert policy.normalized().retries == 1
    assert policy.normalized().retry_delay == [9]
