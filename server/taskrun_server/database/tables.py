"""SQLAlchemy Core table definitions. The migrations, not these, create the schema."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Enum,
    ForeignKey,
    Integer,
    Interval,
    MetaData,
    Numeric,
    SmallInteger,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from taskrun_server.domain.states import StateType

metadata = MetaData()

state_type_enum = Enum(
    StateType,
    name="state_type",
    values_callable=lambda members: [m.value for m in members],
    create_type=False,
)

Timestamp = DateTime(timezone=True)
Tags = ARRAY(Text)

flow = Table(
    "flow",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("created", Timestamp, nullable=False),
    Column("updated", Timestamp, nullable=False),
    Column("name", Text, nullable=False, unique=True),
    Column("tags", Tags, nullable=False, server_default=text("'{}'")),
)

deployment = Table(
    "deployment",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("created", Timestamp, nullable=False),
    Column("updated", Timestamp, nullable=False),
    Column("name", Text, nullable=False),
    Column(
        "flow_id", UUID(as_uuid=True), ForeignKey("flow.id", ondelete="CASCADE"), nullable=False
    ),
    Column("tags", Tags, nullable=False, server_default=text("'{}'")),
)

flow_run = Table(
    "flow_run",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("created", Timestamp, nullable=False),
    Column("updated", Timestamp, nullable=False),
    Column("name", Text, nullable=False),
    Column(
        "flow_id", UUID(as_uuid=True), ForeignKey("flow.id", ondelete="CASCADE"), nullable=False
    ),
    Column("deployment_id", UUID(as_uuid=True), ForeignKey("deployment.id", ondelete="SET NULL")),
    Column("parent_task_run_id", UUID(as_uuid=True)),
    Column("tags", Tags, nullable=False, server_default=text("'{}'")),
    Column("state_type", state_type_enum, nullable=False),
    Column("state_name", Text, nullable=False),
    Column("state_timestamp", Timestamp, nullable=False),
    Column("run_count", Integer, nullable=False, server_default=text("0")),
)

task_run = Table(
    "task_run",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("created", Timestamp, nullable=False),
    Column("updated", Timestamp, nullable=False),
    Column("name", Text, nullable=False),
    Column("flow_run_id", UUID(as_uuid=True), ForeignKey("flow_run.id", ondelete="CASCADE")),
    Column("task_key", Text, nullable=False),
    Column("dynamic_key", Text, nullable=False),
    Column("cache_key", Text),
    Column("cache_expiration", Timestamp),
    Column("task_version", Text),
    Column("empirical_policy", JSONB, nullable=False),
    Column("tags", Tags, nullable=False),
    Column("labels", JSONB, nullable=False),
    Column("task_inputs", JSONB, nullable=False),
    Column("state_id", UUID(as_uuid=True)),
    Column("state_type", state_type_enum),
    Column("state_name", Text),
    Column("state_timestamp", Timestamp),
    Column("run_count", Integer, nullable=False, server_default=text("0")),
    Column("flow_run_run_count", Integer, nullable=False, server_default=text("0")),
    Column("expected_start_time", Timestamp),
    Column("next_scheduled_start_time", Timestamp),
    Column("start_time", Timestamp),
    Column("end_time", Timestamp),
    Column("total_run_time", Interval, nullable=False, server_default=text("'0'")),
    # Delivery to subscribers (SubscribeScheduledTasks): who holds the lease, until when. The
    # lease outlives the hand-off: the worker renews it by heartbeat while the run executes.
    Column("lease_owner", Text),
    Column("lease_expires_at", Timestamp),
    Column("delivery_count", Integer, nullable=False, server_default=text("0")),
    Column("lease_id", UUID(as_uuid=True)),
    Column("execution_deadline", Timestamp),
    Column("lease_renewed_at", Timestamp),
    Column("parameters", JSONB),
)

task_run_state = Table(
    "task_run_state",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column(
        "task_run_id",
        UUID(as_uuid=True),
        ForeignKey("task_run.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("type", state_type_enum, nullable=False),
    Column("name", Text, nullable=False),
    Column("timestamp", Timestamp, nullable=False),
    Column("message", Text),
    Column("state_details", JSONB, nullable=False),
    Column("data", JSONB),
)

concurrency_limit = Table(
    "concurrency_limit",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("created", Timestamp, nullable=False),
    Column("updated", Timestamp, nullable=False),
    Column("tag", Text, nullable=False, unique=True),
    Column("concurrency_limit", Integer, nullable=False),
    Column("active_slots", ARRAY(UUID(as_uuid=True)), nullable=False, server_default=text("'{}'")),
)

task_run_state_cache = Table(
    "task_run_state_cache",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("created", Timestamp, nullable=False),
    Column("cache_key", Text, nullable=False),
    Column("cache_expiration", Timestamp),
    Column(
        "task_run_state_id",
        UUID(as_uuid=True),
        ForeignKey("task_run_state.id", ondelete="CASCADE"),
        nullable=False,
    ),
)

log = Table(
    "log",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("created", Timestamp, nullable=False),
    Column("name", Text, nullable=False),
    Column("level", SmallInteger, nullable=False),
    Column("message", Text, nullable=False),
    Column("timestamp", Timestamp, nullable=False),
    Column("flow_run_id", UUID(as_uuid=True)),
    Column("task_run_id", UUID(as_uuid=True)),
)


def _tally(name: str) -> Table:
    """Counts and history sums per (hour of expected start, state, tag set): migration 0005
    says how the database keeps them. The delta table has the same columns and no key."""
    return Table(
        name,
        metadata,
        Column("hour", Timestamp),
        Column("state_type", state_type_enum),
        Column("state_name", Text),
        Column("tags", Tags),
        Column("runs", BigInteger, nullable=False),
        Column("run_time", Numeric, nullable=False),
        Column("running_since", Numeric, nullable=False),
        Column("start_delay", Numeric, nullable=False),
        Column("waiting", BigInteger, nullable=False),
        Column("waiting_since", Numeric, nullable=False),
    )


task_run_tally = _tally("task_run_tally")
task_run_tally_delta = _tally("task_run_tally_delta")

__all__ = [
    "concurrency_limit",
    "deployment",
    "flow",
    "flow_run",
    "log",
    "metadata",
    "task_run",
    "task_run_state",
    "task_run_state_cache",
    "task_run_tally",
    "task_run_tally_delta",
]
