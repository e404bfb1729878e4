"""Orchestration: tag concurrency limits, the task-run state cache, flow-run run counts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "flow_run",
        sa.Column("run_count", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.create_table(
        "concurrency_limit",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tag", sa.Text, nullable=False),
        sa.Column("concurrency_limit", sa.Integer, nullable=False),
        sa.Column(
            "active_slots",
            pg.ARRAY(pg.UUID(as_uuid=True)),
            nullable=False,
            server_default=sa.text("'{}'"),
        ),
        sa.UniqueConstraint("tag", name="uq_concurrency_limit__tag"),
        sa.CheckConstraint("concurrency_limit >= 0", name="ck_concurrency_limit__non_negative"),
    )
    op.create_table(
        "task_run_state_cache",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cache_key", sa.Text, nullable=False),
        sa.Column("cache_expiration", sa.DateTime(timezone=True)),
        sa.Column(
            "task_run_state_id",
            pg.UUID(as_uuid=True),
            sa.ForeignKey("task_run_state.id", ondelete="CASCADE"),
            nullable=False,
        ),
    )
    op.create_index(
        "ix_task_run_state_cache__cache_key_created",
        "task_run_state_cache",
        ["cache_key", sa.text("created DESC")],
    )
    op.create_index(
        "ix_task_run_state_cache__task_run_state_id",
        "task_run_state_cache",
        ["task_run_state_id"],
    )


def downgrade() -> None:
    op.drop_table("task_run_state_cache")
    op.drop_table("concurrency_limit")
    op.drop_column("flow_run", "run_count")
