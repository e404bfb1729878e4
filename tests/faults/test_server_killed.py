"""SIGKILL in the middle of a load of retrying clients, then a restart on the same port."""

from __future__ import annotations

import asyncio
import time

from devtools.server_processes import free_port, start_server_process, wait_until_serving
from tests.faults.checks import assert_nothing_acknowledged_was_lost, scheduled_left
from tests.faults.load import Load, until_acknowledged_beyond


async def test_nothing_acknowledged_is_lost_and_every_task_is_delivered(
    database_url: str,
) -> None:
    port = free_port()
    target = f"127.0.0.1:{port}"
    settings = {"LEASE_SECONDS": "1", "DELIVERY_POLL_SECONDS": "0.2"}
    first = start_server_process(database_url, port, **settings)
    second = None
    try:
        await asyncio.to_thread(wait_until_serving, f"127.0.0.1:{port}", time.monotonic() + 60)
        load = Load(target, drivers=4)
        record, delivered = load.record, load.delivered
        await asyncio.sleep(1.5)

        first.kill()  # SIGKILL: no drain, no lease release, transactions cut mid-flight
        first.wait()
        killed_with = len(record.run_ids)
        await asyncio.sleep(0.5)
        second = start_server_process(database_url, port, **settings)
        await asyncio.to_thread(wait_until_serving, f"127.0.0.1:{port}", time.monotonic() + 60)
        recovered = await until_acknowledged_beyond(record, killed_with + 20)
        await load.finish()
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)

    print(
        f"\nserver SIGKILL: {len(record.run_ids)} runs ({killed_with} before the kill), "
        f"{len(record.state_ids)} states, {len(delivered)} deliveries acknowledged; "
        f"20 more runs acknowledged {recovered:.2f}s after the restart"
    )
    assert record.failures == []
    assert 0 < killed_with < len(record.run_ids), "the load ran on both sides of the kill"
    assert_nothing_acknowledged_was_lost(database_url, record)
    assert record.scheduled_run_ids <= delivered, "a scheduled task was never delivered"
    assert scheduled_left(database_url, record) == 0
