"""Queries on flows and deployments, the parents of flow runs."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from taskrun_server.database.tables import deployment, flow
from taskrun_server.domain.resources import Deployment, Flow


async def insert_flow(conn: AsyncConnection, new: Flow) -> tuple[Flow, bool]:
    """Insert a flow unless one has its name; return the stored flow and whether it is new."""
    stmt = (
        insert(flow)
        .values(id=new.id, created=new.created, updated=new.updated, name=new.name, tags=new.tags)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(flow.c.id)
    )
    created = (await conn.execute(stmt)).first() is not None
    row = (await conn.execute(select(flow).where(flow.c.name == new.name))).mappings().one()
    return Flow(**row), created


async def read_flow(conn: AsyncConnection, flow_id: uuid.UUID) -> Flow | None:
    row = (await conn.execute(select(flow).where(flow.c.id == flow_id))).mappings().one_or_none()
    return Flow(**row) if row is not None else None


async def insert_deployment(conn: AsyncConnection, new: Deployment) -> tuple[Deployment, bool]:
    """Insert a deployment unless its flow has one of that name."""
    stmt = (
        insert(deployment)
        .values(
            id=new.id,
            created=new.created,
            updated=new.updated,
            name=new.name,
            flow_id=new.flow_id,
            tags=new.tags,
        )
        .on_conflict_do_nothing(index_elements=["flow_id", "name"])
        .returning(deployment.c.id)
    )
    created = (await conn.execute(stmt)).first() is not None
    existing = select(deployment).where(
        deployment.c.flow_id == new.flow_id, deployment.c.name == new.name
    )
    row = (await conn.execute(existing)).mappings().one()
    return Deployment(**row), created


async def read_deployment(conn: AsyncConnection, deployment_id: uuid.UUID) -> Deployment | None:
    stmt = select(deployment).where(deployment.c.id == deployment_id)
    row = (await conn.execute(stmt)).mappings().one_or_none()
    return Deployment(**row) if row is not None else None
