"""Queries on logs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from taskrun_server.database.tables import log
from taskrun_server.domain.identifiers import new_id
from taskrun_server.domain.resources import Log, LogCreate


async def insert_logs(conn: AsyncConnection, logs: Sequence[LogCreate], now: datetime) -> int:
    if not logs:
        return 0
    rows = [
        {
            "id": new_id(),
            "created": now,
            "name": item.name,
            "level": item.level,
            "message": item.message,
            "timestamp": item.timestamp,
            "flow_run_id": item.flow_run_id,
            "task_run_id": item.task_run_id,
        }
        for item in logs
    ]
    await conn.execute(insert(log), rows)
    return len(rows)


async def read_logs(
    conn: AsyncConnection,
    *,
    task_run_id: uuid.UUID | None,
    flow_run_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> list[Log]:
    stmt = select(log).order_by(log.c.timestamp, log.c.id).limit(limit).offset(offset)
    if task_run_id is not None:
        stmt = stmt.where(log.c.task_run_id == task_run_id)
    if flow_run_id is not None:
        stmt = stmt.where(log.c.flow_run_id == flow_run_id)
    return [Log(**row) for row in (await conn.execute(stmt)).mappings()]
