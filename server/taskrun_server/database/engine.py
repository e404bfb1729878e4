"""The async SQLAlchemy engine, pointed at a configured or embedded Postgres."""

from __future__ import annotations

import orjson
from sqlalchemy import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from taskrun_server.settings import Settings


def normalize_url(url: str) -> URL:
    """Accept plain postgresql:// URLs and use the psycopg 3 driver for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def create_engine(url: str, settings: Settings) -> AsyncEngine:
    """An engine with a bounded pool.

    No pre-ping: it would cost a round trip on every checkout. When Postgres restarts, the
    first call on a stale connection fails with a disconnect error, which SQLAlchemy answers by
    invalidating the whole pool and the API maps to UNAVAILABLE, a status clients retry.
    """
    return create_async_engine(
        normalize_url(url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # orjson, not the standard library: JSON columns are a third of a list read's
        # decoding and most of a batch insert's encoding.
        json_serializer=orjson.dumps,
        json_deserializer=orjson.loads,
    )


def autocommit_view(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, with connections in autocommit mode.

    For work that is one statement (atomic by itself) or read-only: it saves the BEGIN and the
    COMMIT or ROLLBACK round trips that an implicit transaction costs.
    """
    return engine.execution_options(isolation_level="AUTOCOMMIT")
