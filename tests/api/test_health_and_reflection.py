"""Health checking and server reflection are always on."""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


async def test_health_reports_serving_overall_and_per_service(channel: grpc.aio.Channel) -> None:
    stub: Any = health_pb2_grpc.HealthStub(channel)  # the stub packages omit its methods
    for service in ("", "taskrun.v1.TaskRunService"):
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_every_service(channel: grpc.aio.Channel) -> None:
    stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[arg-type]
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    services: set[str] = set()
    async for response in stub.ServerReflectionInfo(iter([request])):
        services |= {s.name for s in response.list_services_response.service}
    assert {
        "taskrun.v1.TaskRunService",
        "taskrun.v1.FlowService",
        "taskrun.v1.FlowRunService",
        "taskrun.v1.DeploymentService",
        "taskrun.v1.LogService",
        "grpc.health.v1.Health",
    } <= services


async def test_reflection_describes_the_task_run_message(channel: grpc.aio.Channel) -> None:
    stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[arg-type]
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol="taskrun.v1.TaskRun")
    async for response in stub.ServerReflectionInfo(iter([request])):
        files = response.file_descriptor_response.file_descriptor_proto
        assert files, response
