"""The task-run tally: counts and history sums per hour of expected start, state and tag set,
kept by the database itself as runs are written.

CountTaskRuns and TaskRunHistory over a live table otherwise touch every matching run: on a
table that is always being written, pages are rarely all-visible, so even covering indexes
visit the heap. The tally holds, for each (hour of expected start time, state type, state name,
tag set), how many runs there are and the sums that history needs, with the terms that depend
on the time of the query kept apart (how many runs are RUNNING and since when; how many are
waiting to start and since when), so that a reader finishes them with its own "now".

Writers never contend: a statement-level trigger on task_run appends the statement's change
(the old rows' contributions taken away, the new rows' added) to task_run_tally_delta, an
append-only table without indexes. A compactor in each server process folds the deltas into
task_run_tally every second. Readers add the two.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TERMINAL = "('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED')"

# One run's contribution, from a row of task_run (or of a transition table) aliased `r`.
CONTRIBUTION = f"""
    date_trunc('hour', r.expected_start_time, 'UTC') AS hour,
    r.state_type,
    r.state_name,
    r.tags,
    extract(epoch FROM r.total_run_time) AS run_time,
    CASE WHEN r.state_type = 'RUNNING' THEN extract(epoch FROM r.state_timestamp) ELSE 0 END
        AS running_since,
    CASE WHEN r.start_time IS NOT NULL
        THEN coalesce(greatest(extract(epoch FROM r.start_time - r.expected_start_time), 0), 0)
        ELSE 0 END AS start_delay,
    CASE WHEN r.start_time IS NULL AND (r.state_type IS NULL OR r.state_type NOT IN {TERMINAL})
        THEN 1 ELSE 0 END AS waiting,
    CASE WHEN r.start_time IS NULL AND (r.state_type IS NULL OR r.state_type NOT IN {TERMINAL})
        THEN coalesce(extract(epoch FROM r.expected_start_time), 0) ELSE 0 END AS waiting_since
"""

COLUMNS = "runs, run_time, running_since, start_delay, waiting, waiting_since"
KEY = "hour, state_type, state_name, tags"
SUMS = """
    sum(sign) AS runs,
    sum(sign * run_time) AS run_time,
    sum(sign * running_since) AS running_since,
    sum(sign * start_delay) AS start_delay,
    sum(sign * waiting) AS waiting,
    sum(sign * waiting_since) AS waiting_since
"""

# The columns whose change moves a run's contribution; other updates (leases) add nothing.
TALLIED = (
    "expected_start_time",
    "state_type",
    "state_name",
    "tags",
    "total_run_time",
    "state_timestamp",
    "start_time",
)


def _changed(this: str, other: str) -> str:
    mine = ", ".join(f"{this}.{c}" for c in TALLIED)
    theirs = ", ".join(f"{other}.{c}" for c in TALLIED)
    return f"({mine}) IS DISTINCT FROM ({theirs})"


def _tally_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("hour", sa.DateTime(timezone=True)),
        sa.Column(
            "state_type",
            pg.ENUM(name="state_type", create_type=False),
        ),
        sa.Column("state_name", sa.Text),
        sa.Column("tags", pg.ARRAY(sa.Text)),
        sa.Column("runs", sa.BigInteger, nullable=False),
        sa.Column("run_time", sa.Numeric, nullable=False),
        sa.Column("running_since", sa.Numeric, nullable=False),
        sa.Column("start_delay", sa.Numeric, nullable=False),
        sa.Column("waiting", sa.BigInteger, nullable=False),
        sa.Column("waiting_since", sa.Numeric, nullable=False),
    ]


def upgrade() -> None:
    op.create_table("task_run_tally", *_tally_columns())
    op.execute(
        f"CREATE UNIQUE INDEX uq_task_run_tally__key ON task_run_tally ({KEY}) NULLS NOT DISTINCT"
    )
    op.create_table("task_run_tally_delta", *_tally_columns())

    op.execute(
        f"""
        CREATE FUNCTION taskrun_tally_changes() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO task_run_tally_delta ({KEY}, {COLUMNS})
                SELECT {KEY}, {SUMS} FROM (
                    SELECT 1 AS sign, {CONTRIBUTION} FROM new_runs r
                ) c GROUP BY {KEY};
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO task_run_tally_delta ({KEY}, {COLUMNS})
                SELECT {KEY}, {SUMS} FROM (
                    SELECT -1 AS sign, {CONTRIBUTION} FROM old_runs r
                ) c GROUP BY {KEY};
            ELSE
                INSERT INTO task_run_tally_delta ({KEY}, {COLUMNS})
                SELECT {KEY}, {SUMS} FROM (
                    SELECT 1 AS sign, {CONTRIBUTION}
                    FROM new_runs r JOIN old_runs o ON o.id = r.id WHERE {_changed("r", "o")}
                    UNION ALL
                    SELECT -1 AS sign, {CONTRIBUTION}
                    FROM old_runs r JOIN new_runs n ON n.id = r.id WHERE {_changed("r", "n")}
                ) c GROUP BY {KEY}
                HAVING sum(sign) <> 0 OR sum(sign * run_time) <> 0
                    OR sum(sign * running_since) <> 0 OR sum(sign * start_delay) <> 0
                    OR sum(sign * waiting) <> 0 OR sum(sign * waiting_since) <> 0;
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
            f"CREATE TRIGGER task_run_tally_{operation.lower()} AFTER {operation} ON task_run "
            f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION taskrun_tally_changes()"
        )
    # TRUNCATE fires no row or statement trigger of the kinds above: empty the tally with it.
    op.execute(
        """
        CREATE FUNCTION taskrun_tally_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            TRUNCATE task_run_tally, task_run_tally_delta;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER task_run_tally_truncate AFTER TRUNCATE ON task_run "
        "FOR EACH STATEMENT EXECUTE FUNCTION taskrun_tally_truncate()"
    )
    # What exists already is tallied once, here.
    op.execute(
        f"""
        INSERT INTO task_run_tally ({KEY}, {COLUMNS})
        SELECT {KEY}, {SUMS} FROM (SELECT 1 AS sign, {CONTRIBUTION} FROM task_run r) c
        GROUP BY {KEY}
        """
    )
    # The hot table: vacuum after inserts too, so that its pages become all-visible (and its
    # indexes answer without visiting the heap) in minutes, not after 50% of it has changed.
    op.execute(
        "ALTER TABLE task_run SET (autovacuum_vacuum_scale_factor = 0.02, "
        "autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02)"
    )
    op.execute(
        "ALTER TABLE task_run_tally_delta SET (autovacuum_vacuum_scale_factor = 0, "
        "autovacuum_vacuum_threshold = 10000)"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE task_run RESET (autovacuum_vacuum_scale_factor, "
        "autovacuum_vacuum_insert_scale_factor, autovacuum_analyze_scale_factor)"
    )
    for operation in ("insert", "delete", "update", "truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS task_run_tally_{operation} ON task_run")
    op.execute("DROP FUNCTION IF EXISTS taskrun_tally_changes()")
    op.execute("DROP FUNCTION IF EXISTS taskrun_tally_truncate()")
    op.drop_table("task_run_tally_delta")
    op.drop_table("task_run_tally")
