"""Filters and sorting for task-run queries, as plain values.

Each criterion left as None (or an empty list) is not applied. The repository compiles these to
SQL; nothing here knows about SQL.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from taskrun_server.domain.states import StateType


class Operator(enum.Enum):
    """How the criteria of one filter combine."""

    AND = "and"
    OR = "or"


@dataclass(slots=True, kw_only=True)
class IdFilter:
    any: list[uuid.UUID] = field(default_factory=list)
    not_any: list[uuid.UUID] = field(default_factory=list)
    prefix: str | None = None
    """Lower-case hexadecimal digits the id starts with (no dashes)."""

    def prefix_range(self) -> tuple[uuid.UUID, uuid.UUID] | None:
        """The ids a prefix matches, as the first and last of a range (which an index serves)."""
        if not self.prefix:
            return None
        pad = 32 - len(self.prefix)
        return uuid.UUID(self.prefix + "0" * pad), uuid.UUID(self.prefix + "f" * pad)


@dataclass(slots=True, kw_only=True)
class TaskKeyFilter:
    any: list[str] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class NullableIdFilter:
    any: list[uuid.UUID] = field(default_factory=list)
    is_null: bool | None = None


@dataclass(slots=True, kw_only=True)
class NameFilter:
    any: list[str] = field(default_factory=list)
    like: str | None = None


@dataclass(slots=True, kw_only=True)
class TagsFilter:
    all: list[str] = field(default_factory=list)
    is_null: bool | None = None


@dataclass(slots=True, kw_only=True)
class TimeFilter:
    before: datetime | None = None
    after: datetime | None = None
    is_null: bool | None = None


@dataclass(slots=True, kw_only=True)
class StateFilter:
    operator: Operator = Operator.AND
    type_any: list[StateType] = field(default_factory=list)
    type_not_any: list[StateType] = field(default_factory=list)
    name_any: list[str] = field(default_factory=list)
    name_not_any: list[str] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class TaskRunFilter:
    operator: Operator = Operator.AND
    id: IdFilter | None = None
    name: NameFilter | None = None
    tags: TagsFilter | None = None
    state: StateFilter | None = None
    start_time: TimeFilter | None = None
    expected_start_time: TimeFilter | None = None
    subflow_runs_exist: bool | None = None
    flow_run_id: NullableIdFilter | None = None
    task_key: TaskKeyFilter | None = None


@dataclass(slots=True, kw_only=True)
class NamedResourceFilter:
    """What a user filters flows and deployments on: id, name and tags."""

    operator: Operator = Operator.AND
    id: IdFilter | None = None
    name: NameFilter | None = None
    tags: TagsFilter | None = None


@dataclass(slots=True, kw_only=True)
class FlowFilter(NamedResourceFilter):
    pass


@dataclass(slots=True, kw_only=True)
class FlowRunFilter:
    operator: Operator = Operator.AND
    id: IdFilter | None = None
    name: NameFilter | None = None
    tags: TagsFilter | None = None
    state: StateFilter | None = None
    deployment_id: NullableIdFilter | None = None
    parent_task_run_id: NullableIdFilter | None = None


@dataclass(slots=True, kw_only=True)
class DeploymentFilter(NamedResourceFilter):
    pass


@dataclass(slots=True, kw_only=True)
class TaskRunQuery:
    """The four filters every task-run read, count and history accepts, combined with AND.

    A flow, flow-run or deployment filter only matches task runs that belong to a flow run, as
    in the reference, where those filters are joins.
    """

    task_runs: TaskRunFilter | None = None
    flow_runs: FlowRunFilter | None = None
    flows: FlowFilter | None = None
    deployments: DeploymentFilter | None = None


class TaskRunSort(enum.Enum):
    """Orderings for task-run reads; ties are broken by id, descending."""

    ID_DESC = "id_desc"
    EXPECTED_START_TIME_ASC = "expected_start_time_asc"
    EXPECTED_START_TIME_DESC = "expected_start_time_desc"
    NAME_ASC = "name_asc"
    NAME_DESC = "name_desc"
    NEXT_SCHEDULED_START_TIME_ASC = "next_scheduled_start_time_asc"
    END_TIME_DESC = "end_time_desc"


MAX_LIMIT = 200
"""Default and maximum page size, as the reference's default API limit."""
