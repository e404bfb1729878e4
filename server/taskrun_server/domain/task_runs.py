"""Task runs: what a client creates and what the server stores and returns."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple

from taskrun_server.domain.states import State, StateCreate, StateType

InputKind = Literal["task_run", "parameter", "constant"]

INPUT_KEYS: dict[str, str] = {"task_run": "id", "parameter": "name", "constant": "type"}
"""The key that holds an input's value, by its kind: in its stored JSON, and (the same name)
in its wire form's message."""


@dataclass(slots=True, frozen=True)
class TaskRunInput:
    """One upstream source of a parameter: a task run's result, a flow parameter or a constant.

    `value` is the task run id, the parameter name or the constant's type, by kind.
    """

    kind: InputKind
    value: str

    def to_json(self) -> dict[str, str]:
        return {"input_type": self.kind, INPUT_KEYS[self.kind]: self.value}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> TaskRunInput:
        kind: InputKind = data["input_type"]  # type: ignore[assignment]
        return cls(kind, data[INPUT_KEYS[kind]])


@dataclass(slots=True, kw_only=True)
class TaskRunPolicy:
    """How a task run is retried."""

    max_retries: int = 0
    retry_delay_seconds: float = 0.0
    retries: int | None = None
    retry_delay: list[float] = field(default_factory=list)
    retry_jitter_factor: float | None = None
    heartbeat_timeout_seconds: float | None = None
    """None: the server's default, for delivered runs. Zero: never lapses."""
    execution_timeout_seconds: float | None = None
    """None: the server's default. Zero: no limit."""

    def normalized(self) -> TaskRunPolicy:
        """Fill the current fields from the deprecated ones, as the reference does."""
        return TaskRunPolicy(
            max_retries=self.max_retries,
            retry_delay_seconds=self.retry_delay_seconds,
            retries=self.retries if self.retries is not None else (self.max_retries or None),
            retry_delay=list(self.retry_delay)
            or ([self.retry_delay_seconds] if self.retry_delay_seconds else []),
            retry_jitter_factor=self.retry_jitter_factor,
            heartbeat_timeout_seconds=self.heartbeat_timeout_seconds,
            execution_timeout_seconds=self.execution_timeout_seconds,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "max_retries": self.max_retries,
            "retry_delay_seconds": self.retry_delay_seconds,
            "retries": self.retries,
            "retry_delay": self.retry_delay,
            "retry_jitter_factor": self.retry_jitter_factor,
            "heartbeat_timeout_seconds": self.heartbeat_timeout_seconds,
            "execution_timeout_seconds": self.execution_timeout_seconds,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> TaskRunPolicy:
        data = data or {}
        return cls(
            max_retries=data.get("max_retries") or 0,
            retry_delay_seconds=data.get("retry_delay_seconds") or 0.0,
            retries=data.get("retries"),
            retry_delay=list(data.get("retry_delay") or []),
            retry_jitter_factor=data.get("retry_jitter_factor"),
            heartbeat_timeout_seconds=data.get("heartbeat_timeout_seconds"),
            execution_timeout_seconds=data.get("execution_timeout_seconds"),
        )


TaskInputs = dict[str, list[TaskRunInput]]


@dataclass(slots=True, frozen=True)
class RunLease:
    """Who may drive a run now: a delivery's subscriber until it settles, then its worker while
    the run executes. Proposals that name another lease are refused (fencing)."""

    id: uuid.UUID
    owner: str | None
    """The subscriber (client id and stream) it was delivered to; None for a lease taken by a
    direct SetTaskRunState caller whose policy asks for heartbeats."""
    expires_at: datetime | None
    """When it lapses unless renewed; None: it never lapses."""
    renewed_at: datetime | None = None
    """When it was last taken or renewed (by a heartbeat, or a proposal naming it)."""


@dataclass(slots=True, kw_only=True)
class TaskRunCreate:
    """A validated request to create a task run."""

    id: uuid.UUID | None = None
    name: str | None = None
    flow_run_id: uuid.UUID | None = None
    task_key: str
    dynamic_key: str
    cache_key: str | None = None
    cache_expiration: datetime | None = None
    task_version: str | None = None
    empirical_policy: TaskRunPolicy = field(default_factory=TaskRunPolicy)
    tags: list[str] = field(default_factory=list)
    labels: dict[str, Any] = field(default_factory=dict)
    task_inputs: TaskInputs = field(default_factory=dict)
    state: StateCreate | None = None
    parameters: dict[str, Any] | None = None
    """The run's inputs (a JSON object), stored once with it and delivered with it."""


@dataclass(slots=True, kw_only=True)
class TaskRun:
    """A stored task run with its orchestration bookkeeping and current state."""

    id: uuid.UUID
    created: datetime
    updated: datetime
    name: str
    flow_run_id: uuid.UUID | None
    task_key: str
    dynamic_key: str
    cache_key: str | None = None
    cache_expiration: datetime | None = None
    task_version: str | None = None
    empirical_policy: TaskRunPolicy = field(default_factory=TaskRunPolicy)
    tags: list[str] = field(default_factory=list)
    labels: dict[str, Any] = field(default_factory=dict)
    task_inputs: TaskInputs = field(default_factory=dict)
    state_id: uuid.UUID | None = None
    state_type: StateType | None = None
    state_name: str | None = None
    state_timestamp: datetime | None = None
    run_count: int = 0
    flow_run_run_count: int = 0
    expected_start_time: datetime | None = None
    next_scheduled_start_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    total_run_time: timedelta = timedelta(0)
    state: State | None = None
    parameters: dict[str, Any] | None = None
    """None when the run has none, or when it was read by a list query (they leave it out)."""
    lease: RunLease | None = None
    delivery_count: int = 0
    execution_deadline: datetime | None = None
    """When the current RUNNING attempt times out; None when not RUNNING or unlimited."""

    def estimated_run_time(self, now: datetime) -> timedelta:
        """Run time so far: the stored total, plus the current stretch while RUNNING."""
        return estimated_run_time(self.state_type, self.state_timestamp, self.total_run_time, now)

    def estimated_start_time_delta(self, now: datetime) -> timedelta:
        """Lateness: how long after its expected start the run started, or has waited so far."""
        return estimated_start_time_delta(
            self.expected_start_time, self.start_time, self.state_type, now
        )

    def stored(self) -> StoredTaskRun:
        """The run as its row stores it, its current state's columns beside."""
        lease, state = self.lease, self.state
        return StoredTaskRun(
            id=self.id,
            created=self.created,
            updated=self.updated,
            name=self.name,
            flow_run_id=self.flow_run_id,
            task_key=self.task_key,
            dynamic_key=self.dynamic_key,
            cache_key=self.cache_key,
            cache_expiration=self.cache_expiration,
            task_version=self.task_version,
            empirical_policy=self.empirical_policy.to_json(),
            tags=self.tags,
            labels=self.labels,
            task_inputs={
                name: [i.to_json() for i in inputs] for name, inputs in self.task_inputs.items()
            },
            state_id=self.state_id,
            state_type=self.state_type,
            state_name=self.state_name,
            state_timestamp=self.state_timestamp,
            run_count=self.run_count,
            flow_run_run_count=self.flow_run_run_count,
            expected_start_time=self.expected_start_time,
            next_scheduled_start_time=self.next_scheduled_start_time,
            start_time=self.start_time,
            end_time=self.end_time,
            total_run_time=self.total_run_time,
            parameters=self.parameters,
            delivery_count=self.delivery_count,
            lease_id=lease.id if lease else None,
            lease_owner=lease.owner if lease else None,
            lease_expires_at=lease.expires_at if lease else None,
            execution_deadline=self.execution_deadline,
            lease_renewed_at=lease.renewed_at if lease else None,
            state_message=state.message if state else None,
            state_details=state.state_details.to_json() if state else None,
            state_data=state.data if state else None,
        )


class StoredTaskRun(NamedTuple):
    """A run as its row stores it: JSON columns as stored, the current state's message, details
    and data beside. List reads return these straight from their rows (a tuple per run, no
    objects built per field), and every task-run answer is encoded from one, so one encoder
    serves both."""

    id: uuid.UUID
    created: datetime
    updated: datetime
    name: str
    flow_run_id: uuid.UUID | None
    task_key: str
    dynamic_key: str
    cache_key: str | None
    cache_expiration: datetime | None
    task_version: str | None
    empirical_policy: dict[str, Any]
    tags: list[str]
    labels: dict[str, Any]
    task_inputs: dict[str, list[dict[str, str]]]
    state_id: uuid.UUID | None
    state_type: StateType | None
    state_name: str | None
    state_timestamp: datetime | None
    run_count: int
    flow_run_run_count: int
    expected_start_time: datetime | None
    next_scheduled_start_time: datetime | None
    start_time: datetime | None
    end_time: datetime | None
    total_run_time: timedelta
    parameters: dict[str, Any] | None
    delivery_count: int
    lease_id: uuid.UUID | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    execution_deadline: datetime | None
    lease_renewed_at: datetime | None
    state_message: str | None
    state_details: dict[str, Any] | None
    state_data: Any


def estimated_run_time(
    state_type: StateType | None,
    state_timestamp: datetime | None,
    total_run_time: timedelta,
    now: datetime,
) -> timedelta:
    """Run time so far: the stored total, plus the current stretch while RUNNING."""
    if state_type is StateType.RUNNING and state_timestamp is not None:
        return total_run_time + max(now - state_timestamp, timedelta(0))
    return total_run_time


def estimated_start_time_delta(
    expected: datetime | None,
    start_time: datetime | None,
    state_type: StateType | None,
    now: datetime,
) -> timedelta:
    """Lateness: how long after its expected start the run started, or has waited so far."""
    if expected is None:
        return timedelta(0)
    if start_time is not None:
        return max(start_time - expected, timedelta(0))
    if state_type is not None and state_type.is_terminal:
        return timedelta(0)
    return max(now - expected, timedelta(0))
