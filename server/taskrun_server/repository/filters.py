"""Compile domain filters and sorts to SQLAlchemy expressions over the task_run table."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Table,
    UnaryExpression,
    and_,
    exists,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.types import Text

from taskrun_server.database.tables import deployment, flow, flow_run, task_run
from taskrun_server.domain.filters import (
    FlowRunFilter,
    IdFilter,
    NamedResourceFilter,
    NameFilter,
    NullableIdFilter,
    Operator,
    StateFilter,
    TagsFilter,
    TaskKeyFilter,
    TaskRunFilter,
    TaskRunQuery,
    TaskRunSort,
    TimeFilter,
)

Criteria = list[ColumnElement[bool]]
Column = ColumnClause[object] | ColumnElement[object]


def _combine(operator: Operator, criteria: Sequence[ColumnElement[bool]]) -> Criteria:
    if not criteria:
        return []
    if len(criteria) == 1:
        return [criteria[0]]
    return [or_(*criteria) if operator is Operator.OR else and_(*criteria)]


def _id_criteria(column: Column, f: IdFilter | None) -> Criteria:
    if f is None:
        return []
    out: Criteria = []
    if f.any:
        out.append(column.in_(f.any))
    if f.not_any:
        out.append(column.not_in(f.not_any))
    bounds = f.prefix_range()
    if bounds is not None:
        out.append(column.between(*bounds))
    return out


def _task_key_criteria(column: Column, f: TaskKeyFilter | None) -> Criteria:
    return [column.in_(f.any)] if f is not None and f.any else []


def _nullable_id_criteria(column: Column, f: NullableIdFilter | None) -> Criteria:
    if f is None:
        return []
    out: Criteria = []
    if f.any:
        out.append(column.in_(f.any))
    if f.is_null is not None:
        out.append(column.is_(None) if f.is_null else column.is_not(None))
    return out


def _name_criteria(column: Column, f: NameFilter | None) -> Criteria:
    if f is None:
        return []
    out: Criteria = []
    if f.any:
        out.append(column.in_(f.any))
    if f.like:
        out.append(column.ilike(f"%{f.like}%"))
    return out


def _tags_criteria(column: Column, f: TagsFilter | None) -> Criteria:
    if f is None:
        return []
    out: Criteria = []
    if f.all:
        out.append(column.op("@>")(literal(f.all, ARRAY(Text))))
    if f.is_null is not None:
        empty = literal([], ARRAY(Text))
        out.append(column == empty if f.is_null else column != empty)
    return out


def _time_criteria(column: Column, f: TimeFilter | None, *, allow_null: bool = True) -> Criteria:
    if f is None:
        return []
    out: Criteria = []
    if f.before is not None:
        out.append(column <= f.before)
    if f.after is not None:
        out.append(column >= f.after)
    if allow_null and f.is_null is not None:
        out.append(column.is_(None) if f.is_null else column.is_not(None))
    return out


def _state_criteria(table: FromClause, f: StateFilter | None) -> Criteria:
    if f is None:
        return []
    out: Criteria = []
    if f.type_any:
        out.append(table.c.state_type.in_(f.type_any))
    if f.type_not_any:
        out.append(table.c.state_type.not_in(f.type_not_any))
    if f.name_any:
        out.append(table.c.state_name.in_(f.name_any))
    if f.name_not_any:
        out.append(table.c.state_name.not_in(f.name_not_any))
    return _combine(f.operator, out)


def _task_run_criteria(f: TaskRunFilter | None) -> Criteria:
    if f is None:
        return []
    c = task_run.c
    out: Criteria = [
        *_id_criteria(c.id, f.id),
        *_name_criteria(c.name, f.name),
        *_tags_criteria(c.tags, f.tags),
        *_state_criteria(task_run, f.state),
        *_time_criteria(c.start_time, f.start_time),
        *_time_criteria(c.expected_start_time, f.expected_start_time, allow_null=False),
        *_nullable_id_criteria(c.flow_run_id, f.flow_run_id),
        *_task_key_criteria(c.task_key, f.task_key),
    ]
    if f.subflow_runs_exist is not None:
        has_subflows = exists().where(flow_run.c.parent_task_run_id == c.id)
        out.append(has_subflows if f.subflow_runs_exist else ~has_subflows)
    return _combine(f.operator, out)


def _flow_run_criteria(f: FlowRunFilter | None) -> Criteria:
    if f is None:
        return []
    c = flow_run.c
    return _combine(
        f.operator,
        [
            *_id_criteria(c.id, f.id),
            *_name_criteria(c.name, f.name),
            *_tags_criteria(c.tags, f.tags),
            *_state_criteria(flow_run, f.state),
            *_nullable_id_criteria(c.deployment_id, f.deployment_id),
            *_nullable_id_criteria(c.parent_task_run_id, f.parent_task_run_id),
        ],
    )


def _named_resource_criteria(table: Table, f: NamedResourceFilter | None) -> Criteria:
    """Flows and deployments are filtered on the same columns: id, name and tags."""
    if f is None:
        return []
    c = table.c
    return _combine(
        f.operator,
        [
            *_id_criteria(c.id, f.id),
            *_name_criteria(c.name, f.name),
            *_tags_criteria(c.tags, f.tags),
        ],
    )


def _related_criteria(query: TaskRunQuery) -> Criteria:
    """Flow-run, flow and deployment filters as one EXISTS over the task run's flow run.

    Any of these filters, even an empty one, restricts the result to task runs that have a flow
    run (and, for the deployment filter, a flow run with a deployment): the reference joins.
    """
    if query.flow_runs is None and query.flows is None and query.deployments is None:
        return []
    source = flow_run
    criteria: Criteria = [flow_run.c.id == task_run.c.flow_run_id]
    criteria += _flow_run_criteria(query.flow_runs)
    if query.flows is not None:
        source = source.join(flow, flow.c.id == flow_run.c.flow_id)  # type: ignore[assignment]
        criteria += _named_resource_criteria(flow, query.flows)
    if query.deployments is not None:
        source = source.join(  # type: ignore[assignment]
            deployment, deployment.c.id == flow_run.c.deployment_id
        )
        criteria += _named_resource_criteria(deployment, query.deployments)
    return [exists(select(literal(1)).select_from(source).where(*criteria))]


def tallied_criteria(query: TaskRunQuery, tally: FromClause) -> Criteria | None:
    """The query's criteria over the task-run tally's columns (state type, state name, tags),
    or None when it filters on anything else: then only the runs themselves can answer."""
    if query.flow_runs is not None or query.flows is not None or query.deployments is not None:
        return None
    f = query.task_runs
    if f is None:
        return []
    c = task_run.c
    elsewhere = [
        *_id_criteria(c.id, f.id),
        *_name_criteria(c.name, f.name),
        *_time_criteria(c.start_time, f.start_time),
        *_time_criteria(c.expected_start_time, f.expected_start_time, allow_null=False),
        *_nullable_id_criteria(c.flow_run_id, f.flow_run_id),
        *_task_key_criteria(c.task_key, f.task_key),
    ]
    if elsewhere or f.subflow_runs_exist is not None:
        return None
    return _combine(
        f.operator, [*_tags_criteria(tally.c.tags, f.tags), *_state_criteria(tally, f.state)]
    )


def without_expected_window(
    query: TaskRunQuery,
) -> tuple[TaskRunQuery, datetime | None, datetime | None] | None:
    """The query less its expected-start-time window, and the window's bounds (inclusive),
    when the window is ANDed with the rest: a count over such a query can add the tally's
    whole hours inside the window to the runs of the partial hours at its edges."""
    f = query.task_runs
    window = f.expected_start_time if f is not None else None
    if f is None or window is None or f.operator is not Operator.AND:
        return None
    if window.before is None and window.after is None:
        return None
    rest = dataclasses.replace(f, expected_start_time=None)
    return dataclasses.replace(query, task_runs=rest), window.after, window.before


def task_run_where(query: TaskRunQuery) -> Criteria:
    """Every criterion of the query, to be ANDed in a WHERE clause."""
    return [*_task_run_criteria(query.task_runs), *_related_criteria(query)]


_SORTS: dict[TaskRunSort, tuple[str, bool]] = {
    TaskRunSort.ID_DESC: ("id", False),
    TaskRunSort.EXPECTED_START_TIME_ASC: ("expected_start_time", True),
    TaskRunSort.EXPECTED_START_TIME_DESC: ("expected_start_time", False),
    TaskRunSort.NAME_ASC: ("name", True),
    TaskRunSort.NAME_DESC: ("name", False),
    TaskRunSort.NEXT_SCHEDULED_START_TIME_ASC: ("next_scheduled_start_time", True),
    TaskRunSort.END_TIME_DESC: ("end_time", False),
}


def task_run_order_by(sort: TaskRunSort) -> list[UnaryExpression[object]]:
    """ORDER BY for a sort, with id in the same direction as the tie-breaker.

    Postgres puts NULLs last when ascending and first when descending, as the reference on
    Postgres does; the (column, id) indexes serve both directions.
    """
    column_name, ascending = _SORTS[sort]
    columns = [task_run.c[column_name]]
    if column_name != "id":
        columns.append(task_run.c.id)
    return [col.asc() if ascending else col.desc() for col in columns]
