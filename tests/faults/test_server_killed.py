"""SIGKILL in the middle of a load of retrying clients, then a restart on the same port."""

from __future__ import annotations

import subprocess

from tests.faults.checks import assert_nothing_acknowledged_was_lost, scheduled_left
from tests.faults.restarts import across_a_restart


def kill(process: subprocess.Popen[bytes]) -> None:
    process.kill()  # SIGKILL: no drain, no lease release, transactions cut mid-flight


async def test_nothing_acknowledged_is_lost_and_every_task_is_delivered(
    database_url: str,
) -> None:
    restart = await across_a_restart(database_url, kill, gap=0.5, drivers=4)
    record = restart.record
    print(
        f"\nserver SIGKILL: {len(record.run_ids)} runs ({restart.runs_before} before the kill), "
        f"{len(record.state_ids)} states, {len(restart.delivered)} deliveries acknowledged; "
        f"20 more runs acknowledged {restart.recovered_after:.2f}s after the restart"
    )
    assert record.failures == []
    assert 0 < restart.runs_before < len(record.run_ids), "the load ran on both sides of the kill"
    assert_nothing_acknowledged_was_lost(database_url, record)
    assert record.scheduled_run_ids <= restart.delivered, "a scheduled task was never delivered"
    assert scheduled_left(database_url, record) == 0
