"""When a run's lease was last taken or renewed: its worker's last heartbeat, for operators.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("task_run", sa.Column("lease_renewed_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("task_run", "lease_renewed_at")
