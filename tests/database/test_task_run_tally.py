"""The task-run tally answers counts and history exactly as the runs themselves do, before and
after compaction, whatever was created, changed or deleted meanwhile."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from taskrun.v1 import state_pb2 as T
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_server.domain.filters import (
    IdFilter,
    Operator,
    StateFilter,
    TagsFilter,
    TaskRunFilter,
    TaskRunQuery,
    TimeFilter,
)
from taskrun_server.domain.history import HistoryInterval
from taskrun_server.domain.states import StateType
from taskrun_server.repository.history import _split, task_run_history
from taskrun_server.repository.task_runs import count_task_runs, count_task_runs_by_state
from taskrun_server.server import RunningServer
from tests.factories import TaskRunStub, hours, propose, scheduled, state

NOBODY = IdFilter(not_any=[uuid.UUID(int=0)])
"""A criterion only the runs can answer, true of every run: it sends a query past the tally."""

QUERIES = {
    "all": TaskRunFilter(),
    "completed": TaskRunFilter(state=StateFilter(type_any=[StateType.COMPLETED])),
    "team a": TaskRunFilter(tags=TagsFilter(all=["team-a"])),
    "untagged": TaskRunFilter(tags=TagsFilter(is_null=True)),
    "failed or scheduled, team b": TaskRunFilter(
        tags=TagsFilter(all=["team-b"]),
        state=StateFilter(
            operator=Operator.OR,
            type_any=[StateType.FAILED],
            name_any=["Scheduled"],
        ),
    ),
    "not completed": TaskRunFilter(state=StateFilter(type_not_any=[StateType.COMPLETED])),
}


def tallied(f: TaskRunFilter) -> TaskRunQuery:
    return TaskRunQuery(task_runs=f)


def from_runs(f: TaskRunFilter) -> TaskRunQuery:
    return TaskRunQuery(task_runs=dataclasses.replace(f, id=NOBODY))


def windowed(f: TaskRunFilter, after: datetime | None, before: datetime | None) -> TaskRunFilter:
    return dataclasses.replace(f, expected_start_time=TimeFilter(after=after, before=before))


@pytest.fixture
async def past(task_runs: TaskRunStub) -> AsyncIterator[datetime]:
    """Runs expected over the last six hours, in every kind of state, some tagged, one deleted
    and one renamed; yields the hour the first was expected in."""
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - hours(6)
    requests = []
    for i in range(60):
        expected = base + timedelta(minutes=6 * i + 1, seconds=i)
        tags = [["team-a"], ["team-b", "env-x"], []][i % 3]
        requests.append(
            pb.CreateTaskRunRequest(
                task_key="tally", dynamic_key=str(i), tags=tags, state=scheduled(expected)
            )
        )
    created = await task_runs.BatchCreateTaskRuns(pb.BatchCreateTaskRunsRequest(requests=requests))
    runs = [r.task_run for r in created.responses]
    for i, run in enumerate(runs):
        if i % 5 in (1, 2, 3):
            await propose(task_runs, run.id, state(T.STATE_TYPE_RUNNING))
        if i % 5 == 2:
            await propose(task_runs, run.id, state(T.STATE_TYPE_COMPLETED))
        if i % 5 == 3:
            await propose(task_runs, run.id, state(T.STATE_TYPE_FAILED))
        if i % 5 == 4 and i % 2:
            await propose(task_runs, run.id, state(T.STATE_TYPE_PENDING))
    await task_runs.DeleteTaskRun(pb.DeleteTaskRunRequest(task_run_id=runs[7].id))
    await task_runs.UpdateTaskRun(pb.UpdateTaskRunRequest(task_run_id=runs[8].id, name="renamed"))
    await around_now(task_runs)
    yield base


async def around_now(task_runs: TaskRunStub) -> None:
    """Runs expected in the current hour, due and not yet due, and in the hours to come:
    waiting ones are late only once due."""
    now = datetime.now(UTC)
    offsets = [-20, -3, 0.5, 2, 10, 25, 55, 90, 200]  # minutes
    for i, minutes in enumerate(offsets):
        created = await task_runs.CreateTaskRun(
            pb.CreateTaskRunRequest(
                task_key="tally-now",
                dynamic_key=str(i),
                tags=[["team-a"], ["team-b", "env-x"], []][i % 3],
                state=scheduled(now + timedelta(minutes=minutes)),
            )
        )
        if i % 4 == 1:
            await propose(task_runs, created.task_run.id, state(T.STATE_TYPE_RUNNING))
        if i % 4 == 2:
            await propose(task_runs, created.task_run.id, state(T.STATE_TYPE_PENDING))


def summary(intervals: list[HistoryInterval]) -> list[list[tuple[object, ...]]]:
    return [
        [
            (
                s.state_type,
                s.state_name,
                s.count_runs,
                s.sum_estimated_run_time,
                s.sum_estimated_lateness,
            )
            for s in interval.states
        ]
        for interval in intervals
    ]


async def compare(server: RunningServer, base: datetime) -> None:
    now = datetime.now(UTC)
    windows = [
        (base, base + hours(7), timedelta(hours=1)),  # whole hours: the tally answers
        (base - timedelta(minutes=17), base + hours(7), timedelta(minutes=37)),  # ragged
        (base, base + hours(6), timedelta(hours=3)),
        (base + hours(4), base + hours(11), timedelta(hours=2)),  # now, and hours to come
        (base, base + hours(12), timedelta(hours=12)),
    ]
    ragged = base + timedelta(minutes=17, seconds=3)
    bounds = [
        (ragged, base + hours(4) + timedelta(minutes=5)),
        (ragged, None),
        (None, ragged + hours(3)),
    ]
    async with server.engine.connect() as conn:
        for name, f in QUERIES.items():
            for after, before in [(None, None), *bounds]:
                g = f if after is None and before is None else windowed(f, after, before)
                by_tally = await count_task_runs(conn, tallied(g))
                by_runs = await count_task_runs(conn, from_runs(g))
                assert by_tally == by_runs, (name, after, before)
                states_by_tally = await count_task_runs_by_state(conn, tallied(g))
                states_by_runs = await count_task_runs_by_state(conn, from_runs(g))
                assert states_by_tally == states_by_runs, (name, after, before)
                assert sum(states_by_runs.values()) == by_runs
            for start, end, interval in windows:
                a = await task_run_history(
                    conn, tallied(f), start=start, end=end, interval=interval, now=now
                )
                b = await task_run_history(
                    conn, from_runs(f), start=start, end=end, interval=interval, now=now
                )
                assert summary(a) == summary(b), (name, interval)


async def test_the_tally_answers_as_the_runs_do_before_compaction(
    fresh_server: RunningServer, past: datetime
) -> None:
    await compare(fresh_server, past)


async def test_the_tally_answers_as_the_runs_do_after_compaction(
    fresh_server: RunningServer, past: datetime
) -> None:
    assert await fresh_server.compactor.compact()
    async with fresh_server.engine.connect() as conn:
        pending = await conn.execute(text("SELECT count(*) FROM task_run_tally_delta"))
        assert pending.scalar_one() == 0
        empty = await conn.execute(text("SELECT count(*) FROM task_run_tally WHERE runs = 0"))
        assert empty.scalar_one() == 0
    await compare(fresh_server, past)


async def test_changes_after_compaction_are_counted_on_top(
    fresh_server: RunningServer, task_runs: TaskRunStub, past: datetime
) -> None:
    assert await fresh_server.compactor.compact()
    extra = await task_runs.CreateTaskRun(
        pb.CreateTaskRunRequest(
            task_key="tally",
            dynamic_key=str(uuid.uuid4()),
            tags=["team-a"],
            state=scheduled(past + timedelta(minutes=30)),
        )
    )
    await propose(task_runs, extra.task_run.id, state(T.STATE_TYPE_RUNNING))
    await compare(fresh_server, past)


def test_whole_hours_go_to_the_tally_and_the_partial_ones_to_the_runs() -> None:
    start = datetime(2026, 1, 1, 9, 20, tzinfo=UTC)
    now = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    buckets = [
        HistoryInterval(interval_start=start, interval_end=start + timedelta(hours=2)),
        HistoryInterval(
            interval_start=start + timedelta(hours=2), interval_end=start + timedelta(hours=4)
        ),
    ]
    raw, tally = _split(buckets, now, tallied=True)
    # The current hour (12:00-13:00) is whole inside the second bucket: the tally answers it.
    assert list(zip(tally.bucket, tally.lower, tally.upper, strict=True)) == [
        (0, datetime(2026, 1, 1, 10, tzinfo=UTC), datetime(2026, 1, 1, 11, tzinfo=UTC)),
        (1, datetime(2026, 1, 1, 12, tzinfo=UTC), datetime(2026, 1, 1, 13, tzinfo=UTC)),
    ]
    assert list(zip(raw.bucket, raw.lower, raw.upper, strict=True)) == [
        (0, start, datetime(2026, 1, 1, 10, tzinfo=UTC)),
        (0, datetime(2026, 1, 1, 11, tzinfo=UTC), start + timedelta(hours=2)),
        (1, start + timedelta(hours=2), datetime(2026, 1, 1, 12, tzinfo=UTC)),
        (1, datetime(2026, 1, 1, 13, tzinfo=UTC), start + timedelta(hours=4)),
    ]
    raw, tally = _split(buckets, now, tallied=False)
    assert tally.bucket == [] and raw.bucket == [0, 1]
