"""TASKRUN_READ_DATABASE_URL: list and aggregate reads go to a real streaming standby, and see
the primary as of its replay; writes and single-run reads stay on the primary."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from taskrun.v1 import task_run_service_pb2 as pb
from taskrun.v1 import task_run_service_pb2_grpc
from taskrun_server.database.migrate import upgrade_to_head
from taskrun_server.server import RunningServer, start_server
from taskrun_server.settings import Settings
from tests.factories import TaskRunStub, create_run
from tests.faults.private_postgres import PrivatePostgres
from tests.faults.streaming_standby import StreamingStandby


@pytest.fixture
async def replicated(tmp_path: Path) -> AsyncIterator[tuple[TaskRunStub, StreamingStandby]]:
    primary = PrivatePostgres(tmp_path / "primary")
    standby: StreamingStandby | None = None
    running: RunningServer | None = None
    try:
        await asyncio.to_thread(upgrade_to_head, primary.url)
        standby = await asyncio.to_thread(StreamingStandby, primary, tmp_path / "standby")
        assert standby.is_standby()
        settings = Settings(
            database_url=primary.url,
            read_database_url=standby.url,
            host="127.0.0.1",
            port=0,
            metrics_enabled=False,
            dashboard_port=0,
        )
        running = await start_server(settings, primary.url)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield task_run_service_pb2_grpc.TaskRunServiceStub(channel), standby
    finally:
        if running is not None:
            await running.stop(grace=1.0)
        if standby is not None:
            await asyncio.to_thread(standby.stop)
        primary.stop()


async def counted(stub: TaskRunStub, key: str) -> int:
    request = pb.CountTaskRunsRequest()
    request.task_runs.name.like = key
    return (await stub.CountTaskRuns(request)).count


async def until_counted(stub: TaskRunStub, key: str, expected: int, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while await counted(stub, key) != expected:
        assert time.monotonic() < deadline, f"the standby never showed {expected} run(s)"
        await asyncio.sleep(0.05)


async def test_reads_see_the_primary_as_the_standby_has_replayed_it(
    replicated: tuple[TaskRunStub, StreamingStandby],
) -> None:
    stub, standby = replicated
    key = f"standby-{uuid.uuid4().hex[:8]}"
    await create_run(stub, name=f"{key}-first")
    await until_counted(stub, key, 1)

    standby.pause_replay()
    try:
        second = await create_run(stub, name=f"{key}-second")  # writes go to the primary
        alone = await stub.ReadTaskRun(pb.ReadTaskRunRequest(task_run_id=second.id))
        assert alone.task_run.name == f"{key}-second"  # a single read too
        await asyncio.sleep(0.5)
        assert await counted(stub, key) == 1  # the standby has not replayed it
        listed = await stub.ReadTaskRuns(pb.ReadTaskRunsRequest())
        assert second.id not in {r.id for r in listed.task_runs}
    finally:
        standby.resume_replay()
    await until_counted(stub, key, 2)
