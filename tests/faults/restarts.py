"""A load of retrying clients across a server restart on the same port: the scaffold the
restart fault tests share (how the first process stops is each test's own)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from devtools.server_processes import free_port, start_server_process, wait_until_serving
from tests.faults.load import Acknowledged, Load, until_acknowledged_beyond

SETTINGS = {"LEASE_SECONDS": "1", "DELIVERY_POLL_SECONDS": "0.2"}


@dataclass
class Restart:
    record: Acknowledged
    delivered: set[str]
    runs_before: int
    """Runs acknowledged when the first process was gone."""
    recovered_after: float
    """Seconds from the second process serving to 20 more runs acknowledged."""


async def across_a_restart(
    database_url: str,
    stop: Callable[[subprocess.Popen[bytes]], None],
    *,
    gap: float,
    drivers: int,
) -> Restart:
    """Run the load, `stop` the server mid-load and wait for it to exit, start a new one on
    the same port `gap` seconds later, and finish the load once it has served some more."""
    port = free_port()
    target = f"127.0.0.1:{port}"
    first = start_server_process(database_url, port, **SETTINGS)
    second = None
    try:
        await asyncio.to_thread(wait_until_serving, target, time.monotonic() + 60)
        load = Load(target, drivers=drivers)
        await asyncio.sleep(1.5)
        stop(first)
        await asyncio.to_thread(first.wait, 30)
        runs_before = len(load.record.run_ids)
        await asyncio.sleep(gap)
        second = start_server_process(database_url, port, **SETTINGS)
        await asyncio.to_thread(wait_until_serving, target, time.monotonic() + 60)
        recovered = await until_acknowledged_beyond(load.record, runs_before + 20)
        await load.finish()
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
    return Restart(load.record, load.delivered, runs_before, recovered)
