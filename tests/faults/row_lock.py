"""Hold a task run's row lock from outside the server, to keep a server call waiting on it.

The lock lives on a blocking psycopg connection driven from a worker thread, not on the test's
event loop: that loop also runs gRPC, and an async connection there hung once in CI-like runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg

from devtools.scratch_database import libpq_url


class RowLock:
    def __init__(self, database_url: str, task_run_id: str) -> None:
        self._conn = psycopg.connect(libpq_url(database_url))
        self._conn.execute("SELECT 1 FROM task_run WHERE id = %s FOR UPDATE", (task_run_id,))
        # Activity is watched from a second, autocommit connection: inside a transaction,
        # pg_stat_activity is a snapshot taken at its first read and would never change.
        self._observer = psycopg.connect(libpq_url(database_url), autocommit=True)

    def waiters(self) -> int:
        """How many other sessions of this database wait for a lock right now."""
        row = self._observer.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        ).fetchone()
        assert row is not None
        return int(row[0])

    def release(self) -> None:
        self._conn.rollback()
        self._conn.close()
        self._observer.close()


@asynccontextmanager
async def row_locked(database_url: str, task_run_id: str) -> AsyncIterator[RowLock]:
    """Lock the run's row until the block ends (then roll back)."""
    lock = await asyncio.to_thread(RowLock, database_url, task_run_id)
    try:
        yield lock
    finally:
        await asyncio.to_thread(lock.release)


async def lock_waiters(lock: RowLock) -> int:
    return await asyncio.to_thread(lock.waiters)


async def until_someone_waits(lock: RowLock, seconds: float = 20) -> None:
    """Return once another session waits for the lock; fail after `seconds`."""
    async with asyncio.timeout(seconds):
        while await lock_waiters(lock) == 0:  # noqa: ASYNC110 (the database is polled)
            await asyncio.sleep(0.05)
