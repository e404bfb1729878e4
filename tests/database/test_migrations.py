"""Migrations: applied once at start, safe to apply again, and the schema they leave."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from taskrun_server.database.engine import normalize_url
from taskrun_server.database.migrate import alembic_config, upgrade_to_head


def test_upgrading_an_upgraded_database_is_a_no_op(database_url: str) -> None:
    upgrade_to_head(database_url)
    engine = create_engine(normalize_url(database_url), poolclass=NullPool)
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert version == head


def test_idempotency_key_treats_missing_flow_runs_as_equal(database_url: str) -> None:
    engine = create_engine(normalize_url(database_url), poolclass=NullPool)
    with engine.connect() as conn:
        definition = conn.execute(
            text(
                "SELECT indexdef FROM pg_indexes "
                "WHERE indexname = 'uq_task_run__flow_run_id_task_key_dynamic_key'"
            )
        ).scalar_one()
        indexes = {i["name"] for i in inspect(conn).get_indexes("task_run")}
    engine.dispose()
    assert "NULLS NOT DISTINCT" in definition
    assert {
        "ix_task_run__expected_start_time",
        "ix_task_run__tags",
        "ix_task_run__end_time",
    } <= indexes
