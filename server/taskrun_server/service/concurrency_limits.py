"""Use cases for tag concurrency limits."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from taskrun_server.database.engine import autocommit_view
from taskrun_server.domain.concurrency_limits import ConcurrencyLimit
from taskrun_server.domain.errors import NotFound
from taskrun_server.repository import concurrency_limits as limits_repo
from taskrun_server.service.clock import utcnow


def _not_found(tag: str) -> NotFound:
    return NotFound(f"no concurrency limit for tag {tag!r}", "tag")


class ConcurrencyLimitService:
    def __init__(self, engine: AsyncEngine) -> None:
        self._autocommit = autocommit_view(engine)

    async def upsert(self, tag: str, limit: int) -> tuple[ConcurrencyLimit, bool]:
        async with self._autocommit.connect() as conn:
            return await limits_repo.upsert_limit(conn, tag, limit, utcnow())

    async def read(self, tag: str) -> ConcurrencyLimit:
        async with self._autocommit.connect() as conn:
            found = await limits_repo.read_limit(conn, tag)
        if found is None:
            raise _not_found(tag)
        return found

    async def read_many(self, *, limit: int, offset: int) -> list[ConcurrencyLimit]:
        async with self._autocommit.connect() as conn:
            return await limits_repo.read_limits(conn, limit=limit, offset=offset)

    async def reset(self, tag: str) -> ConcurrencyLimit:
        async with self._autocommit.connect() as conn:
            found = await limits_repo.reset_limit(conn, tag, utcnow())
        if found is None:
            raise _not_found(tag)
        return found

    async def delete(self, tag: str) -> None:
        async with self._autocommit.connect() as conn:
            if not await limits_repo.delete_limit(conn, tag):
                raise _not_found(tag)
