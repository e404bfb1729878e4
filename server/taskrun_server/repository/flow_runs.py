"""Queries on flow runs."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from taskrun_server.database.tables import flow_run
from taskrun_server.domain.resources import FlowRun
from taskrun_server.domain.states import StateType


async def insert_flow_run(conn: AsyncConnection, new: FlowRun) -> None:
    await conn.execute(
        insert(flow_run).values(
            id=new.id,
            created=new.created,
            updated=new.updated,
            name=new.name,
            flow_id=new.flow_id,
            deployment_id=new.deployment_id,
            parent_task_run_id=new.parent_task_run_id,
            tags=new.tags,
            state_type=new.state_type,
            state_name=new.state_name,
            state_timestamp=new.state_timestamp,
            run_count=new.run_count,
        )
    )


async def read_flow_run(conn: AsyncConnection, flow_run_id: uuid.UUID) -> FlowRun | None:
    stmt = select(flow_run).where(flow_run.c.id == flow_run_id)
    row = (await conn.execute(stmt)).mappings().one_or_none()
    return FlowRun(**row) if row is not None else None


async def read_flow_runs(
    conn: AsyncConnection, flow_run_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, FlowRun]:
    """The flow runs of these ids that exist, by id."""
    stmt = select(flow_run).where(flow_run.c.id.in_(list(flow_run_ids)))
    return {row["id"]: FlowRun(**row) for row in (await conn.execute(stmt)).mappings()}


async def set_flow_run_state(
    conn: AsyncConnection, flow_run_id: uuid.UUID, state_type: StateType, name: str, now: datetime
) -> FlowRun | None:
    stmt = (
        update(flow_run)
        .where(flow_run.c.id == flow_run_id)
        .values(
            state_type=state_type,
            state_name=name,
            state_timestamp=now,
            updated=now,
            # Entering RUNNING starts another attempt of the flow run; task runs record it.
            run_count=flow_run.c.run_count + (1 if state_type is StateType.RUNNING else 0),
        )
        .returning(*flow_run.c)
    )
    row = (await conn.execute(stmt)).mappings().one_or_none()
    return FlowRun(**row) if row is not None else None


async def missing_flow_runs(
    conn: AsyncConnection, flow_run_ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of these flow runs do not exist."""
    if not flow_run_ids:
        return set()
    found = await conn.execute(select(flow_run.c.id).where(flow_run.c.id.in_(flow_run_ids)))
    return set(flow_run_ids) - {row[0] for row in found}
