"""Throwaway databases: created and migrated for one test session or benchmark, then dropped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import make_url

from taskrun_server.database.migrate import upgrade_to_head


def libpq_url(url: str) -> str:
    """A URL psycopg itself accepts: SQLAlchemy's driver suffix removed."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def scratch_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A new, migrated database on admin_url's server, dropped (even if in use) at the end.

    Yields its URL. A fresh database per run keeps runs from seeing each other's rows and
    leaves the server's own databases untouched by migrations.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade_to_head(url)
        yield url
    finally:
        with psycopg.connect(libpq_url(admin_url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
