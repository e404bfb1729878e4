"""A graceful restart that clients ride through: 32 clients on AsyncTaskRunClient, the server
SIGTERMed mid-load and started again on the same port 2 s after it exits. No call may fail
(before, 27 came back CANCELLED and 32 ran out of retries), and nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import signal
import time

from devtools.server_processes import free_port, start_server_process, wait_until_serving
from tests.faults.checks import assert_nothing_acknowledged_was_lost, scheduled_left
from tests.faults.load import Load, until_acknowledged_beyond


async def test_clients_ride_through_a_graceful_restart(database_url: str) -> None:
    port = free_port()
    target = f"127.0.0.1:{port}"
    settings = {"LEASE_SECONDS": "1", "DELIVERY_POLL_SECONDS": "0.2"}
    first = start_server_process(database_url, port, **settings)
    second = None
    try:
        await asyncio.to_thread(wait_until_serving, target, time.monotonic() + 60)
        load = Load(target, drivers=32)
        record = load.record
        await asyncio.sleep(1.5)
        first.send_signal(signal.SIGTERM)
        await asyncio.to_thread(first.wait, 30)
        stopped_with = len(record.run_ids)
        await asyncio.sleep(2.0)
        second = start_server_process(database_url, port, **settings)
        await asyncio.to_thread(wait_until_serving, target, time.monotonic() + 60)
        recovered = await until_acknowledged_beyond(record, stopped_with + 20)
        await load.finish()
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)

    print(
        f"\ngraceful restart: {len(record.run_ids)} runs ({stopped_with} before the stop); "
        f"20 more acknowledged {recovered:.2f}s after the restart"
    )
    assert record.failures == []
    assert 0 < stopped_with < len(record.run_ids), "the load ran on both sides of the restart"
    assert_nothing_acknowledged_was_lost(database_url, record)
    assert scheduled_left(database_url, record) == 0
