"""Fixtures: a fresh Postgres database per test session and a real gRPC server on a real port.

The database is TASKRUN_TEST_DATABASE_URL's server when that is set (CI uses the machine's
Postgres), otherwise an embedded Postgres, so `make test` needs nothing installed. Either way a
new database is created for the run and dropped at its end.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from sqlalchemy import text

from devtools.scratch_database import scratch_database
from taskrun.v1 import concurrency_limits_pb2_grpc, resources_pb2_grpc, task_run_service_pb2_grpc
from taskrun_server.server import RunningServer, start_server
from taskrun_server.settings import Settings

if TYPE_CHECKING:
    from tests.factories import (
        DeploymentStub,
        FlowRunStub,
        FlowStub,
        LimitStub,
        LogStub,
        TaskRunStub,
    )

TABLES = (
    "log",
    "task_run_state_cache",
    "task_run_state",
    "task_run",
    "flow_run",
    "deployment",
    "flow",
    "concurrency_limit",
)


def _admin_url() -> tuple[str, Any]:
    configured = os.environ.get("TASKRUN_TEST_DATABASE_URL")
    if configured:
        return configured, None
    from taskrun_server.database.embedded import start_embedded_postgres

    data_dir = Path(tempfile.mkdtemp(prefix="taskrun-test-pg-"))
    return start_embedded_postgres(data_dir)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A freshly created, migrated database, dropped when the session ends."""
    admin_url, embedded = _admin_url()
    with scratch_database(admin_url, "taskrun_test") as url:
        yield url
    del embedded  # an embedded server lives as long as this reference


@pytest.fixture(scope="session")
async def server(database_url: str) -> AsyncIterator[RunningServer]:
    # A short lease, poll and reaper period so that redelivery and reaping are quick to observe.
    settings = Settings(
        database_url=database_url,
        host="127.0.0.1",
        port=0,
        lease_seconds=2,
        delivery_poll_seconds=0.2,
        reaper_interval_seconds=0.2,
        concurrency_slot_wait_seconds=0.3,
        metrics_port=0,
        dashboard_port=0,
        metrics_refresh_seconds=0.2,
    )
    running = await start_server(settings, database_url)
    yield running
    await running.stop(grace=1.0)


@pytest.fixture(scope="session")
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


@pytest.fixture
async def fresh_server(server: RunningServer) -> RunningServer:
    """The session's server, with every table emptied: each test starts from nothing."""
    async with server.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
    return server


@pytest.fixture
def task_runs(channel: grpc.aio.Channel, fresh_server: RunningServer) -> TaskRunStub:
    return task_run_service_pb2_grpc.TaskRunServiceStub(channel)


@pytest.fixture
def flows(channel: grpc.aio.Channel, fresh_server: RunningServer) -> FlowStub:
    return resources_pb2_grpc.FlowServiceStub(channel)


@pytest.fixture
def flow_runs(channel: grpc.aio.Channel, fresh_server: RunningServer) -> FlowRunStub:
    return resources_pb2_grpc.FlowRunServiceStub(channel)


@pytest.fixture
def deployments(channel: grpc.aio.Channel, fresh_server: RunningServer) -> DeploymentStub:
    return resources_pb2_grpc.DeploymentServiceStub(channel)


@pytest.fixture
def logs(channel: grpc.aio.Channel, fresh_server: RunningServer) -> LogStub:
    return resources_pb2_grpc.LogServiceStub(channel)


@pytest.fixture
def limits(channel: grpc.aio.Channel, fresh_server: RunningServer) -> LimitStub:
    return concurrency_limits_pb2_grpc.ConcurrencyLimitServiceStub(channel)
