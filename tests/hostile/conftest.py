"""A real server process for hostile traffic, on the session's database, emptied first, with a
few rows whose ids the strategies reuse so that random requests reach past the validators."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import psycopg
import pytest

from devtools.scratch_database import libpq_url
from taskrun.v1 import (
    resources_pb2,
    resources_pb2_grpc,
    state_pb2,
    task_run_service_pb2,
    task_run_service_pb2_grpc,
)
from tests.conftest import TABLES
from tests.processes import server_process


@pytest.fixture(scope="module")
def hostile_target(database_url: str) -> Iterator[str]:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
    with server_process(database_url, CONCURRENCY_SLOT_WAIT_SECONDS="0.1") as target:
        yield target


@pytest.fixture(scope="module")
def channel(hostile_target: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(hostile_target) as channel:
        yield channel


@pytest.fixture(scope="module")
def known_ids(channel: grpc.Channel) -> list[str]:
    """Ids of a flow, a flow run and runs in several states, for requests to point at."""
    runs = task_run_service_pb2_grpc.TaskRunServiceStub(channel)
    flows = resources_pb2_grpc.FlowServiceStub(channel)
    flow_runs = resources_pb2_grpc.FlowRunServiceStub(channel)
    flow = flows.CreateFlow(resources_pb2.CreateFlowRequest(name="hostile")).flow
    flow_run = flow_runs.CreateFlowRun(resources_pb2.CreateFlowRunRequest(flow_id=flow.id))
    ids = [flow.id, flow_run.flow_run.id]
    for n, kind in enumerate(
        [state_pb2.STATE_TYPE_PENDING, state_pb2.STATE_TYPE_RUNNING, state_pb2.STATE_TYPE_SCHEDULED]
    ):
        created = runs.CreateTaskRun(
            task_run_service_pb2.CreateTaskRunRequest(
                task_key="hostile", dynamic_key=str(n), state=state_pb2.StateCreate(type=kind)
            )
        )
        ids += [created.task_run.id, created.task_run.state.id]
    return ids
