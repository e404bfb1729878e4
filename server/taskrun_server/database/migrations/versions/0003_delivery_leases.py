"""Delivery of scheduled background task runs: leases, and NOTIFY wake-ups.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

CHANNEL = "taskrun_scheduled"


def upgrade() -> None:
    op.add_column("task_run", sa.Column("lease_owner", sa.Text))
    op.add_column("task_run", sa.Column("lease_expires_at", sa.DateTime(timezone=True)))
    op.add_column(
        "task_run",
        sa.Column("delivery_count", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    # What a subscriber claims from: background runs waiting in SCHEDULED, by key and due time.
    op.execute(
        "CREATE INDEX ix_task_run__deliverable ON task_run "
        "(task_key, next_scheduled_start_time) "
        "WHERE flow_run_id IS NULL AND state_type = 'SCHEDULED'"
    )
    op.execute(
        "CREATE INDEX ix_task_run__lease_owner ON task_run (lease_owner) "
        "WHERE lease_owner IS NOT NULL"
    )
    # Wake-ups, sent at commit and only then. "k:<task key>": a run of that key became
    # deliverable (created or returned to SCHEDULED, or its lease released). "o:<owner>": a run
    # leased to that subscriber was settled, so its prefetch has room again.
    op.execute(
        f"""
        CREATE FUNCTION taskrun_notify_scheduled() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'UPDATE' AND OLD.state_type = 'SCHEDULED' AND OLD.lease_owner IS NOT NULL
               AND NEW.state_type IS DISTINCT FROM 'SCHEDULED' THEN
                PERFORM pg_notify('{CHANNEL}', 'o:' || OLD.lease_owner);
            ELSE
                PERFORM pg_notify('{CHANNEL}', 'k:' || NEW.task_key);
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER task_run_scheduled_insert AFTER INSERT ON task_run
        FOR EACH ROW WHEN (NEW.flow_run_id IS NULL AND NEW.state_type = 'SCHEDULED')
        EXECUTE FUNCTION taskrun_notify_scheduled()
        """
    )
    op.execute(
        """
        CREATE TRIGGER task_run_scheduled_update AFTER UPDATE ON task_run
        FOR EACH ROW WHEN (
            NEW.flow_run_id IS NULL AND (
                (NEW.state_type = 'SCHEDULED' AND NEW.lease_owner IS NULL
                 AND (OLD.state_id IS DISTINCT FROM NEW.state_id OR OLD.lease_owner IS NOT NULL))
                OR (OLD.state_type = 'SCHEDULED' AND OLD.lease_owner IS NOT NULL
                    AND NEW.state_type IS DISTINCT FROM 'SCHEDULED')
            )
        )
        EXECUTE FUNCTION taskrun_notify_scheduled()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS task_run_scheduled_update ON task_run")
    op.execute("DROP TRIGGER IF EXISTS task_run_scheduled_insert ON task_run")
    op.execute("DROP FUNCTION IF EXISTS taskrun_notify_scheduled()")
    op.drop_index("ix_task_run__lease_owner", "task_run")
    op.drop_index("ix_task_run__deliverable", "task_run")
    op.drop_column("task_run", "delivery_count")
    op.drop_column("task_run", "lease_expires_at")
    op.drop_column("task_run", "lease_owner")
