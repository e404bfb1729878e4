"""Queries for delivering scheduled background task runs to subscribers, under leases.

Lease times come from the database clock (now()), so that every server replica agrees on when
a lease has ended whatever its own clock says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import Interval, Text

from taskrun_server.database.tables import task_run
from taskrun_server.domain.states import StateType
from taskrun_server.domain.task_runs import TaskRun
from taskrun_server.repository.rows import task_run_from_row
from taskrun_server.repository.task_runs import select_task_runs

_c = task_run.c


@dataclass(slots=True, frozen=True)
class Lease:
    """A delivered run and the terms of its lease."""

    run: TaskRun
    delivery_count: int
    expires: datetime


def _deliverable(keys: Sequence[str]) -> list[object]:
    """Background runs of these keys waiting in SCHEDULED (the partial index's predicate)."""
    return [
        _c.flow_run_id.is_(None),
        _c.state_type == StateType.SCHEDULED,
        _c.task_key == func.any(literal(list(keys), ARRAY(Text))),
    ]


async def held(conn: AsyncConnection, owner: str) -> int:
    """How many unsettled, unexpired leases `owner` holds."""
    stmt = select(func.count()).where(
        _c.lease_owner == owner,
        _c.state_type == StateType.SCHEDULED,
        _c.lease_expires_at > func.now(),
    )
    return int((await conn.execute(stmt)).scalar_one())


async def claim(
    conn: AsyncConnection,
    *,
    owner: str,
    keys: Sequence[str],
    limit: int,
    lease: timedelta,
) -> list[Lease]:
    """Lease up to `limit` due runs to `owner`, earliest due first.

    SKIP LOCKED means concurrent claimers (and SetTaskRunState, which locks the run) never
    wait for each other and never take the same run.
    """
    candidates = (
        select(_c.id)
        .where(
            *_deliverable(keys),  # type: ignore[arg-type]
            _c.next_scheduled_start_time <= func.now(),
            or_(_c.lease_expires_at.is_(None), _c.lease_expires_at <= func.now()),
        )
        .order_by(_c.next_scheduled_start_time)
        .limit(limit)
        .with_for_update(skip_locked=True)
        # MATERIALIZED: evaluated exactly once, so the LIMIT holds whatever plan is chosen.
        .cte("candidates")
        .prefix_with("MATERIALIZED")
    )
    claimed = (
        update(task_run)
        .where(_c.id.in_(select(candidates.c.id)))
        .values(
            lease_owner=owner,
            lease_expires_at=func.now() + literal(lease, Interval),
            delivery_count=_c.delivery_count + 1,
        )
        .returning(_c.id, _c.delivery_count, _c.lease_expires_at)
    )
    terms = {row.id: row for row in await conn.execute(claimed)}
    if not terms:
        return []
    runs = await conn.execute(select_task_runs().where(_c.id.in_(list(terms))))
    leases = [
        Lease(
            run=task_run_from_row(row),
            delivery_count=terms[row["id"]].delivery_count,
            expires=terms[row["id"]].lease_expires_at,
        )
        for row in runs.mappings()
    ]
    leases.sort(key=lambda lease: lease.run.next_scheduled_start_time or lease.expires)
    return leases


async def seconds_until_due(conn: AsyncConnection, keys: Sequence[str]) -> float | None:
    """Seconds until the next run of these keys becomes due or its lease ends, if any waits."""
    next_due = func.min(
        func.greatest(
            _c.next_scheduled_start_time,
            func.coalesce(_c.lease_expires_at, _c.next_scheduled_start_time),
        )
    )
    stmt = select(func.extract("epoch", next_due - func.now())).where(*_deliverable(keys))  # type: ignore[arg-type]
    value = (await conn.execute(stmt)).scalar_one()
    return float(value) if value is not None else None


async def release(conn: AsyncConnection, owner: str) -> int:
    """End every lease `owner` holds on runs still SCHEDULED, so others get them now."""
    stmt = (
        update(task_run)
        .where(_c.lease_owner == owner, _c.state_type == StateType.SCHEDULED)
        .values(lease_owner=None, lease_expires_at=None)
        .returning(_c.id)
    )
    return len((await conn.execute(stmt)).all())


@dataclass(slots=True, frozen=True)
class Backlog:
    """Background runs waiting in SCHEDULED: free to claim (queued) or under a live lease."""

    queued: int
    leased: int


async def backlog(conn: AsyncConnection) -> Backlog:
    """Count SCHEDULED background runs by lease, for the metrics gauges (all task keys)."""
    live = _c.lease_expires_at > func.now()
    stmt = select(
        func.count().filter(or_(_c.lease_expires_at.is_(None), ~live)),
        func.count().filter(live),
    ).where(_c.flow_run_id.is_(None), _c.state_type == StateType.SCHEDULED)
    queued, leased = (await conn.execute(stmt)).one()
    return Backlog(queued=int(queued), leased=int(leased))
