"""The task-run state cache: COMPLETED states remembered by cache key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from taskrun_server.database.tables import task_run_state, task_run_state_cache
from taskrun_server.domain.identifiers import new_id
from taskrun_server.domain.states import State
from taskrun_server.repository.rows import state_from_row

_cache = task_run_state_cache.c


async def read_cached_state(conn: AsyncConnection, cache_key: str, now: datetime) -> State | None:
    """The newest unexpired state stored under this key (its run may since have been deleted,
    in which case the cascade removed the entry too)."""
    stmt = (
        select(task_run_state)
        .join(task_run_state_cache, _cache.task_run_state_id == task_run_state.c.id)
        .where(
            _cache.cache_key == cache_key,
            or_(_cache.cache_expiration.is_(None), _cache.cache_expiration > now),
        )
        .order_by(_cache.created.desc())
        .limit(1)
    )
    row = (await conn.execute(stmt)).mappings().one_or_none()
    return state_from_row(row) if row is not None else None


async def insert_cache_entry(conn: AsyncConnection, state: State, now: datetime) -> None:
    details = state.state_details
    assert details.cache_key is not None
    await conn.execute(
        insert(task_run_state_cache).values(
            id=new_id(),
            created=now,
            cache_key=details.cache_key,
            cache_expiration=details.cache_expiration,
            task_run_state_id=state.id,
        )
    )
