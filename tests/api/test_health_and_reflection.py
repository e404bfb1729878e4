"""Health checking and server reflection (v1 and v1alpha) are always on."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from tests.factories import reflection_stream

# The two protocols' messages are identical on the wire; only the service name differs.
SERVING = health_pb2.HealthCheckResponse.SERVING
PROTOCOLS = ("grpc.reflection.v1", "grpc.reflection.v1alpha")


async def reflect(
    channel: grpc.aio.Channel, package: str, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    call = reflection_stream(channel, package)
    responses = [response async for response in call(iter([request]))]
    assert len(responses) == 1
    response: reflection_pb2.ServerReflectionResponse = responses[0]
    return response


async def test_health_reports_serving_overall_and_per_service(channel: grpc.aio.Channel) -> None:
    stub: Any = health_pb2_grpc.HealthStub(channel)  # the stub packages omit its methods
    for service in ("", "taskrun.v1.TaskRunService"):
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("package", PROTOCOLS)
async def test_reflection_lists_every_service(channel: grpc.aio.Channel, package: str) -> None:
    response = await reflect(
        channel, package, reflection_pb2.ServerReflectionRequest(list_services="")
    )
    services = {s.name for s in response.list_services_response.service}
    assert {
        "taskrun.v1.TaskRunService",
        "taskrun.v1.FlowService",
        "taskrun.v1.FlowRunService",
        "taskrun.v1.DeploymentService",
        "taskrun.v1.LogService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= services


@pytest.mark.parametrize("package", PROTOCOLS)
async def test_reflection_describes_the_task_run_message(
    channel: grpc.aio.Channel, package: str
) -> None:
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol="taskrun.v1.TaskRun")
    response = await reflect(channel, package, request)
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in response.file_descriptor_response.file_descriptor_proto
    ]
    assert "taskrun/v1/task_run.proto" in {f.name for f in files}


@pytest.mark.parametrize("package", PROTOCOLS)
async def test_reflection_describes_the_contract_with_its_comments(
    channel: grpc.aio.Channel, package: str
) -> None:
    """`grpcurl describe` shows the comments of the .proto files: the descriptors carry them."""
    request = reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="taskrun.v1.TaskRunService"
    )
    response = await reflect(channel, package, request)
    files = {
        f.name: f
        for f in map(
            descriptor_pb2.FileDescriptorProto.FromString,
            response.file_descriptor_response.file_descriptor_proto,
        )
    }
    comments = " ".join(
        location.leading_comments
        for location in files["taskrun/v1/task_run_service.proto"].source_code_info.location
    )
    assert "Proposes a new state for a task run" in comments
    assert "Streams task runs as their states change" in comments


async def test_reflection_describes_its_own_v1_service(channel: grpc.aio.Channel) -> None:
    """The v1 service is listed, so it must be describable too, and in its own package."""
    request = reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="grpc.reflection.v1.ServerReflection"
    )
    response = await reflect(channel, "grpc.reflection.v1", request)
    (raw,) = response.file_descriptor_response.file_descriptor_proto
    file = descriptor_pb2.FileDescriptorProto.FromString(raw)
    method = file.service[0].method[0]
    assert (file.package, method.input_type) == (
        "grpc.reflection.v1",
        ".grpc.reflection.v1.ServerReflectionRequest",
    )


async def test_reflection_reports_an_unknown_symbol(channel: grpc.aio.Channel) -> None:
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.such.Thing")
    response = await reflect(channel, "grpc.reflection.v1", request)
    assert response.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


async def test_health_watch_streams_the_status(channel: grpc.aio.Channel) -> None:
    """Client-side health checking in gRPC uses Watch: it must answer, not fail INTERNAL."""
    stub: Any = health_pb2_grpc.HealthStub(channel)
    call = stub.Watch(health_pb2.HealthCheckRequest(service="taskrun.v1.TaskRunService"))
    try:
        first = await call.read()
    finally:
        call.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("package", PROTOCOLS)
async def test_corrupt_bytes_on_the_reflection_stream_are_invalid_argument(
    channel: grpc.aio.Channel, package: str
) -> None:
    call = channel.stream_stream(
        f"/{package}.ServerReflection/ServerReflectionInfo",
        request_serializer=lambda raw: raw,
        response_deserializer=lambda raw: raw,
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _ in call(iter([b"\xff\xff\xff"])):
            pass
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "corrupt protobuf" in (refused.value.details() or "")


async def test_health_list_names_every_service_and_its_status(channel: grpc.aio.Channel) -> None:
    """grpcio-health-checking leaves List unimplemented (it answered INTERNAL here)."""
    call = channel.unary_unary(
        "/grpc.health.v1.Health/List",
        request_serializer=lambda raw: raw,
        response_deserializer=lambda raw: raw,
    )
    response: Any = getattr(health_pb2, "HealthListResponse").FromString(await call(b""))  # noqa: B009
    statuses = {name: status.status for name, status in response.statuses.items()}
    assert statuses[""] == statuses["taskrun.v1.TaskRunService"] == SERVING
