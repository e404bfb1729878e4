"""The task-run tally (migration 0005): which queries it can answer, and its compaction.

The database keeps it: a trigger appends every change to task_run_tally_delta, and `compact`
folds those deltas into task_run_tally. A reader adds both, so what it reads is exact whenever
it reads it, compacted or not.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, Subquery, func, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from taskrun_server.database.tables import task_run_tally, task_run_tally_delta
from taskrun_server.domain.filters import TaskRunFilter, TaskRunQuery, TimeFilter
from taskrun_server.domain.history import LAST_INSTANT
from taskrun_server.repository.filters import tallied_criteria, without_expected_window


def tally_source() -> Subquery:
    """The tally and its pending deltas as one relation, `t`: sum it, never read it row by
    row (a key may appear several times)."""
    return union_all(select(task_run_tally), select(task_run_tally_delta)).subquery("t")


@dataclass(frozen=True, slots=True)
class TalliedCount:
    """How a count is answered from the tally: its criteria (with the hours of a window), and
    the runs to count one by one beside it (the partial hours at a window's edges)."""

    criteria: list[ColumnElement[bool]]
    source: Subquery
    edges: list[TaskRunQuery]


def tallied_count(query: TaskRunQuery) -> TalliedCount | None:
    """The tally's part of a count of `query`, or None when the tally cannot answer it."""
    source = tally_source()
    criteria = tallied_criteria(query, source)
    if criteria is not None:
        return TalliedCount(criteria, source, [])
    split = without_expected_window(query)
    if split is None:
        return None
    rest, after, before = split
    criteria = tallied_criteria(rest, source)
    if criteria is None:
        return None
    first = ceil_hour(after) if after is not None else None
    last = floor_hour(before) if before is not None else None
    if first is not None and last is not None and first >= last:
        return None  # no whole hour inside: the runs alone
    hours: list[ColumnElement[bool]] = []
    edges: list[TimeFilter] = []
    if first is not None:
        hours.append(source.c.hour >= first)
        edges.append(TimeFilter(after=after, before=first - _TICK))
    if last is not None:
        hours.append(source.c.hour < last)
        edges.append(TimeFilter(after=last, before=before))
    if first is None and last is not None:
        hours.append(source.c.hour.is_not(None))
    base = rest.task_runs or TaskRunFilter()
    edge_queries = [
        dataclasses.replace(rest, task_runs=dataclasses.replace(base, expected_start_time=edge))
        for edge in edges
    ]
    return TalliedCount([*criteria, *hours], source, edge_queries)


_TICK = timedelta(microseconds=1)
"""A timestamp's resolution: [a, b) is [a, b - tick] for an inclusive bound."""
_HOUR = timedelta(hours=1)
_LAST_HOUR = LAST_INSTANT.replace(minute=0, second=0, microsecond=0)


def floor_hour(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def ceil_hour(value: datetime) -> datetime:
    floor = floor_hour(value)
    return floor if floor == value or floor >= _LAST_HOUR else floor + _HOUR


def count_statement(tallied: TalliedCount) -> Select[Any]:
    """The tally's part of a count: one row, the sum."""
    source = tallied.source
    return select(func.coalesce(func.sum(source.c.runs), 0)).where(*tallied.criteria)


def counts_by_state_statement(tallied: TalliedCount) -> Select[Any]:
    """The tally's part of a count per state type: a row per type that has runs."""
    source = tallied.source
    runs = func.sum(source.c.runs)
    return (
        select(source.c.state_type, runs)
        .where(source.c.state_type.is_not(None), *tallied.criteria)
        .group_by(source.c.state_type)
        .having(runs != 0)
    )


_COMPACT = text(
    """
    WITH moved AS (DELETE FROM task_run_tally_delta RETURNING *)
    INSERT INTO task_run_tally AS t (
        hour, state_type, state_name, tags,
        runs, run_time, running_since, start_delay, waiting, waiting_since)
    SELECT hour, state_type, state_name, tags,
        sum(runs), sum(run_time), sum(running_since), sum(start_delay), sum(waiting),
        sum(waiting_since)
    FROM moved GROUP BY hour, state_type, state_name, tags
    ORDER BY hour, state_type, state_name, tags
    ON CONFLICT (hour, state_type, state_name, tags) DO UPDATE SET
        runs = t.runs + excluded.runs,
        run_time = t.run_time + excluded.run_time,
        running_since = t.running_since + excluded.running_since,
        start_delay = t.start_delay + excluded.start_delay,
        waiting = t.waiting + excluded.waiting,
        waiting_since = t.waiting_since + excluded.waiting_since
    """
)
_DROP_EMPTY = text("DELETE FROM task_run_tally WHERE runs = 0")
_ONE_COMPACTOR = text("SELECT pg_try_advisory_xact_lock(hashtext('taskrun_tally_compaction'))")


async def compact(conn: AsyncConnection) -> bool:
    """Fold the pending deltas into the tally, in the caller's transaction, and drop keys no
    run holds any more (their sums are zero too: numeric sums are exact). One compactor at a
    time across replicas; False when another one is at it."""
    if not (await conn.execute(_ONE_COMPACTOR)).scalar_one():
        return False
    await conn.execute(_COMPACT)
    await conn.execute(_DROP_EMPTY)
    return True


def epoch(value: datetime) -> Decimal:
    """A time as exact numeric seconds since 1970, for arithmetic with the tally's sums."""
    since = value - _EPOCH
    return Decimal(since.days * 86_400 + since.seconds) + Decimal(since.microseconds).scaleb(-6)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
