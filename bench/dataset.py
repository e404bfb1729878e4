"""Bulk-load task runs for the read benchmarks, straight into Postgres.

Creating 100,000 runs through the API would measure the create path again and take minutes;
this writes the same rows (each run with its current state) in a few seconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import psycopg

_LOAD = (
    """
CREATE TEMP TABLE bench_runs ON COMMIT DROP AS
SELECT
    gen_random_uuid() AS id,
    gen_random_uuid() AS state_id,
    i,
    (ARRAY['COMPLETED','COMPLETED','COMPLETED','COMPLETED','COMPLETED','COMPLETED',
           'FAILED','RUNNING','SCHEDULED','PENDING'])[1 + i %% 10]::state_type AS state_type,
    %(start)s::timestamptz + (%(end)s::timestamptz - %(start)s::timestamptz) * (i::float8 / %(n)s)
        AS expected_start_time,
    make_interval(secs => (i * 7919) %% 90) AS lateness,
    make_interval(secs => 1 + (i * 104729) %% 600) AS run_time
FROM generate_series(1::bigint, %(n)s) AS i
""",
    """
INSERT INTO task_run (
    id, created, updated, name, flow_run_id, task_key, dynamic_key, empirical_policy, tags,
    labels, task_inputs, state_id, state_type, state_name, state_timestamp, run_count,
    expected_start_time, start_time, end_time, total_run_time)
SELECT
    id, expected_start_time, expected_start_time, 'bench-' || i, NULL, 'bench.task' || (i %% 50),
    i::text, '{}'::jsonb, {tags}, '{}'::jsonb,
    '{}'::jsonb, state_id, state_type, initcap(state_type::text),
    expected_start_time + lateness,
    CASE WHEN state_type IN ('SCHEDULED', 'PENDING') THEN 0 ELSE 1 END,
    expected_start_time,
    CASE WHEN state_type IN ('SCHEDULED', 'PENDING') THEN NULL
         ELSE expected_start_time + lateness END,
    CASE WHEN state_type IN ('COMPLETED', 'FAILED')
         THEN expected_start_time + lateness + run_time END,
    CASE WHEN state_type IN ('COMPLETED', 'FAILED') THEN run_time ELSE interval '0' END
FROM bench_runs
""",
    """
INSERT INTO task_run_state (id, task_run_id, type, name, timestamp, state_details)
SELECT state_id, id, state_type, initcap(state_type::text), expected_start_time + lateness,
       jsonb_build_object('task_run_id', id::text)
FROM bench_runs
""",
)


_TAGS = {
    "taskrun": "ARRAY['team-' || (i %% 10), 'env-' || (i %% 3)]",
    "prefect": "jsonb_build_array('team-' || (i %% 10), 'env-' || (i %% 3))",
}
"""The one column whose type differs: Prefect keeps tags as a JSON array."""


def load_task_runs(
    conn: psycopg.Connection,
    n: int,
    *,
    start: datetime,
    end: datetime,
    schema: Literal["taskrun", "prefect"] = "taskrun",
) -> None:
    """Insert n runs spread evenly over [start, end), then ANALYZE, as autovacuum would: never a
    manual VACUUM, which would leave every page all-visible as no live table's pages are.

    `schema="prefect"` loads the same rows into a Prefect server's tables (the column names are
    the same). There a run and its state refer to each other by foreign keys; the load skips
    their checks (session_replication_role) because both sides are written together."""
    with conn.transaction():
        if schema == "prefect":
            conn.execute("SET LOCAL session_replication_role = replica")
        for statement in _LOAD:
            conn.execute(
                statement.replace("{tags}", _TAGS[schema]), {"n": n, "start": start, "end": end}
            )
    conn.execute("ANALYZE task_run")
    conn.execute("ANALYZE task_run_state")


_CHURN = (
    """
CREATE TEMP TABLE bench_churn ON COMMIT DROP AS
SELECT id, gen_random_uuid() AS state_id FROM task_run
WHERE name LIKE 'bench-%%' ORDER BY random() LIMIT %(n)s
""",
    """
INSERT INTO task_run_state (id, task_run_id, type, name, timestamp, state_details)
SELECT state_id, id, 'COMPLETED', 'Completed', now(), jsonb_build_object('task_run_id', id::text)
FROM bench_churn
""",
    """
UPDATE task_run SET state_id = c.state_id, state_type = 'COMPLETED', state_name = 'Completed',
    state_timestamp = now(), updated = now()
FROM bench_churn c WHERE task_run.id = c.id
""",
)


def churn(conn: psycopg.Connection, n: int) -> None:
    """`n` further state changes on loaded runs, as a live table keeps getting: new row
    versions and cleared visibility bits that only autovacuum, in its own time, tidies."""
    with conn.transaction():
        for statement in _CHURN:
            conn.execute(statement, {"n": n})
