"""The read benchmarks' dataset, loaded straight into Postgres: the shape the bench's filters
and Prefect's copy of it rely on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from bench.dataset import churn, load_task_runs
from devtools.scratch_database import libpq_url, scratch_database
from tests.conftest import _admin_url


def test_the_dataset_holds_each_run_with_its_state_and_the_tags_the_filters_use() -> None:
    admin, embedded = _admin_url()
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with (
        scratch_database(admin, "taskrun_test_dataset") as url,
        psycopg.connect(libpq_url(url), autocommit=True) as conn,
    ):
        load_task_runs(conn, 1000, start=end - timedelta(hours=24), end=end)
        churn(conn, 100)
        runs, team_3, completed, orphans = conn.execute(
            """
            SELECT count(*), count(*) FILTER (WHERE tags @> ARRAY['team-3']),
                   count(*) FILTER (WHERE state_type = 'COMPLETED'),
                   count(*) FILTER (WHERE NOT EXISTS (
                       SELECT 1 FROM task_run_state s WHERE s.id = task_run.state_id))
            FROM task_run
            """
        ).fetchone() or (0, 0, 0, 0)
    del embedded
    assert (runs, team_3, orphans) == (1000, 100, 0)
    assert 600 <= completed <= 700  # 60 % loaded, then up to 100 more by the churn
