"""The task-run tally (migration 0005): which queries it can answer, and its compaction.

The database keeps it: a trigger appends every change to task_run_tally_delta, and `compact`
folds those deltas into task_run_tally. A reader adds both, so what it reads is exact whenever
it reads it, compacted or not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Subquery, func, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from taskrun_server.database.tables import task_run_tally, task_run_tally_delta
from taskrun_server.domain.filters import TaskRunQuery
from taskrun_server.repository.filters import tallied_criteria


def tally_source() -> Subquery:
    """The tally and its pending deltas as one relation, `t`: sum it, never read it row by
    row (a key may appear several times)."""
    return union_all(select(task_run_tally), select(task_run_tally_delta)).subquery("t")


async def count_from_tally(conn: AsyncConnection, query: TaskRunQuery) -> int | None:
    """How many runs match, from the tally; None when the tally cannot tell."""
    source = tally_source()
    criteria = tallied_criteria(query, source)
    if criteria is None:
        return None
    stmt = select(func.coalesce(func.sum(source.c.runs), 0)).where(*criteria)
    return int((await conn.execute(stmt)).scalar_one())


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
