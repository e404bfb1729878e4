"""Queries on the state history of task runs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from taskrun_server.database.tables import task_run, task_run_state
from taskrun_server.domain.states import State
from taskrun_server.repository.rows import state_from_row


async def read_state(conn: AsyncConnection, state_id: uuid.UUID) -> State | None:
    stmt = select(task_run_state).where(task_run_state.c.id == state_id)
    row = (await conn.execute(stmt)).mappings().one_or_none()
    return state_from_row(row) if row is not None else None


async def read_states(
    conn: AsyncConnection, task_run_id: uuid.UUID, *, offset: int = 0, limit: int | None = None
) -> list[State]:
    """A run's states, oldest first (id breaks timestamp ties, and ids are time-ordered)."""
    stmt = (
        select(task_run_state)
        .where(task_run_state.c.task_run_id == task_run_id)
        .order_by(task_run_state.c.timestamp, task_run_state.c.id)
        .offset(offset)
        .limit(limit)
    )
    return [state_from_row(row) for row in (await conn.execute(stmt)).mappings()]


@dataclass(slots=True, frozen=True)
class StateOwnership:
    """Which run a state belongs to and whether it is that run's current state."""

    task_run_id: uuid.UUID
    is_current: bool


async def lock_state_owner(conn: AsyncConnection, state_id: uuid.UUID) -> StateOwnership | None:
    """Find a state's run and lock the run row, so its current state cannot change under us."""
    stmt = (
        select(task_run.c.id, task_run.c.state_id)
        .select_from(task_run_state.join(task_run, task_run.c.id == task_run_state.c.task_run_id))
        .where(task_run_state.c.id == state_id)
        .with_for_update(of=task_run)
    )
    row = (await conn.execute(stmt)).one_or_none()
    if row is None:
        return None
    return StateOwnership(task_run_id=row.id, is_current=row.state_id == state_id)


async def delete_state(conn: AsyncConnection, state_id: uuid.UUID) -> bool:
    deleted = await conn.execute(
        delete(task_run_state).where(task_run_state.c.id == state_id).returning(task_run_state.c.id)
    )
    return deleted.first() is not None
