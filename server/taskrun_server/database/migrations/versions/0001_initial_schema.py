"""Initial schema: flows, deployments, flow runs, task runs, their states and logs.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STATE_TYPES = (
    "SCHEDULED",
    "PENDING",
    "RUNNING",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "CRASHED",
    "PAUSED",
    "CANCELLING",
)


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
    ]


def _tags() -> sa.Column[object]:
    return sa.Column("tags", pg.ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'"))


def upgrade() -> None:
    state_type = pg.ENUM(*STATE_TYPES, name="state_type", create_type=False)
    state_type.create(op.get_bind(), checkfirst=True)

    op.create_table(
        "flow",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        *_timestamps(),
        sa.Column("name", sa.Text, nullable=False),
        _tags(),
        sa.UniqueConstraint("name", name="uq_flow__name"),
    )
    op.create_table(
        "deployment",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        *_timestamps(),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column(
            "flow_id",
            pg.UUID(as_uuid=True),
            sa.ForeignKey("flow.id", ondelete="CASCADE"),
            nullable=False,
        ),
        _tags(),
        sa.UniqueConstraint("flow_id", "name", name="uq_deployment__flow_id_name"),
    )
    op.create_table(
        "flow_run",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        *_timestamps(),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column(
            "flow_id",
            pg.UUID(as_uuid=True),
            sa.ForeignKey("flow.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "deployment_id",
            pg.UUID(as_uuid=True),
            sa.ForeignKey("deployment.id", ondelete="SET NULL"),
        ),
        sa.Column("parent_task_run_id", pg.UUID(as_uuid=True)),
        _tags(),
        sa.Column("state_type", state_type, nullable=False),
        sa.Column("state_name", sa.Text, nullable=False),
        sa.Column("state_timestamp", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_flow_run__flow_id", "flow_run", ["flow_id"])
    op.create_index("ix_flow_run__deployment_id", "flow_run", ["deployment_id"])
    op.create_index("ix_flow_run__parent_task_run_id", "flow_run", ["parent_task_run_id"])

    op.create_table(
        "task_run",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        *_timestamps(),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column(
            "flow_run_id",
            pg.UUID(as_uuid=True),
            sa.ForeignKey("flow_run.id", ondelete="CASCADE"),
        ),
        sa.Column("task_key", sa.Text, nullable=False),
        sa.Column("dynamic_key", sa.Text, nullable=False),
        sa.Column("cache_key", sa.Text),
        sa.Column("cache_expiration", sa.DateTime(timezone=True)),
        sa.Column("task_version", sa.Text),
        sa.Column("empirical_policy", pg.JSONB, nullable=False),
        sa.Column("tags", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("labels", pg.JSONB, nullable=False),
        sa.Column("task_inputs", pg.JSONB, nullable=False),
        sa.Column("state_id", pg.UUID(as_uuid=True)),
        sa.Column("state_type", state_type),
        sa.Column("state_name", sa.Text),
        sa.Column("state_timestamp", sa.DateTime(timezone=True)),
        sa.Column("run_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("flow_run_run_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("expected_start_time", sa.DateTime(timezone=True)),
        sa.Column("next_scheduled_start_time", sa.DateTime(timezone=True)),
        sa.Column("start_time", sa.DateTime(timezone=True)),
        sa.Column("end_time", sa.DateTime(timezone=True)),
        sa.Column("total_run_time", sa.Interval, nullable=False, server_default=sa.text("'0'")),
    )
    # The idempotency key of CreateTaskRun. NULLS NOT DISTINCT (Postgres 15+) makes background
    # task runs, which have no flow run, idempotent on (task_key, dynamic_key) too.
    op.execute(
        "CREATE UNIQUE INDEX uq_task_run__flow_run_id_task_key_dynamic_key "
        "ON task_run (flow_run_id, task_key, dynamic_key) NULLS NOT DISTINCT"
    )
    # History scans by expected start time; INCLUDE lets it answer from the index alone.
    op.execute(
        "CREATE INDEX ix_task_run__expected_start_time ON task_run (expected_start_time, id) "
        "INCLUDE (state_type, state_name, state_timestamp, start_time, total_run_time)"
    )
    op.create_index("ix_task_run__name", "task_run", ["name", "id"])
    op.create_index(
        "ix_task_run__next_scheduled_start_time", "task_run", ["next_scheduled_start_time", "id"]
    )
    op.create_index("ix_task_run__end_time", "task_run", ["end_time", "id"])
    op.create_index("ix_task_run__start_time", "task_run", ["start_time"])
    op.create_index("ix_task_run__state_type_state_name", "task_run", ["state_type", "state_name"])
    op.create_index("ix_task_run__tags", "task_run", ["tags"], postgresql_using="gin")

    op.create_table(
        "task_run_state",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "task_run_id",
            pg.UUID(as_uuid=True),
            sa.ForeignKey("task_run.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("type", state_type, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("state_details", pg.JSONB, nullable=False),
        sa.Column("data", pg.JSONB),
    )
    op.create_index(
        "ix_task_run_state__task_run_id_timestamp", "task_run_state", ["task_run_id", "timestamp"]
    )

    op.create_table(
        "log",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("level", sa.SmallInteger, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("flow_run_id", pg.UUID(as_uuid=True)),
        sa.Column("task_run_id", pg.UUID(as_uuid=True)),
    )
    op.create_index("ix_log__task_run_id_timestamp", "log", ["task_run_id", "timestamp"])
    op.create_index("ix_log__flow_run_id_timestamp", "log", ["flow_run_id", "timestamp"])


def downgrade() -> None:
    for table in ("log", "task_run_state", "task_run", "flow_run", "deployment", "flow"):
        op.drop_table(table)
    op.execute("DROP TYPE IF EXISTS state_type")
