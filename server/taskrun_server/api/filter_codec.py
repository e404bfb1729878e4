"""Filters, sorts and page bounds from protobuf to the domain, validated."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TypeVar

from taskrun.v1 import filters_pb2, task_run_service_pb2
from taskrun_server.api.wire import parse_operator, parse_optional_timestamp, parse_state_type
from taskrun_server.domain.errors import InvalidArgument
from taskrun_server.domain.filters import (
    MAX_LIMIT,
    DeploymentFilter,
    FlowFilter,
    FlowRunFilter,
    IdFilter,
    NamedResourceFilter,
    NameFilter,
    NullableIdFilter,
    StateFilter,
    TagsFilter,
    TaskKeyFilter,
    TaskRunFilter,
    TaskRunQuery,
    TaskRunSort,
    TimeFilter,
)
from taskrun_server.domain.identifiers import parse_id
from taskrun_server.domain.limits import (
    MAX_KEY_BYTES,
    MAX_NAME_BYTES,
    MAX_TAG_BYTES,
    check_list_length,
    check_required_text,
    check_text,
)

_SORTS = {
    filters_pb2.TASK_RUN_SORT_UNSPECIFIED: TaskRunSort.ID_DESC,
    filters_pb2.TASK_RUN_SORT_ID_DESC: TaskRunSort.ID_DESC,
    filters_pb2.TASK_RUN_SORT_EXPECTED_START_TIME_ASC: TaskRunSort.EXPECTED_START_TIME_ASC,
    filters_pb2.TASK_RUN_SORT_EXPECTED_START_TIME_DESC: TaskRunSort.EXPECTED_START_TIME_DESC,
    filters_pb2.TASK_RUN_SORT_NAME_ASC: TaskRunSort.NAME_ASC,
    filters_pb2.TASK_RUN_SORT_NAME_DESC: TaskRunSort.NAME_DESC,
    filters_pb2.TASK_RUN_SORT_NEXT_SCHEDULED_START_TIME_ASC: (
        TaskRunSort.NEXT_SCHEDULED_START_TIME_ASC
    ),
    filters_pb2.TASK_RUN_SORT_END_TIME_DESC: TaskRunSort.END_TIME_DESC,
}


FilteredRequest = (
    task_run_service_pb2.ReadTaskRunsRequest
    | task_run_service_pb2.PaginateTaskRunsRequest
    | task_run_service_pb2.CountTaskRunsRequest
    | task_run_service_pb2.TaskRunHistoryRequest
)
"""Every request that carries the four task-run filters."""


def parse_sort(value: int) -> TaskRunSort:
    try:
        return _SORTS[value]  # type: ignore[index]
    except KeyError:
        raise InvalidArgument(f"{value} is not a known sort", "sort") from None


def parse_limit(has_limit: bool, limit: int) -> int:
    """Unset means the default; 0 is allowed and returns nothing, as in the reference."""
    if not has_limit:
        return MAX_LIMIT
    if limit < 0:
        raise InvalidArgument("must not be negative", "limit")
    if limit > MAX_LIMIT:
        raise InvalidArgument(f"must be at most {MAX_LIMIT}", "limit")
    return limit


def parse_offset(offset: int) -> int:
    if offset < 0:
        raise InvalidArgument("must not be negative", "offset")
    return offset


def parse_page(page: int) -> int:
    """One-based; zero (unset) means the first page."""
    if page < 0:
        raise InvalidArgument("must be at least 1", "page")
    return page or 1


def _ids(values: Iterable[str], path: str) -> list[uuid.UUID]:
    items = list(values)
    check_list_length(items, path)
    return [parse_id(v, f"{path}[{i}]") for i, v in enumerate(items)]


def _strings(values: Iterable[str], path: str, max_bytes: int) -> list[str]:
    items = list(values)
    check_list_length(items, path)
    return [
        check_required_text(v, f"{path}[{i}]", max_bytes=max_bytes) for i, v in enumerate(items)
    ]


def _id_filter(msg: filters_pb2.IdFilter, path: str) -> IdFilter:
    return IdFilter(
        any=_ids(msg.any, f"{path}.any"),
        not_any=_ids(msg.not_any, f"{path}.not_any"),
        prefix=_id_prefix(msg.prefix, f"{path}.prefix"),
    )


_HEX_DIGITS = frozenset("0123456789abcdef")


def _id_prefix(value: str, path: str) -> str | None:
    digits = value.replace("-", "").lower()
    if not digits:
        return None
    if len(digits) > 32 or not set(digits) <= _HEX_DIGITS:
        raise InvalidArgument("must be up to 32 hexadecimal digits (dashes allowed)", path)
    return digits


def _nullable_id_filter(msg: filters_pb2.NullableIdFilter, path: str) -> NullableIdFilter:
    return NullableIdFilter(
        any=_ids(msg.any, f"{path}.any"),
        is_null=msg.is_null if msg.HasField("is_null") else None,
    )


def _name_filter(msg: filters_pb2.NameFilter, path: str) -> NameFilter:
    return NameFilter(
        any=_strings(msg.any, f"{path}.any", MAX_NAME_BYTES),
        like=check_text(msg.like, f"{path}.like", max_bytes=MAX_NAME_BYTES) or None,
    )


def _tags_filter(msg: filters_pb2.TagsFilter, path: str) -> TagsFilter:
    return TagsFilter(
        all=_strings(msg.all, f"{path}.all", MAX_TAG_BYTES),
        is_null=msg.is_null if msg.HasField("is_null") else None,
    )


def _time_filter(msg: filters_pb2.TimeFilter, path: str) -> TimeFilter:
    return TimeFilter(
        before=parse_optional_timestamp(msg, "before", f"{path}.before"),
        after=parse_optional_timestamp(msg, "after", f"{path}.after"),
        is_null=msg.is_null if msg.HasField("is_null") else None,
    )


def _state_filter(msg: filters_pb2.StateFilter, path: str) -> StateFilter:
    for name in ("any", "not_any"):
        check_list_length(getattr(msg.type, name), f"{path}.type.{name}")
    return StateFilter(
        operator=parse_operator(msg.operator, f"{path}.operator"),
        type_any=[parse_state_type(t, f"{path}.type.any[{i}]") for i, t in enumerate(msg.type.any)],
        type_not_any=[
            parse_state_type(t, f"{path}.type.not_any[{i}]") for i, t in enumerate(msg.type.not_any)
        ],
        name_any=_strings(msg.name.any, f"{path}.name.any", MAX_NAME_BYTES),
        name_not_any=_strings(msg.name.not_any, f"{path}.name.not_any", MAX_NAME_BYTES),
    )


def _task_run_filter(msg: filters_pb2.TaskRunFilter, path: str) -> TaskRunFilter:
    sub = msg.HasField
    return TaskRunFilter(
        operator=parse_operator(msg.operator, f"{path}.operator"),
        id=_id_filter(msg.id, f"{path}.id") if sub("id") else None,
        name=_name_filter(msg.name, f"{path}.name") if sub("name") else None,
        tags=_tags_filter(msg.tags, f"{path}.tags") if sub("tags") else None,
        state=_state_filter(msg.state, f"{path}.state") if sub("state") else None,
        start_time=_time_filter(msg.start_time, f"{path}.start_time")
        if sub("start_time")
        else None,
        expected_start_time=(
            _time_filter(msg.expected_start_time, f"{path}.expected_start_time")
            if sub("expected_start_time")
            else None
        ),
        subflow_runs_exist=(
            msg.subflow_runs.exists
            if sub("subflow_runs") and msg.subflow_runs.HasField("exists")
            else None
        ),
        flow_run_id=(
            _nullable_id_filter(msg.flow_run_id, f"{path}.flow_run_id")
            if sub("flow_run_id")
            else None
        ),
        task_key=(
            TaskKeyFilter(any=_strings(msg.task_key.any, f"{path}.task_key.any", MAX_KEY_BYTES))
            if sub("task_key")
            else None
        ),
    )


F = TypeVar("F", bound=NamedResourceFilter)


def _named_resource_filter(
    msg: filters_pb2.FlowFilter | filters_pb2.DeploymentFilter, path: str, kind: type[F]
) -> F:
    """Flow and deployment filters share their fields: id, name and tags."""
    return kind(
        operator=parse_operator(msg.operator, f"{path}.operator"),
        id=_id_filter(msg.id, f"{path}.id") if msg.HasField("id") else None,
        name=_name_filter(msg.name, f"{path}.name") if msg.HasField("name") else None,
        tags=_tags_filter(msg.tags, f"{path}.tags") if msg.HasField("tags") else None,
    )


def _flow_run_filter(msg: filters_pb2.FlowRunFilter, path: str) -> FlowRunFilter:
    sub = msg.HasField
    return FlowRunFilter(
        operator=parse_operator(msg.operator, f"{path}.operator"),
        id=_id_filter(msg.id, f"{path}.id") if sub("id") else None,
        name=_name_filter(msg.name, f"{path}.name") if sub("name") else None,
        tags=_tags_filter(msg.tags, f"{path}.tags") if sub("tags") else None,
        state=_state_filter(msg.state, f"{path}.state") if sub("state") else None,
        deployment_id=(
            _nullable_id_filter(msg.deployment_id, f"{path}.deployment_id")
            if sub("deployment_id")
            else None
        ),
        parent_task_run_id=(
            _nullable_id_filter(msg.parent_task_run_id, f"{path}.parent_task_run_id")
            if sub("parent_task_run_id")
            else None
        ),
    )


def parse_task_run_filter(request: task_run_service_pb2.WatchTaskRunsRequest) -> TaskRunQuery:
    """A request that filters on task runs alone (a watch)."""
    return TaskRunQuery(task_runs=_task_run_filter(request.task_runs, "task_runs"))


def parse_query(request: FilteredRequest) -> TaskRunQuery:
    """The four filters of a read, count or history request. Unset filters are not applied."""
    return TaskRunQuery(
        task_runs=(
            _task_run_filter(request.task_runs, "task_runs")
            if request.HasField("task_runs")
            else None
        ),
        flow_runs=(
            _flow_run_filter(request.flow_runs, "flow_runs")
            if request.HasField("flow_runs")
            else None
        ),
        flows=_named_resource_filter(request.flows, "flows", FlowFilter)
        if request.HasField("flows")
        else None,
        deployments=(
            _named_resource_filter(request.deployments, "deployments", DeploymentFilter)
            if request.HasField("deployments")
            else None
        ),
    )
