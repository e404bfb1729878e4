"""A notification for every state a task run enters, so that WatchTaskRuns pushes changes as
they commit instead of polling.

Statement-level triggers send the ids of the runs a statement created, moved to a new state or
deleted on channel `taskrun_state`, comma-separated, at most 200 to a notification (a payload
must stay under 8,000 bytes). Postgres delivers notifications at commit, and only then.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

CHANNEL = "taskrun_state"
PER_NOTIFICATION = 200


def _notify(rows: str) -> str:
    """Notify the ids of `rows` (a query yielding `id`), PER_NOTIFICATION at a time."""
    return f"""
        PERFORM pg_notify('{CHANNEL}', string_agg(id::text, ','))
        FROM (SELECT id, (row_number() OVER () - 1) / {PER_NOTIFICATION} AS chunk
              FROM ({rows}) AS changed) AS numbered
        GROUP BY chunk;
    """


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION taskrun_notify_states() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                {_notify("SELECT id FROM new_runs")}
            ELSIF TG_OP = 'DELETE' THEN
                {_notify("SELECT id FROM old_runs")}
            ELSE
                {
            _notify(
                "SELECT n.id FROM new_runs n JOIN old_runs o ON o.id = n.id "
                "WHERE n.state_id IS DISTINCT FROM o.state_id"
            )
        }
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    for operation, tables in (
        ("INSERT", "NEW TABLE AS new_runs"),
        ("DELETE", "OLD TABLE AS old_runs"),
        ("UPDATE", "OLD TABLE AS old_runs NEW TABLE AS new_runs"),
    ):
        op.execute(
            f"CREATE TRIGGER task_run_states_{operation.lower()} AFTER {operation} ON task_run "
            f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION taskrun_notify_states()"
        )


def downgrade() -> None:
    for operation in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS task_run_states_{operation} ON task_run")
    op.execute("DROP FUNCTION IF EXISTS taskrun_notify_states()")
