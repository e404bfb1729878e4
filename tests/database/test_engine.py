"""The engine's sessions: what every connection it opens is set to."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC

import psycopg
import pytest
from sqlalchemy import make_url, text

from devtools.scratch_database import libpq_url
from taskrun_server.database.engine import autocommit_view, create_engine
from taskrun_server.settings import Settings


@pytest.fixture
def zoned_role(database_url: str) -> Iterator[str]:
    """A login role whose sessions default to a zone half an hour off whole hours."""
    name = f"taskrun_zoned_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN")
        conn.execute(f"ALTER ROLE {name} SET TimeZone = 'Asia/Kolkata'")
    yield name
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute(f"DROP ROLE {name}")


async def test_sessions_are_in_utc_whatever_the_servers_default(
    database_url: str, zoned_role: str
) -> None:
    url = make_url(database_url).set(username=zoned_role).render_as_string(hide_password=False)
    engine = create_engine(url, Settings(database_url=url))
    try:
        for view in (engine, autocommit_view(engine)):
            async with view.connect() as conn:
                assert (await conn.execute(text("SHOW TimeZone"))).scalar_one() == "UTC"
                now = (await conn.execute(text("SELECT now()"))).scalar_one()
                await conn.rollback()  # a rollback does not undo the session's zone
                assert (await conn.execute(text("SHOW TimeZone"))).scalar_one() == "UTC"
            assert now.tzinfo is UTC
    finally:
        await engine.dispose()
