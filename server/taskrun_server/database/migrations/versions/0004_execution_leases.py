"""Execution leases, timeouts and parameters.

A delivered run keeps its lease past the hand-off: the worker renews it by heartbeat while the
run is PENDING, RUNNING or CANCELLING, and proposals name it (`lease_id`, a fencing token).
The reaper finds lapsed leases and passed execution deadlines through the two partial indexes,
which hold only the few runs in flight, so finding nothing costs next to nothing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("task_run", sa.Column("lease_id", UUID(as_uuid=True)))
    op.add_column("task_run", sa.Column("execution_deadline", sa.DateTime(timezone=True)))
    op.add_column("task_run", sa.Column("parameters", JSONB))
    op.execute(
        "CREATE INDEX ix_task_run__lease_expiry ON task_run (lease_expires_at) "
        "WHERE state_type IN ('PENDING', 'RUNNING', 'CANCELLING') "
        "AND lease_expires_at IS NOT NULL"
    )
    op.execute(
        "CREATE INDEX ix_task_run__execution_deadline ON task_run (execution_deadline) "
        "WHERE execution_deadline IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_index("ix_task_run__execution_deadline", "task_run")
    op.drop_index("ix_task_run__lease_expiry", "task_run")
    op.drop_column("task_run", "parameters")
    op.drop_column("task_run", "execution_deadline")
    op.drop_column("task_run", "lease_id")
