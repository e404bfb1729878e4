"""The bookkeeping every accepted state gets, whatever the policy rules decided.

These are the reference's "global" transforms: they keep a run's denormalised fields (current
state, counters, times) consistent with its state history. `force` skips policy rules, never
these.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime

from taskrun_server.domain.identifiers import new_id
from taskrun_server.domain.states import State, StateCreate, StateType
from taskrun_server.domain.task_runs import TaskRun


def materialize_state(proposed: StateCreate, run: TaskRun, now: datetime) -> State:
    """Turn a proposal into a storable state: id, timestamp, default name, details filled in."""
    details = dataclasses.replace(
        proposed.state_details, task_run_id=run.id, flow_run_id=run.flow_run_id
    )
    if proposed.type is StateType.SCHEDULED and details.scheduled_time is None:
        details.scheduled_time = now
    return State(
        id=new_id(),
        task_run_id=run.id,
        type=proposed.type,
        name=proposed.name or proposed.type.default_name,
        timestamp=now,
        message=proposed.message,
        state_details=details,
        data=proposed.data,
    )


def apply_accepted_state(run: TaskRun, initial: State | None, state: State) -> None:
    """Update the run's bookkeeping fields for a state that is about to be stored."""
    _accumulate_run_time(run, initial, state)
    _set_run_count(run, state)
    _set_start_time(run, state)
    _set_end_time(run, initial, state)
    _set_expected_start_time(run, state)
    _set_next_scheduled_start_time(run, state)
    run.state = state
    run.state_id = state.id
    run.state_type = state.type
    run.state_name = state.name
    run.state_timestamp = state.timestamp
    run.updated = state.timestamp


def _accumulate_run_time(run: TaskRun, initial: State | None, state: State) -> None:
    """Time spent RUNNING is counted when the run leaves RUNNING, whatever it goes to."""
    if initial is not None and initial.type is StateType.RUNNING:
        elapsed = state.timestamp - initial.timestamp
        if elapsed.total_seconds() > 0:
            run.total_run_time += elapsed


def _set_run_count(run: TaskRun, state: State) -> None:
    if state.type is StateType.RUNNING:
        run.run_count += 1


def _set_start_time(run: TaskRun, state: State) -> None:
    """The first RUNNING starts the run; so does ending it without having run (as the
    reference does: a run created COMPLETED, or cancelled while scheduled, has a start)."""
    starts = state.type is StateType.RUNNING or state.type.is_terminal
    if starts and run.start_time is None:
        run.start_time = state.timestamp


def _set_end_time(run: TaskRun, initial: State | None, state: State) -> None:
    """Entering a terminal state ends the run; leaving one (a retry) reopens it."""
    if state.type.is_terminal:
        if initial is None or not initial.type.is_terminal:
            run.end_time = state.timestamp
    elif initial is not None and initial.type.is_terminal:
        run.end_time = None


def _set_expected_start_time(run: TaskRun, state: State) -> None:
    """The first state fixes when the run was expected to start: its scheduled time or now."""
    if run.expected_start_time is None:
        scheduled = state.state_details.scheduled_time
        run.expected_start_time = (
            scheduled if state.type is StateType.SCHEDULED and scheduled else state.timestamp
        )


def _set_next_scheduled_start_time(run: TaskRun, state: State) -> None:
    if state.type is StateType.SCHEDULED:
        run.next_scheduled_start_time = state.state_details.scheduled_time
    else:
        run.next_scheduled_start_time = None


def new_run_id(requested: uuid.UUID | None) -> uuid.UUID:
    """The id a new run gets: the client's, when it chose one, else a time-ordered one."""
    return requested if requested is not None else new_id()
