"""Statements that lock several rows lock them in one order: runs by id, as `lock_task_runs`
does, and tag limits by tag, as `lock_limits_for_tags` does. Two statements locking overlapping
rows in different orders can deadlock (Postgres then fails one of them after a second). Each
test holds one row locked from outside and looks at which rows the statement had locked by the
time it waited for that one."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy import text

from devtools.scratch_database import libpq_url
from taskrun_server.repository import concurrency_limits as limits_repo
from taskrun_server.repository import delivery as delivery_repo
from taskrun_server.repository import leases as leases_repo
from taskrun_server.server import RunningServer
from tests.factories import TaskRunStub, create_run

OWNER = "lock-order-test"


async def leased_runs(task_runs: TaskRunStub, server: RunningServer, count: int) -> list[str]:
    """Scheduled runs leased to OWNER, created (so stored) in descending id order: the order a
    statement that followed the table would lock them in. Their ids, ascending."""
    ids = sorted((str(uuid.uuid4()) for _ in range(count)), reverse=True)
    for run_id in ids:
        await create_run(task_runs, id=run_id, task_key=f"lock-order-{uuid.uuid4().hex[:6]}")
    async with server.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE task_run SET state_type = 'SCHEDULED', lease_owner = :owner, "
                "lease_id = gen_random_uuid(), lease_expires_at = now() + interval '1 hour' "
                "WHERE id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"owner": OWNER, "ids": ids},
        )
    return sorted(ids, key=uuid.UUID)


def locked_by_others(database_url: str, table: str, column: str, keys: list[str]) -> list[str]:
    """Which of these rows (by `column`) some other transaction holds locked now."""
    held = []
    query = f"SELECT 1 FROM {table} WHERE {column} = %s FOR UPDATE NOWAIT"
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        for key in keys:
            try:
                with conn.transaction():
                    conn.execute(query, [key])
            except psycopg.errors.LockNotAvailable:
                held.append(key)
    return held


def wait_until_someone_waits_for_a_lock(database_url: str) -> None:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        for _ in range(100):  # 10 s at most
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            if waiting and waiting[0]:
                return
            time.sleep(0.1)
    raise AssertionError("the statement never waited for the held run")


async def locks_up_to_the_held_row(
    database_url: str,
    statement: Callable[[], Awaitable[object]],
    keys: list[str],
    table: str = "task_run",
    column: str = "id",
) -> list[str]:
    """Hold the middle row of `keys` locked, run `statement` until it waits for it, and say
    which of the other rows it had locked by then; then let it finish."""
    middle = keys[len(keys) // 2]
    with psycopg.connect(libpq_url(database_url)) as holder:
        holder.execute(f"SELECT 1 FROM {table} WHERE {column} = %s FOR UPDATE", [middle])
        running = asyncio.ensure_future(statement())
        await asyncio.to_thread(wait_until_someone_waits_for_a_lock, database_url)
        assert not running.done(), "the statement should be waiting for the held row"
        others = [k for k in keys if k != middle]
        locked = await asyncio.to_thread(locked_by_others, database_url, table, column, others)
        holder.rollback()
    await running
    return locked


async def test_releasing_a_subscribers_runs_locks_them_in_id_order(
    task_runs: TaskRunStub, server: RunningServer, database_url: str
) -> None:
    ids = await leased_runs(task_runs, server, 9)

    async def release() -> int:
        async with server.engine.begin() as conn:
            return await delivery_repo.release(conn, OWNER)

    locked = await locks_up_to_the_held_row(database_url, release, ids)
    assert locked == ids[: len(ids) // 2]  # every run before the held one, none after it


async def test_renewing_leases_locks_the_runs_in_id_order(
    task_runs: TaskRunStub, server: RunningServer, database_url: str
) -> None:
    ids = await leased_runs(task_runs, server, 9)
    async with server.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT id::text, lease_id FROM task_run WHERE id = ANY(CAST(:ids AS uuid[]))"),
            {"ids": ids},
        )
        lease_of = {run_id: lease_id for run_id, lease_id in rows}
    backwards = [(uuid.UUID(i), lease_of[i]) for i in reversed(ids)]

    async def renew() -> object:
        async with server.engine.begin() as conn:
            return await leases_repo.renew(
                conn, backwards, delivery_lease=timedelta(minutes=1), default_heartbeat=None
            )

    locked = await locks_up_to_the_held_row(database_url, renew, ids)
    assert locked == ids[: len(ids) // 2]


async def test_freeing_a_runs_slots_locks_the_limits_in_tag_order(
    server: RunningServer, database_url: str
) -> None:
    prefix = f"lock-order-{uuid.uuid4().hex[:6]}"
    tags = [f"{prefix}-{i}" for i in range(9)]
    run_id, now = uuid.uuid4(), datetime.now(UTC)
    async with server.engine.begin() as conn:
        for tag in reversed(tags):  # stored in the opposite order to the tags'
            await limits_repo.upsert_limit(conn, tag, 10, now)
        await limits_repo.take_slots(conn, tags, run_id, now)

    async def release() -> None:
        async with server.engine.begin() as conn:
            await limits_repo.release_slots_of_runs(conn, [run_id, uuid.uuid4()], now)

    locked = await locks_up_to_the_held_row(
        database_url, release, tags, table="concurrency_limit", column="tag"
    )
    assert locked == tags[: len(tags) // 2]
