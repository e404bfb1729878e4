"""Is the database reachable right now? One cheap round trip, bounded in time."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)


async def database_reachable(engine: AsyncEngine, limit_seconds: float) -> bool:
    """True when `SELECT 1` answers within `limit_seconds`.

    A failure also invalidates the pooled connection it used, so the pool drops dead
    connections left over from a database restart instead of handing them to a request.
    """
    try:
        async with asyncio.timeout(limit_seconds):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        return True
    except Exception as error:  # any failure means "not now"; the reason goes to the log
        logger.debug("database probe failed: %s", error)
        return False
