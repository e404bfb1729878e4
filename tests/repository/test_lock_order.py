"""Statements that lock several runs lock them in id order, as `lock_task_runs` does: two
statements locking overlapping runs in different orders can deadlock (Postgres then fails one
of them after a second). Each test holds one run locked from outside and looks at which runs
the statement had locked by the time it waited for that one."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import psycopg
from sqlalchemy import text

from devtools.scratch_database import libpq_url
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


def locked_by_others(database_url: str, ids: list[str]) -> list[str]:
    """Which of these runs some other transaction holds locked now."""
    held = []
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        for run_id in ids:
            try:
                with conn.transaction():
                    conn.execute("SELECT 1 FROM task_run WHERE id = %s FOR UPDATE NOWAIT", [run_id])
            except psycopg.errors.LockNotAvailable:
                held.append(run_id)
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


async def locks_up_to_the_held_run(
    server: RunningServer,
    database_url: str,
    ids: list[str],
    statement: Callable[[], Awaitable[object]],
) -> list[str]:
    """Hold the middle run locked, run `statement` until it waits for it, and say which of
    the other runs it had locked by then; then let it finish."""
    middle = ids[len(ids) // 2]
    with psycopg.connect(libpq_url(database_url)) as holder:
        holder.execute("SELECT 1 FROM task_run WHERE id = %s FOR UPDATE", [middle])
        running = asyncio.ensure_future(statement())
        await asyncio.to_thread(wait_until_someone_waits_for_a_lock, database_url)
        assert not running.done(), "the statement should be waiting for the held run"
        others = [i for i in ids if i != middle]
        locked = await asyncio.to_thread(locked_by_others, database_url, others)
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

    locked = await locks_up_to_the_held_run(server, database_url, ids, release)
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

    locked = await locks_up_to_the_held_run(server, database_url, ids, renew)
    assert locked == ids[: len(ids) // 2]
