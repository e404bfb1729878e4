"""Queries on tag concurrency limits and their slots."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import RowMapping, bindparam, delete, literal, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from taskrun_server.database.tables import concurrency_limit
from taskrun_server.domain.concurrency_limits import ConcurrencyLimit
from taskrun_server.domain.identifiers import new_id

_c = concurrency_limit.c


def _limit(row: RowMapping) -> ConcurrencyLimit:
    return ConcurrencyLimit(
        id=row["id"],
        created=row["created"],
        updated=row["updated"],
        tag=row["tag"],
        concurrency_limit=row["concurrency_limit"],
        active_slots=list(row["active_slots"]),
    )


def _run_array(run_id: uuid.UUID) -> object:
    return literal([run_id], ARRAY(UUID(as_uuid=True)))


async def lock_limits_for_tags(
    conn: AsyncConnection, tags: Sequence[str]
) -> dict[str, ConcurrencyLimit]:
    """The limits on these tags, row-locked until commit.

    Locked in tag order, so two runs whose tags overlap always lock in the same order and
    cannot deadlock; the lock makes "is a slot free?" and "take it" one atomic step.
    """
    if not tags:
        return {}
    stmt = (
        select(concurrency_limit)
        .where(_c.tag.in_(sorted(set(tags))))
        .order_by(_c.tag)
        .with_for_update()
    )
    return {row["tag"]: _limit(row) for row in (await conn.execute(stmt)).mappings()}


async def take_slots(
    conn: AsyncConnection, tags: Sequence[str], run_id: uuid.UUID, now: datetime
) -> None:
    """Add the run to the slots of these tags' limits (callers hold their row locks)."""
    if not tags:
        return
    await conn.execute(
        update(concurrency_limit)
        .where(_c.tag.in_(list(tags)), ~_c.active_slots.contains(_run_array(run_id)))
        .values(active_slots=_c.active_slots.concat(_run_array(run_id)), updated=now)
    )


async def release_slots(conn: AsyncConnection, run_id: uuid.UUID, now: datetime) -> None:
    """Free every slot the run holds, under any limit."""
    await release_slots_of_runs(conn, [run_id], now)


async def release_slots_of_runs(
    conn: AsyncConnection, run_ids: Sequence[uuid.UUID], now: datetime
) -> None:
    """Free every slot these runs hold, under any limit: one statement for a batch. The limits
    are locked in tag order first, as `lock_limits_for_tags` locks them, so that a release and
    a transaction taking slots cannot deadlock."""
    await conn.execute(_RELEASE_SLOTS_OF_RUNS, {"ids": list(run_ids), "now": now})


_RELEASE_SLOTS_OF_RUNS = text(
    "WITH holding AS MATERIALIZED ("
    "SELECT id FROM concurrency_limit WHERE active_slots && :ids ORDER BY tag FOR UPDATE) "
    "UPDATE concurrency_limit SET updated = :now, active_slots = ARRAY("
    "SELECT slot FROM unnest(active_slots) AS slot WHERE slot <> ALL(:ids)) "
    "WHERE id IN (SELECT id FROM holding)"
).bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))


async def upsert_limit(
    conn: AsyncConnection, tag: str, limit: int, now: datetime
) -> tuple[ConcurrencyLimit, bool]:
    """Create a tag's limit or change its value, keeping the slots already taken."""
    stmt = (
        insert(concurrency_limit)
        .values(id=new_id(), created=now, updated=now, tag=tag, concurrency_limit=limit)
        .on_conflict_do_update(
            index_elements=[_c.tag], set_={"concurrency_limit": limit, "updated": now}
        )
        .returning(*concurrency_limit.c, (_c.created == now).label("inserted"))
    )
    row = (await conn.execute(stmt)).mappings().one()
    return _limit(row), bool(row["inserted"])


async def read_limit(conn: AsyncConnection, tag: str) -> ConcurrencyLimit | None:
    row = (
        (await conn.execute(select(concurrency_limit).where(_c.tag == tag)))
        .mappings()
        .one_or_none()
    )
    return _limit(row) if row is not None else None


async def read_limits(conn: AsyncConnection, *, limit: int, offset: int) -> list[ConcurrencyLimit]:
    stmt = select(concurrency_limit).order_by(_c.tag).limit(limit).offset(offset)
    return [_limit(row) for row in (await conn.execute(stmt)).mappings()]


async def reset_limit(conn: AsyncConnection, tag: str, now: datetime) -> ConcurrencyLimit | None:
    stmt = (
        update(concurrency_limit)
        .where(_c.tag == tag)
        .values(active_slots=[], updated=now)
        .returning(*concurrency_limit.c)
    )
    row = (await conn.execute(stmt)).mappings().one_or_none()
    return _limit(row) if row is not None else None


async def delete_limit(conn: AsyncConnection, tag: str) -> bool:
    stmt = delete(concurrency_limit).where(_c.tag == tag).returning(_c.id)
    return (await conn.execute(stmt)).first() is not None
