"""Migrations: applied once at start, safe to apply again, and the schema they leave."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from taskrun_server.database.engine import normalize_url
from taskrun_server.database.migrate import alembic_config, upgrade_to_head
from taskrun_server.database.tables import metadata


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


def test_the_migrations_build_the_tables_the_code_declares(database_url: str) -> None:
    """Every table in `tables.py` exists after the migrations with the same columns, the same
    nullability and the same kind of type: the migrations, not the declarations, make the
    schema, so the two must not drift apart."""
    engine = create_engine(normalize_url(database_url), poolclass=NullPool)
    drift: list[str] = []
    with engine.connect() as conn:
        inspector = inspect(conn)
        for table in metadata.sorted_tables:
            migrated = {c["name"]: c for c in inspector.get_columns(table.name)}
            declared = {c.name for c in table.columns}
            drift += [f"{table.name}.{name}: not declared" for name in set(migrated) - declared]
            drift += [f"{table.name}.{name}: not migrated" for name in declared - set(migrated)]
            for column in table.columns:
                found = migrated.get(column.name)
                if found is None:
                    continue
                where = f"{table.name}.{column.name}"
                if found["nullable"] != column.nullable:
                    drift.append(f"{where}: nullable {found['nullable']} in the database")
                if _kind(found["type"]) != _kind(column.type):
                    drift.append(f"{where}: {found['type']} in the database")
    engine.dispose()
    assert drift == []


def _kind(column_type: object) -> str:
    """A type's family, as both sides can name it (VARCHAR and TEXT are both text)."""
    name = type(column_type).__name__.upper()
    for family in ("UUID", "JSONB", "ARRAY", "TIMESTAMP", "DATETIME", "INTERVAL", "ENUM", "INT"):
        if family in name:
            return {"DATETIME": "TIMESTAMP"}.get(family, family)
    return {"TEXT": "TEXT", "VARCHAR": "TEXT", "STRING": "TEXT"}.get(name, name)
