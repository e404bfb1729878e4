"""An index of run ids that carries the columns most list reads filter on (state type and name,
tags), so that a read in id order (the default sort) can find its page's runs without visiting
them: an index-only scan, and then only the page's rows are read. See
`repository.task_runs._reading`.

Building it holds writes to `task_run` while it builds (migrations run in one transaction).
On a large table, build it beforehand with `CREATE INDEX CONCURRENTLY` and the same name and
definition: this migration then finds it and does nothing.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_task_run__id_filtered ON task_run (id) "
        "INCLUDE (state_type, state_name, tags)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_task_run__id_filtered")
