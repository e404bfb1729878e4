"""Mapping between table rows and domain objects, shared by the repositories."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

from sqlalchemy import Label, RowMapping

from taskrun_server.database.tables import task_run, task_run_state
from taskrun_server.domain.states import State, StateDetails
from taskrun_server.domain.task_runs import (
    RunLease,
    StoredTaskRun,
    TaskRun,
    TaskRunInput,
    TaskRunPolicy,
)

STATE_PREFIX = "state__"

Row: TypeAlias = RowMapping | Mapping[str, Any]
"""A row by column name: as SQLAlchemy returns it, or as a dict from a driver statement."""

state_columns_labelled: list[Label[Any]] = [
    col.label(f"{STATE_PREFIX}{col.name}") for col in task_run_state.c
]


def _optional(row: Row, key: str) -> Any:
    """A column a query may leave out (list reads skip the bulky ones). Not `row.get`: on a
    missing key SQLAlchemy raises and catches inside, which cost more than the row itself."""
    return row[key] if key in row else None  # noqa: SIM401


def state_values(state: State) -> dict[str, Any]:
    """Column values for a task_run_state row."""
    return {
        "id": state.id,
        "task_run_id": state.task_run_id,
        "type": state.type,
        "name": state.name,
        "timestamp": state.timestamp,
        "message": state.message,
        "state_details": state.state_details.to_json(),
        "data": state.data,
    }


def state_from_row(row: Row, prefix: str = "") -> State:
    """A state; its data is None when the query left the column out."""
    return State(
        id=row[f"{prefix}id"],
        task_run_id=row[f"{prefix}task_run_id"],
        type=row[f"{prefix}type"],
        name=row[f"{prefix}name"],
        timestamp=row[f"{prefix}timestamp"],
        message=row[f"{prefix}message"],
        state_details=StateDetails.from_json(row[f"{prefix}state_details"]),
        data=_optional(row, f"{prefix}data"),
    )


def task_run_values(run: TaskRun) -> dict[str, Any]:
    """Column values for a task_run row (everything but the joined state)."""
    return stored_values(run.stored())


def stored_values(stored: StoredTaskRun) -> dict[str, Any]:
    """Column values for a task_run row from the run as stored: its fields, less the state's."""
    return {name: stored[i] for i, name in _RUN_FIELDS}


_STATE_ID = f"{STATE_PREFIX}id"

RUN_COLUMNS = tuple(str(c.name) for c in task_run.c)  # exact str: orjson refuses subclasses
"""The columns a TaskRun maps to."""
_RUN_FIELDS = tuple((StoredTaskRun._fields.index(name), name) for name in RUN_COLUMNS)


def _lease_from_row(row: Row) -> RunLease | None:
    lease_id = row["lease_id"]
    if lease_id is None:
        return None
    return RunLease(
        id=lease_id,
        owner=row["lease_owner"],
        expires_at=row["lease_expires_at"],
        renewed_at=row["lease_renewed_at"],
    )


def task_run_from_row(row: Row) -> TaskRun:
    """A TaskRun from a row of task_run columns plus the labelled columns of its state."""
    joined = _STATE_ID in row and row[_STATE_ID] is not None  # some reads leave it out
    state = state_from_row(row, STATE_PREFIX) if joined else None
    return TaskRun(
        id=row["id"],
        created=row["created"],
        updated=row["updated"],
        name=row["name"],
        flow_run_id=row["flow_run_id"],
        task_key=row["task_key"],
        dynamic_key=row["dynamic_key"],
        cache_key=row["cache_key"],
        cache_expiration=row["cache_expiration"],
        task_version=row["task_version"],
        empirical_policy=TaskRunPolicy.from_json(row["empirical_policy"]),
        tags=list(row["tags"]),
        labels=row["labels"],
        task_inputs={
            name: [TaskRunInput.from_json(i) for i in inputs]
            for name, inputs in row["task_inputs"].items()
        },
        state_id=row["state_id"],
        state_type=row["state_type"],
        state_name=row["state_name"],
        state_timestamp=row["state_timestamp"],
        run_count=row["run_count"],
        flow_run_run_count=row["flow_run_run_count"],
        expected_start_time=row["expected_start_time"],
        next_scheduled_start_time=row["next_scheduled_start_time"],
        start_time=row["start_time"],
        end_time=row["end_time"],
        total_run_time=row["total_run_time"],
        state=state,
        parameters=_optional(row, "parameters"),
        lease=_lease_from_row(row),
        delivery_count=row["delivery_count"],
        execution_deadline=row["execution_deadline"],
    )


__all__ = [
    "state_columns_labelled",
    "state_from_row",
    "state_values",
    "task_run",
    "task_run_from_row",
    "task_run_values",
]
