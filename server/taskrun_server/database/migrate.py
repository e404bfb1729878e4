"""Apply Alembic migrations. Runs at start-up and as `taskrun-server migrate`."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy
from alembic import command
from alembic.config import Config
from sqlalchemy.pool import NullPool

from taskrun_server.database.engine import normalize_url

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MIGRATION_LOCK_KEY = 0x7A5C_0001
"""Advisory lock that serialises replicas migrating the same database at once."""


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade_to_head(url: str) -> None:
    """Bring the schema to the newest revision, in one transaction, under an advisory lock."""
    engine = sqlalchemy.create_engine(normalize_url(url), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(
                sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
            config = alembic_config()
            config.attributes["connection"] = connection
            before = _revision(connection)
            command.upgrade(config, "head")
            after = _revision(connection)
    finally:
        engine.dispose()
    if before == after:
        logger.info("database schema is at the newest revision (%s)", after)
    else:
        logger.info("database schema migrated from %s to %s", before or "nothing", after)


def _revision(connection: sqlalchemy.Connection) -> str | None:
    exists = connection.execute(sqlalchemy.text("SELECT to_regclass('alembic_version')"))
    if exists.scalar_one() is None:
        return None
    version = connection.execute(sqlalchemy.text("SELECT version_num FROM alembic_version"))
    return version.scalar_one_or_none()
