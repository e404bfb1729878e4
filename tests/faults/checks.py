"""Compare what the server acknowledged with what the database holds."""

from __future__ import annotations

import psycopg

from devtools.scratch_database import libpq_url
from tests.faults.load import Acknowledged


def assert_nothing_acknowledged_was_lost(database_url: str, record: Acknowledged) -> None:
    with psycopg.connect(libpq_url(database_url)) as conn:
        runs = {
            str(row[0]): (row[1], row[2])
            for row in conn.execute(
                "SELECT id, task_key, dynamic_key FROM task_run WHERE task_key LIKE %s",
                (record.prefix + ".%",),
            )
        }
        states = {
            str(row[0])
            for row in conn.execute(
                "SELECT s.id FROM task_run_state s JOIN task_run r ON r.id = s.task_run_id "
                "WHERE r.task_key LIKE %s",
                (record.prefix + ".%",),
            )
        }
    assert record.run_ids <= set(runs), "an acknowledged task run is missing"
    assert record.state_ids <= states, "an acknowledged state is missing"
    # One run per (task_key, dynamic_key), however often a create was retried.
    assert len(set(runs.values())) == len(runs)
    assert {key for key in runs.values()} >= record.keys


def scheduled_left(database_url: str, record: Acknowledged) -> int:
    with psycopg.connect(libpq_url(database_url)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM task_run WHERE task_key = %s AND state_type = 'SCHEDULED'",
            (record.scheduled_key,),
        ).fetchone()
    assert row is not None
    return int(row[0])
