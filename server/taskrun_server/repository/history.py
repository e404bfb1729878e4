"""Task-run history: from the tally for whole hours, from the runs for the rest."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Executable,
    Float,
    Integer,
    Interval,
    Numeric,
    Select,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from taskrun_server.database.tables import task_run
from taskrun_server.domain.filters import TaskRunQuery
from taskrun_server.domain.history import (
    LAST_INSTANT,
    HistoryInterval,
    HistoryState,
    clamped_sum,
)
from taskrun_server.domain.states import TERMINAL_TYPES, StateType
from taskrun_server.repository.driver_statements import DriverStatement
from taskrun_server.repository.filters import tallied_criteria, task_run_where
from taskrun_server.repository.kept_statements import KEPT_STATEMENTS
from taskrun_server.repository.tally import ceil_hour, epoch, floor_hour, tally_source

_ZERO = literal(timedelta(0), Interval)

# What changes from one call to the next is a parameter, so that a statement, once built for a
# query, serves every later call with that query (see `_statement`).
_NOW = bindparam("now", type_=DateTime(timezone=True))
_NOW_EPOCH = bindparam("now_epoch", type_=Numeric)
_CURRENT_HOUR = bindparam("current_hour", type_=DateTime(timezone=True))
_NEXT_HOUR = bindparam("next_hour", type_=DateTime(timezone=True))
_DUE_BUCKET = bindparam("due_bucket", type_=Integer)


def estimated_run_time(now: ColumnElement[datetime]) -> ColumnElement[timedelta]:
    """SQL twin of TaskRun.estimated_run_time."""
    c = task_run.c
    return case(
        (
            c.state_type == StateType.RUNNING,
            c.total_run_time + func.greatest(now - c.state_timestamp, _ZERO),
        ),
        else_=c.total_run_time,
    )


def estimated_lateness(now: ColumnElement[datetime]) -> ColumnElement[timedelta]:
    """SQL twin of TaskRun.estimated_start_time_delta."""
    c = task_run.c
    return case(
        (
            c.start_time.is_not(None),
            func.greatest(c.start_time - c.expected_start_time, _ZERO),
        ),
        (c.state_type.in_(TERMINAL_TYPES), _ZERO),
        else_=func.greatest(now - c.expected_start_time, _ZERO),
    )


def bucket_count(start: datetime, end: datetime, interval: timedelta) -> int:
    """Buckets start at `start` every `interval` while before `end`; the last may overhang."""
    return max(math.ceil((end - start) / interval), 0)


@dataclass(slots=True)
class _Ranges:
    """Stretches of expected start time, each belonging to one bucket, as three arrays."""

    bucket: list[int] = field(default_factory=list)
    lower: list[datetime] = field(default_factory=list)
    upper: list[datetime] = field(default_factory=list)

    def add(self, bucket: int, lower: datetime, upper: datetime) -> None:
        if lower < upper:
            self.bucket.append(bucket)
            self.lower.append(lower)
            self.upper.append(upper)

    def params(self, prefix: str) -> dict[str, object]:
        return {f"{prefix}_i": self.bucket, f"{prefix}_lo": self.lower, f"{prefix}_hi": self.upper}

    @staticmethod
    def table(prefix: str) -> Any:
        return (
            func.unnest(
                bindparam(f"{prefix}_i", type_=ARRAY(Integer)),
                bindparam(f"{prefix}_lo", type_=ARRAY(DateTime(timezone=True))),
                bindparam(f"{prefix}_hi", type_=ARRAY(DateTime(timezone=True))),
            )
            .table_valued("i", "lo", "hi")
            .render_derived(name=prefix)
        )


def _split(
    intervals: list[HistoryInterval], now: datetime, tallied: bool
) -> tuple[_Ranges, _Ranges]:
    """Which stretches of each bucket the tally answers and which the runs themselves: the
    tally holds whole hours, so it answers for the hours that are whole inside a bucket (the
    current and future ones included, see `_from_tally`); the partial hours at a bucket's
    edges, the runs."""
    raw, hours = _Ranges(), _Ranges()
    for i, interval in enumerate(intervals):
        low, high = interval.interval_start, interval.interval_end
        first, last = ceil_hour(low), floor_hour(high)
        if not tallied or first >= last:
            raw.add(i, low, high)
            continue
        raw.add(i, low, first)
        hours.add(i, first, last)
        raw.add(i, last, high)
    return raw, hours


def _from_runs(query: TaskRunQuery) -> Select[Any]:
    """One LATERAL subquery per stretch: each is a range scan of the expected-start-time index
    (index-only, thanks to its INCLUDE columns) feeding a small hash aggregate. Grouping all
    rows by a computed bucket instead makes Postgres misjudge the group count and sort."""
    c = task_run.c
    stretch = _Ranges.table("raw")
    per_stretch = (
        select(
            c.state_type,
            c.state_name,
            func.count().label("count_runs"),
            # Seconds, not intervals: 1,400 runs late by two millennia sum past what a Python
            # timedelta holds.
            func.extract("epoch", func.sum(estimated_run_time(_NOW))).label("run_time"),
            func.extract("epoch", func.sum(estimated_lateness(_NOW))).label("lateness"),
        )
        .where(
            c.expected_start_time >= stretch.c.lo,
            c.expected_start_time < stretch.c.hi,
            c.state_type.is_not(None),
            *task_run_where(query),
        )
        .group_by(c.state_type, c.state_name)
        .lateral("summary")
    )
    return select(stretch.c.i, per_stretch).select_from(stretch).join(per_stretch, true())


def _from_tally(criteria: list[ColumnElement[bool]], source: Any) -> Select[Any]:
    """The tally's hours per bucket, finished with the time of the query: RUNNING runs add the
    time since they entered RUNNING; runs still waiting to start add the time since they were
    expected, all of it in hours that are over, none in hours still to come, and in the
    current hour as if all were due (`_not_yet_due` takes back the part of those that are not)."""
    t = source.c
    stretch = _Ranges.table("tallied")
    at = _NOW_EPOCH
    runs = func.sum(t.runs)
    running = case(
        (t.state_type == StateType.RUNNING, runs * at - func.sum(t.running_since)), else_=0
    )
    waiting = func.sum(
        case(
            (t.hour <= _CURRENT_HOUR, t.waiting * at - t.waiting_since),
            else_=0,
        )
    )
    return (
        select(
            stretch.c.i,
            t.state_type,
            t.state_name,
            runs.label("count_runs"),
            (func.sum(t.run_time) + running).label("run_time"),
            (func.sum(t.start_delay) + waiting).label("lateness"),
        )
        .select_from(stretch)
        .join(source, and_(t.hour >= stretch.c.lo, t.hour < stretch.c.hi))
        .where(t.state_type.is_not(None), *criteria)
        .group_by(stretch.c.i, t.state_type, t.state_name)
        .having(runs != 0)
    )


def _current_hour_bucket(ranges: _Ranges, now: datetime) -> int | None:
    """The bucket whose tallied hours include the current one, if any."""
    hour = floor_hour(now)
    return next(
        (
            i
            for i, low, high in zip(ranges.bucket, ranges.lower, ranges.upper, strict=True)
            if low <= hour < high
        ),
        None,
    )


def _not_yet_due(query: TaskRunQuery) -> Select[Any]:
    """The current hour's runs that wait to start and are not due yet: `_from_tally` counted
    them late by (now - expected), a negative time; this row adds it back, so they count as
    on time, as the runs themselves would say. A short range scan from now to the hour's end,
    in the bucket `_current_hour_bucket` finds."""
    c = task_run.c
    return (
        select(
            _DUE_BUCKET.label("i"),
            c.state_type,
            c.state_name,
            literal(0, Integer).label("count_runs"),
            literal(0, Numeric).label("run_time"),
            func.extract("epoch", func.sum(c.expected_start_time - _NOW)).label("lateness"),
        )
        .where(
            c.expected_start_time >= _NOW,
            c.expected_start_time < _NEXT_HOUR,
            c.start_time.is_(None),
            c.state_type.is_not(None),
            c.state_type.not_in(TERMINAL_TYPES),
            *task_run_where(query),
        )
        .group_by(c.state_type, c.state_name)
    )


@dataclass(frozen=True, slots=True)
class _Shape:
    """Which parts a history statement has: they depend on the query and the window."""

    from_runs: bool
    from_tally: bool
    not_yet_due: bool


def _tallied(query: TaskRunQuery) -> bool:
    """Whether the tally can answer the query's whole hours, decided once per query."""
    return KEPT_STATEMENTS.get(
        "history-tallied",
        query,
        lambda: tallied_criteria(query, tally_source()) is not None,
    )


def _statement(query: TaskRunQuery, shape: _Shape) -> DriverStatement:
    """The query's statement of this shape, built on first use and kept: everything that
    changes between calls with the same query (the buckets, the time) is a parameter. Run by
    psycopg alone (see `driver_statements`)."""
    return KEPT_STATEMENTS.get(
        ("history", shape), query, lambda: DriverStatement(_build(query, shape))
    )


def _build(query: TaskRunQuery, shape: _Shape) -> Executable:
    """The parts, summed per bucket and state: a state's runs may come from several parts (the
    raw edges and the tally's hours of one bucket, the not-yet-due correction), and Postgres
    adds them up and hands back plain integers and floats, one row per state of a bucket."""
    parts: list[Select[Any]] = []
    if shape.from_runs:
        parts.append(_from_runs(query))
    if shape.from_tally:
        source = tally_source()
        criteria = tallied_criteria(query, source)
        assert criteria is not None  # only a tallied query has a shape from the tally
        parts.append(_from_tally(criteria, source))
        if shape.not_yet_due:
            parts.append(_not_yet_due(query))
    summed = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("part")
    p = summed.c
    return select(
        p.i,
        p.state_type,
        p.state_name,
        cast(func.sum(p.count_runs), BigInteger).label("count_runs"),
        cast(func.coalesce(func.sum(p.run_time), 0), Float).label("run_time"),
        cast(func.coalesce(func.sum(p.lateness), 0), Float).label("lateness"),
    ).group_by(p.i, p.state_type, p.state_name)


class _Summary(NamedTuple):
    """One state of one bucket, as the statement returns it (seconds as floats)."""

    i: int
    state_type: StateType
    state_name: str
    count_runs: int
    run_time: float
    lateness: float


async def task_run_history(
    conn: AsyncConnection,
    query: TaskRunQuery,
    *,
    start: datetime,
    end: datetime,
    interval: timedelta,
    now: datetime,
) -> list[HistoryInterval]:
    """Runs whose expected start time falls in each bucket, summarised by state.

    Buckets are [start + i*interval, start + (i+1)*interval) while they begin before `end`, as
    in the reference; every bucket is returned, empty ones included, in order. Whole hours
    come from the tally when the query filters on nothing but states and tags; the rest (and
    everything, for other filters) from the runs.
    """
    count = bucket_count(start, end, interval)
    room = LAST_INSTANT - start  # a bucket that would end past the calendar ends with it
    intervals = [
        HistoryInterval(
            interval_start=start + min(interval * i, room),
            interval_end=start + min(interval * (i + 1), room),
        )
        for i in range(count)
    ]
    if count == 0:
        return intervals
    raw, hours = _split(intervals, now, tallied=_tallied(query))
    due = _current_hour_bucket(hours, now) if hours.bucket else None
    shape = _Shape(
        from_runs=bool(raw.bucket), from_tally=bool(hours.bucket), not_yet_due=due is not None
    )
    # One statement, so that every part reads the same snapshot: the not-yet-due correction
    # must see exactly the runs the tally counted.
    statement = _statement(query, shape)
    current_hour = floor_hour(now)
    params: dict[str, object] = {
        **raw.params("raw"),
        **hours.params("tallied"),
        "now": now,
        "now_epoch": epoch(now),
        "current_hour": current_hour,
        "next_hour": current_hour + timedelta(hours=1),
        "due_bucket": due,
    }
    for summary in await statement.records(conn, params, _Summary._make):
        intervals[summary.i].states.append(
            HistoryState(
                state_type=summary.state_type,
                state_name=summary.state_name,
                count_runs=summary.count_runs,
                sum_estimated_run_time=clamped_sum(summary.run_time),
                sum_estimated_lateness=clamped_sum(summary.lateness),
            )
        )
    order = {t: i for i, t in enumerate(StateType)}
    for item in intervals:
        item.states.sort(key=lambda s: (order[s.state_type], s.state_name))
    return intervals
