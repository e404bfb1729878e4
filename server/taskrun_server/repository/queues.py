"""Queries for the queue overview: per task key, and per lease holder. Each is served by a
partial index (deliverable runs, lease owners) or the start-time index."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import Interval

from taskrun_server.domain.queues import LeaseHolder, TaskKeyQueue

_BY_KEY = text(
    """
    WITH waiting AS (
        SELECT task_key,
            count(*) FILTER (WHERE NOT leased) AS queued,
            count(*) FILTER (WHERE leased) AS leased,
            min(next_scheduled_start_time) FILTER (
                WHERE NOT leased AND next_scheduled_start_time <= now()) AS oldest_due,
            min(next_scheduled_start_time) FILTER (
                WHERE NOT leased AND next_scheduled_start_time > now()) AS next_due
        FROM (SELECT task_key, next_scheduled_start_time,
                     coalesce(lease_expires_at > now(), false) AS leased
              FROM task_run WHERE flow_run_id IS NULL AND state_type = 'SCHEDULED') AS s
        GROUP BY task_key
    ), running AS (
        SELECT task_key, count(*) AS running FROM task_run
        WHERE flow_run_id IS NULL AND state_type = 'RUNNING' GROUP BY task_key
    ), started AS (
        SELECT task_key, count(*) AS started FROM task_run
        WHERE flow_run_id IS NULL AND start_time >= now() - :recent GROUP BY task_key
    )
    SELECT k.task_key,
        coalesce(w.queued, 0) AS queued, coalesce(w.leased, 0) AS leased,
        coalesce(r.running, 0) AS running, w.oldest_due, w.next_due,
        coalesce(s.started, 0) AS started
    FROM (SELECT task_key FROM waiting UNION SELECT task_key FROM running
          UNION SELECT task_key FROM started) AS k
    LEFT JOIN waiting AS w USING (task_key)
    LEFT JOIN running AS r USING (task_key)
    LEFT JOIN started AS s USING (task_key)
    ORDER BY coalesce(w.queued, 0) DESC, k.task_key
    LIMIT :limit
    """
).bindparams(bindparam("recent", type_=Interval()))

_HOLDERS = text(
    """
    SELECT lease_owner, count(*) AS held, array_agg(DISTINCT task_key) AS task_keys,
           max(lease_renewed_at) AS last_heartbeat
    FROM task_run
    WHERE lease_owner IS NOT NULL
      AND state_type IN ('SCHEDULED', 'PENDING', 'RUNNING', 'CANCELLING')
    GROUP BY lease_owner
    ORDER BY held DESC, lease_owner
    LIMIT :limit
    """
)


async def queues_by_task_key(
    conn: AsyncConnection, *, recent: timedelta, limit: int = 200
) -> list[TaskKeyQueue]:
    rows = await conn.execute(_BY_KEY, {"recent": recent, "limit": limit})
    return [
        TaskKeyQueue(
            task_key=row.task_key,
            queued=row.queued,
            leased=row.leased,
            running=row.running,
            oldest_due=row.oldest_due,
            next_due=row.next_due,
            started_recently=row.started,
        )
        for row in rows
    ]


async def lease_holders(conn: AsyncConnection, *, limit: int = 200) -> list[LeaseHolder]:
    rows = await conn.execute(_HOLDERS, {"limit": limit})
    return [
        LeaseHolder(
            owner=row.lease_owner,
            held=row.held,
            task_keys=tuple(sorted(row.task_keys)),
            last_heartbeat=row.last_heartbeat,
        )
        for row in rows
    ]
