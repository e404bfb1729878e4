"""Alembic environment: runs on the connection that `migrate.upgrade_to_head` passes in."""

from __future__ import annotations

from alembic import context

from taskrun_server.database.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations through `taskrun-server migrate`, which supplies a connection"
    )

context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
