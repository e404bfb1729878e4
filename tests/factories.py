"""Small builders that keep tests about behaviour, not about protobuf plumbing."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_reflection.v1alpha import reflection_pb2

from taskrun.v1 import (
    concurrency_limits_pb2_grpc,
    resources_pb2,
    resources_pb2_grpc,
    state_pb2,
    task_run_pb2,
    task_run_service_pb2,
    task_run_service_pb2_grpc,
)

if TYPE_CHECKING:
    TaskRunStub = task_run_service_pb2_grpc.TaskRunServiceAsyncStub
    FlowStub = resources_pb2_grpc.FlowServiceAsyncStub
    FlowRunStub = resources_pb2_grpc.FlowRunServiceAsyncStub
    DeploymentStub = resources_pb2_grpc.DeploymentServiceAsyncStub
    LogStub = resources_pb2_grpc.LogServiceAsyncStub
    LimitStub = concurrency_limits_pb2_grpc.ConcurrencyLimitServiceAsyncStub
else:  # the *AsyncStub names exist only in the generated .pyi files
    TaskRunStub = task_run_service_pb2_grpc.TaskRunServiceStub
    FlowStub = resources_pb2_grpc.FlowServiceStub
    FlowRunStub = resources_pb2_grpc.FlowRunServiceStub
    DeploymentStub = resources_pb2_grpc.DeploymentServiceStub
    LogStub = resources_pb2_grpc.LogServiceStub
    LimitStub = concurrency_limits_pb2_grpc.ConcurrencyLimitServiceStub


def ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


def at(value: Timestamp) -> datetime:
    return value.ToDatetime(tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)


def scheduled(when: datetime) -> state_pb2.StateCreate:
    return state_pb2.StateCreate(
        type=state_pb2.STATE_TYPE_SCHEDULED,
        state_details=state_pb2.StateDetails(scheduled_time=ts(when)),
    )


def state(kind: int, name: str = "") -> state_pb2.StateCreate:
    return state_pb2.StateCreate(type=kind, name=name)  # type: ignore[arg-type]


async def create_run(stub: TaskRunStub, **fields: Any) -> task_run_pb2.TaskRun:
    """Create a run with a unique key unless the test names one."""
    fields.setdefault("task_key", "task")
    fields.setdefault("dynamic_key", uuid.uuid4().hex)
    response = await stub.CreateTaskRun(task_run_service_pb2.CreateTaskRunRequest(**fields))
    return response.task_run


async def create_flow_run(
    flows: FlowStub,
    flow_runs: FlowRunStub,
    *,
    flow_name: str = "etl",
    **fields: Any,
) -> resources_pb2.FlowRun:
    flow = (await flows.CreateFlow(resources_pb2.CreateFlowRequest(name=flow_name))).flow
    request = resources_pb2.CreateFlowRunRequest(flow_id=flow.id, **fields)
    return (await flow_runs.CreateFlowRun(request)).flow_run


async def expect_status(call: Awaitable[Any], code: grpc.StatusCode, field: str = "") -> str:
    """Await a call that must fail with `code`; the message must name `field` if given."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    details = caught.value.details() or ""
    if field:
        assert field in details, details
    return details


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


async def propose(
    stub: TaskRunStub, run_id: str, proposal: state_pb2.StateCreate, *, force: bool = False
) -> task_run_service_pb2.SetTaskRunStateResponse:
    return await stub.SetTaskRunState(
        task_run_service_pb2.SetTaskRunStateRequest(task_run_id=run_id, state=proposal, force=force)
    )


async def history(stub: TaskRunStub, run_id: str) -> list[state_pb2.State]:
    response = await stub.ReadTaskRunStates(
        task_run_service_pb2.ReadTaskRunStatesRequest(task_run_id=run_id)
    )
    return list(response.states)


def reflection_stream(channel: grpc.aio.Channel, package: str) -> Any:
    """The reflection stream under either protocol name: v1 and v1alpha share their messages."""
    return channel.stream_stream(
        f"/{package}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
