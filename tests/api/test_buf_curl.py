"""Drive the running server with `buf curl` (npm @bufbuild/buf) through reflection alone, as
an operator with no .proto files would."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from taskrun_server.server import RunningServer

BUF = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "buf"

pytestmark = pytest.mark.skipif(
    not BUF.exists() or shutil.which("node") is None,
    reason="buf is installed by `npm install` (CI does it); without it there is no buf curl",
)


async def buf_curl(server: RunningServer, *args: str) -> str:
    """Run buf curl without blocking the event loop, which the in-process server shares."""
    base = f"http://127.0.0.1:{server.port}"
    command = [str(BUF), "curl", "--protocol", "grpc", "--http2-prior-knowledge", *args]
    process = await asyncio.create_subprocess_exec(
        *[arg.replace("BASE", base) for arg in command],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


@pytest.mark.parametrize("protocol", ["grpc-v1", "grpc-v1alpha"])
async def test_lists_every_service_through_reflection(
    fresh_server: RunningServer, protocol: str
) -> None:
    services = (
        await buf_curl(fresh_server, "--reflect-protocol", protocol, "--list-services", "BASE")
    ).split()
    assert {"taskrun.v1.TaskRunService", "grpc.health.v1.Health"} <= set(services)


async def test_lists_the_task_run_methods(fresh_server: RunningServer) -> None:
    methods = (await buf_curl(fresh_server, "--list-methods", "BASE")).split()
    assert "taskrun.v1.TaskRunService/ReadTaskRuns" in methods
    assert "taskrun.v1.TaskRunService/SubscribeScheduledTasks" in methods


async def test_describes_a_message_through_the_reflection_stream(
    fresh_server: RunningServer,
) -> None:
    """buf curl has no `describe`; it can still ask reflection, as grpcurl's describe does."""
    answer = json.loads(
        await buf_curl(
            fresh_server,
            "-d",
            json.dumps({"file_containing_symbol": "taskrun.v1.TaskRun"}),
            "BASE/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        )
    )
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(encoded))
        for encoded in answer["fileDescriptorResponse"]["fileDescriptorProto"]
    ]
    task_run = next(
        message
        for file in files
        if file.package == "taskrun.v1"
        for message in file.message_type
        if message.name == "TaskRun"
    )
    fields = {field.name for field in task_run.field}
    assert {"id", "task_key", "dynamic_key", "state_type", "run_count", "tags"} <= fields


async def test_creates_and_reads_task_runs_with_json(fresh_server: RunningServer) -> None:
    created = json.loads(
        await buf_curl(
            fresh_server,
            "-d",
            json.dumps({"task_key": "curl", "dynamic_key": "0", "tags": ["ops"]}),
            "BASE/taskrun.v1.TaskRunService/CreateTaskRun",
        )
    )
    read = json.loads(
        await buf_curl(
            fresh_server,
            "-d",
            json.dumps({"task_runs": {"tags": {"all": ["ops"]}}}),
            "BASE/taskrun.v1.TaskRunService/ReadTaskRuns",
        )
    )
    assert [run["id"] for run in read["taskRuns"]] == [created["taskRun"]["id"]]
    assert read["taskRuns"][0]["stateType"] == "STATE_TYPE_PENDING"
