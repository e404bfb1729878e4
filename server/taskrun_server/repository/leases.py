"""Queries on execution leases: renewal by heartbeat, and finding the runs the reaper takes back.

Renewals and lapse checks use the database clock (now()), as deliveries do, so every replica
agrees on when a lease has lapsed whatever its own clock says.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import Float, Interval

from taskrun_server.domain.states import StateType

_RENEW = text(
    """
    WITH asked AS (
        SELECT a.id, a.lease_id, a.ord
        FROM unnest(:ids, :lease_ids) WITH ORDINALITY AS a(id, lease_id, ord)
    ), held AS MATERIALIZED (
        SELECT t.id
        FROM task_run AS t JOIN asked AS a ON t.id = a.id AND t.lease_id = a.lease_id
        WHERE t.state_type IN ('SCHEDULED', 'PENDING', 'RUNNING', 'CANCELLING')
        ORDER BY t.id
        FOR UPDATE OF t
    ), renewed AS (
        UPDATE task_run AS t
        SET lease_renewed_at = now(), lease_expires_at = CASE
            WHEN t.state_type = 'SCHEDULED' THEN now() + :delivery_lease
            ELSE now() + make_interval(secs => NULLIF(COALESCE(
                (t.empirical_policy ->> 'heartbeat_timeout_seconds')::float8,
                :default_heartbeat_seconds), 0))
        END
        WHERE t.id IN (SELECT id FROM held)
        RETURNING t.id, t.lease_expires_at
    )
    SELECT a.id, t.state_type, r.id IS NOT NULL AS held, r.lease_expires_at,
           r.lease_expires_at - now() AS remaining
    FROM asked AS a
    LEFT JOIN renewed AS r ON r.id = a.id
    LEFT JOIN task_run AS t ON t.id = a.id
    ORDER BY a.ord
    """
).bindparams(
    bindparam("ids", type_=ARRAY(UUID(as_uuid=True))),
    bindparam("lease_ids", type_=ARRAY(UUID(as_uuid=True))),
    bindparam("delivery_lease", type_=Interval()),
    bindparam("default_heartbeat_seconds", type_=Float()),
)


@dataclass(slots=True, frozen=True)
class Renewal:
    """One lease's fate at a heartbeat."""

    task_run_id: uuid.UUID
    state_type: StateType | None
    """The run's state; None when it no longer exists."""
    held: bool
    expires_at: datetime | None
    remaining: timedelta | None


async def renew(
    conn: AsyncConnection,
    leases: Sequence[tuple[uuid.UUID, uuid.UUID]],
    *,
    delivery_lease: timedelta,
    default_heartbeat: timedelta | None,
) -> list[Renewal]:
    """Renew every (run, lease) pair whose lease the run still holds, in one statement: an
    unsettled delivery for another delivery lease, an executing run for its heartbeat timeout
    (the policy's, else `default_heartbeat`; zero or None: it never lapses).

    The runs are locked in id order (`held`, which also checks each lease and state, under the
    lock) before any is updated, as every statement that locks several runs locks them: a
    worker's heartbeat and its batched proposals over the same runs, each locking in its own
    order, had deadlocked (Postgres fails one after a second)."""
    rows = await conn.execute(
        _RENEW,
        {
            "ids": [run_id for run_id, _ in leases],
            "lease_ids": [lease_id for _, lease_id in leases],
            "delivery_lease": delivery_lease,
            "default_heartbeat_seconds": (
                default_heartbeat.total_seconds() if default_heartbeat is not None else 0.0
            ),
        },
    )
    return [
        Renewal(
            task_run_id=row.id,
            state_type=StateType(row.state_type) if row.state_type is not None else None,
            held=row.held,
            expires_at=row.lease_expires_at,
            remaining=row.remaining,
        )
        for row in rows
    ]


_LAPSED = text(
    """
    (SELECT id FROM task_run
     WHERE state_type IN ('PENDING', 'RUNNING', 'CANCELLING')
       AND lease_expires_at IS NOT NULL AND lease_expires_at <= now()
     ORDER BY lease_expires_at LIMIT :limit)
    UNION
    (SELECT id FROM task_run
     WHERE execution_deadline IS NOT NULL AND execution_deadline <= now()
     ORDER BY execution_deadline LIMIT :limit)
    """
)


async def lapsed(conn: AsyncConnection, limit: int) -> list[uuid.UUID]:
    """Runs whose execution lease lapsed or whose execution deadline passed, oldest first
    (each half served by its partial index; at most 2 x `limit`). Not locked: the reaper locks
    and re-checks each one."""
    rows = await conn.execute(_LAPSED, {"limit": limit})
    return [row.id for row in rows]


async def database_now(conn: AsyncConnection) -> datetime:
    """The database's clock, which lease expiries are measured against."""
    value: datetime = (await conn.execute(text("SELECT now()"))).scalar_one()
    return value
