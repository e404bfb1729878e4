"""Queries for delivering scheduled background task runs to subscribers, under leases.

Lease times come from the database clock (now()), so that every server replica agrees on when
a lease has ended whatever its own clock says.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import Integer, Interval, Text

from taskrun_server.database.tables import task_run, task_run_state
from taskrun_server.domain.states import StateType
from taskrun_server.domain.task_runs import RunLease, TaskRun
from taskrun_server.repository.driver_statements import DriverStatement
from taskrun_server.repository.rows import state_columns_labelled, task_run_from_row

_c = task_run.c


@dataclass(slots=True, frozen=True)
class Delivery:
    """A delivered run. The terms of its lease are the run's own, as the claim left them."""

    run: TaskRun

    @property
    def lease(self) -> RunLease:
        assert self.run.lease is not None, "a claimed run holds a lease"
        return self.run.lease

    @property
    def lease_id(self) -> uuid.UUID:
        return self.lease.id

    @property
    def expires(self) -> datetime:
        assert self.lease.expires_at is not None, "a delivery lease always lapses"
        return self.lease.expires_at

    @property
    def delivery_count(self) -> int:
        return self.run.delivery_count


def _scheduled_in_background() -> list[ColumnElement[bool]]:
    """Background runs waiting in SCHEDULED: the partial index's predicate, less its key."""
    return [_c.flow_run_id.is_(None), _c.state_type == StateType.SCHEDULED]


def _deliverable(keys: ColumnElement[Any]) -> list[ColumnElement[bool]]:
    """Background runs of these keys (a text array: a literal, or a parameter of a kept
    statement) waiting in SCHEDULED (the partial index's predicate)."""
    return [*_scheduled_in_background(), _c.task_key == func.any(keys)]


def _due_and_free() -> list[ColumnElement[bool]]:
    """Due now, and leased to no one or under a lease that has lapsed: what a claim may take."""
    return [
        _c.next_scheduled_start_time <= func.now(),
        or_(_c.lease_expires_at.is_(None), _c.lease_expires_at <= func.now()),
    ]


@dataclass(slots=True, frozen=True)
class Held:
    """A subscriber's unsettled deliveries: under a live lease, or lapsed while it held them."""

    live: int
    lapsed: int


async def held(conn: AsyncConnection, owner: str) -> Held:
    """Count `owner`'s unsettled deliveries. A lapsed one means the subscriber did not settle,
    or renew, what it was sent: it is not reading its stream, or is stuck."""
    live = _c.lease_expires_at > func.now()
    stmt = select(func.count().filter(live), func.count().filter(~live)).where(
        _c.lease_owner == owner, _c.state_type == StateType.SCHEDULED
    )
    row = (await conn.execute(stmt)).one()
    return Held(live=int(row[0]), lapsed=int(row[1]))


def _build_claim() -> Select[Any]:
    """Lease up to `limit` due runs of `keys` to `owner`, and return them as updated, joined to
    their current states: one round trip. Built once (`_CLAIM`), run with new parameters.

    SKIP LOCKED means concurrent claimers (and SetTaskRunState, which locks the run) never
    wait for each other and never take the same run.
    """
    candidates = (
        select(_c.id)
        .where(
            *_deliverable(bindparam("keys", type_=ARRAY(Text))),
            *_due_and_free(),
        )
        .order_by(_c.next_scheduled_start_time)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True)
        # MATERIALIZED: evaluated exactly once, so the LIMIT holds whatever plan is chosen.
        .cte("candidates")
        .prefix_with("MATERIALIZED")
    )
    claimed = (
        update(task_run)
        .where(_c.id.in_(select(candidates.c.id)))
        .values(
            lease_owner=bindparam("owner", type_=Text),
            lease_expires_at=func.now() + bindparam("lease", type_=Interval),
            lease_renewed_at=func.now(),
            delivery_count=_c.delivery_count + 1,
            # A new fencing token per delivery: whoever held the run before is refused.
            lease_id=func.gen_random_uuid(),
        )
        .returning(*task_run.c)
        .cte("claimed")
    )
    return select(claimed, *state_columns_labelled).select_from(
        claimed.outerjoin(task_run_state, task_run_state.c.id == claimed.c.state_id)
    )


_CLAIM = DriverStatement(_build_claim())
"""Run by psycopg alone (see `driver_statements`): a claim returns up to a prefetch of runs of
40 columns each, which SQLAlchemy's result processing had handled row by row."""


async def claim(
    conn: AsyncConnection,
    *,
    owner: str,
    keys: Sequence[str],
    limit: int,
    lease: timedelta,
) -> list[Delivery]:
    """Lease up to `limit` due runs to `owner`, earliest due first."""
    rows = await _CLAIM.rows(
        conn, {"owner": owner, "keys": list(keys), "limit": limit, "lease": lease}
    )
    deliveries = [Delivery(task_run_from_row(row)) for row in rows]
    deliveries.sort(key=lambda d: d.run.next_scheduled_start_time or d.expires)
    return deliveries


async def seconds_until_due(conn: AsyncConnection, keys: Sequence[str]) -> float | None:
    """Seconds until the next run of these keys becomes due or its lease ends, if any waits."""
    next_due = func.min(
        func.greatest(
            _c.next_scheduled_start_time,
            func.coalesce(_c.lease_expires_at, _c.next_scheduled_start_time),
        )
    )
    stmt = select(func.extract("epoch", next_due - func.now())).where(
        *_deliverable(literal(list(keys), ARRAY(Text)))
    )
    value = (await conn.execute(stmt)).scalar_one()
    return float(value) if value is not None else None


async def due_keys(conn: AsyncConnection, keys: Sequence[str]) -> list[str]:
    """Which of these keys have a run due now and free to claim: one query for a replica's
    shared delivery timer, however many subscribers wait on the keys."""
    wanted = (
        func.unnest(literal(list(keys), ARRAY(Text)))
        .table_valued("k")
        .render_derived(name="wanted")
    )
    has_due = (
        select(literal(1))
        .where(
            *_scheduled_in_background(),
            _c.task_key == wanted.c.k,
            *_due_and_free(),
        )
        .exists()
    )
    stmt = select(wanted.c.k).where(has_due)
    return [row.k for row in await conn.execute(stmt)]


async def release(conn: AsyncConnection, owner: str) -> int:
    """End every lease `owner` holds on runs still SCHEDULED, so others get them now.

    The runs are locked in id order first, as every statement that locks several runs locks
    them: the subscriber may be settling the same runs in a batch as its stream ends."""
    held = (
        select(_c.id)
        .where(_c.lease_owner == owner, _c.state_type == StateType.SCHEDULED)
        .order_by(_c.id)
        .with_for_update()
        .cte("held")
        .prefix_with("MATERIALIZED")
    )
    stmt = (
        update(task_run)
        .where(_c.id.in_(select(held.c.id)))  # held checked owner and state under the lock
        .values(lease_owner=None, lease_expires_at=None, lease_id=None, lease_renewed_at=None)
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
