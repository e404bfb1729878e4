"""Postgres crashes and comes back in the middle of a load: the server recovers by itself,
health says NOT_SERVING while the database is gone, and nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.faults.checks import assert_nothing_acknowledged_was_lost, scheduled_left
from tests.faults.load import Load, until_acknowledged_beyond
from tests.faults.private_postgres import PrivatePostgres
from tests.processes import server_process


async def health_of(target: str) -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)  # the stub packages omit its methods
        answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
        return int(answer.status)


async def wait_for_health(target: str, status: int, seconds: float) -> float:
    """Seconds until health reports `status`."""
    started = time.monotonic()
    while (await health_of(target)) != status:
        assert time.monotonic() - started < seconds, f"health never became {status}"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_server_recovers_from_a_database_crash_without_losing_data(tmp_path: Path) -> None:
    postgres = PrivatePostgres(tmp_path / "pg")
    try:
        await _crash_in_the_middle_of_a_load(postgres)
    finally:
        await asyncio.to_thread(postgres.stop)


async def _crash_in_the_middle_of_a_load(postgres: PrivatePostgres) -> None:
    settings = {"HEALTH_CHECK_SECONDS": "0.3", "LEASE_SECONDS": "2", "DB_POOL_SIZE": "4"}
    with server_process(postgres.url, **settings) as target:
        load = Load(target, drivers=3)
        record, delivered = load.record, load.delivered
        await asyncio.sleep(1.5)

        await asyncio.to_thread(postgres.crash)
        crashed_with = len(record.run_ids)
        to_not_serving = await wait_for_health(
            target, health_pb2.HealthCheckResponse.NOT_SERVING, 5
        )
        await asyncio.sleep(1.0)
        await asyncio.to_thread(postgres.start)
        to_serving = await wait_for_health(target, health_pb2.HealthCheckResponse.SERVING, 10)
        recovered = await until_acknowledged_beyond(record, crashed_with + 20)
        await load.finish()

    print(
        f"\ndatabase crash: NOT_SERVING after {to_not_serving:.2f}s, SERVING {to_serving:.2f}s "
        f"after restart; {len(record.run_ids)} runs ({crashed_with} before the crash), "
        f"{len(record.state_ids)} states, {len(delivered)} deliveries acknowledged; "
        f"20 more runs acknowledged {recovered:.2f}s after the restart"
    )
    assert record.failures == []
    assert 0 < crashed_with < len(record.run_ids), "the load ran on both sides of the crash"
    assert_nothing_acknowledged_was_lost(postgres.url, record)
    assert record.scheduled_run_ids <= delivered, "a scheduled task was never delivered"
    assert scheduled_left(postgres.url, record) == 0
