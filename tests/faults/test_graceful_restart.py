"""A graceful restart that clients ride through: 32 clients on AsyncTaskRunClient, the server
SIGTERMed mid-load and started again on the same port 2 s after it exits. No call may fail
(before, 26 came back CANCELLED and 96 ran out of retries), and nothing acknowledged is lost."""

from __future__ import annotations

import signal
import subprocess

from tests.faults.checks import assert_nothing_acknowledged_was_lost, scheduled_left
from tests.faults.restarts import across_a_restart


def terminate(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)


async def test_clients_ride_through_a_graceful_restart(database_url: str) -> None:
    restart = await across_a_restart(database_url, terminate, gap=2.0, drivers=32)
    record = restart.record
    print(
        f"\ngraceful restart: {len(record.run_ids)} runs ({restart.runs_before} before the "
        f"stop); 20 more acknowledged {restart.recovered_after:.2f}s after the restart"
    )
    assert record.failures == []
    assert 0 < restart.runs_before < len(record.run_ids), "the load ran on both sides"
    assert_nothing_acknowledged_was_lost(database_url, record)
    assert scheduled_left(database_url, record) == 0
