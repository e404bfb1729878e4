"""The bookkeeping every accepted state gets, as plain functions on domain objects."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from taskrun_server.domain.states import StateCreate, StateDetails, StateType
from taskrun_server.domain.task_runs import TaskRun
from taskrun_server.orchestration.bookkeeping import apply_accepted_state, materialize_state

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def new_run(flow_run_id: uuid.UUID | None = None) -> TaskRun:
    return TaskRun(
        id=uuid.uuid4(),
        created=T0,
        updated=T0,
        name="r",
        flow_run_id=flow_run_id,
        task_key="k",
        dynamic_key="0",
    )


def move(run: TaskRun, kind: StateType, at: datetime, **details: Any) -> None:
    state = materialize_state(
        StateCreate(type=kind, state_details=StateDetails(**details)), run, at
    )
    apply_accepted_state(run, run.state, state)


def test_state_details_name_the_run_and_its_flow_run() -> None:
    flow_run_id = uuid.uuid4()
    run = new_run(flow_run_id)
    state = materialize_state(StateCreate(type=StateType.PENDING), run, T0)
    assert state.state_details.task_run_id == run.id
    assert state.state_details.flow_run_id == flow_run_id
    assert state.name == "Pending"


def test_current_state_fields_follow_the_state() -> None:
    run = new_run()
    move(run, StateType.RUNNING, T0)
    assert run.state is not None
    assert (run.state_id, run.state_type, run.state_name) == (
        run.state.id,
        StateType.RUNNING,
        "Running",
    )
    assert run.state_timestamp == T0 and run.updated == T0


def test_first_scheduled_state_sets_expected_and_next_start() -> None:
    run = new_run()
    due = T0 + timedelta(hours=1)
    move(run, StateType.SCHEDULED, T0, scheduled_time=due)
    assert run.expected_start_time == due and run.next_scheduled_start_time == due
    move(run, StateType.PENDING, T0 + timedelta(hours=1))
    assert run.expected_start_time == due and run.next_scheduled_start_time is None


def test_first_non_scheduled_state_expects_the_run_now() -> None:
    run = new_run()
    move(run, StateType.PENDING, T0)
    assert run.expected_start_time == T0


def test_running_counts_runs_and_sets_start_time_once() -> None:
    run = new_run()
    move(run, StateType.RUNNING, T0)
    move(run, StateType.FAILED, T0 + timedelta(seconds=5))
    move(run, StateType.RUNNING, T0 + timedelta(seconds=10))
    assert run.run_count == 2
    assert run.start_time == T0


def test_time_running_accumulates_when_leaving_running() -> None:
    run = new_run()
    move(run, StateType.RUNNING, T0)
    move(run, StateType.FAILED, T0 + timedelta(seconds=5))
    move(run, StateType.SCHEDULED, T0 + timedelta(seconds=6))
    move(run, StateType.RUNNING, T0 + timedelta(seconds=10))
    move(run, StateType.COMPLETED, T0 + timedelta(seconds=13))
    assert run.total_run_time == timedelta(seconds=8)


def test_end_time_is_set_on_terminal_and_cleared_on_reopen() -> None:
    run = new_run()
    move(run, StateType.RUNNING, T0)
    move(run, StateType.FAILED, T0 + timedelta(seconds=1))
    assert run.end_time == T0 + timedelta(seconds=1)
    move(run, StateType.SCHEDULED, T0 + timedelta(seconds=2))
    assert run.end_time is None
    move(run, StateType.RUNNING, T0 + timedelta(seconds=3))
    move(run, StateType.COMPLETED, T0 + timedelta(seconds=4))
    assert run.end_time == T0 + timedelta(seconds=4)


def test_scheduled_without_time_is_due_at_its_timestamp() -> None:
    run = new_run()
    state = materialize_state(StateCreate(type=StateType.SCHEDULED), run, T0)
    assert state.state_details.scheduled_time == T0
