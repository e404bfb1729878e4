"""A Node.js service (@grpc/grpc-js + @grpc/proto-loader) uses the contract as published.

The script loads protos/ at run time with no generated code, so a field or enum that only
works from Python would show up here.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from taskrun_server.server import RunningServer

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("taskrun_client.mjs")
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None or not (ROOT / "node_modules" / "@grpc" / "grpc-js").exists(),
    reason="needs Node.js and `npm install` (CI and `make test` do it when npm is present)",
)


@pytest.fixture
async def node_report(fresh_server: RunningServer) -> dict[str, Any]:
    """Run the Node client once against the server and return what it printed."""
    assert NODE is not None
    process = await asyncio.create_subprocess_exec(
        NODE,
        str(SCRIPT),
        f"127.0.0.1:{fresh_server.port}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    report: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return report


async def test_node_drives_a_run_through_its_states(node_report: dict[str, Any]) -> None:
    assert node_report["driven"]["states"] == [
        "STATE_TYPE_PENDING",
        "STATE_TYPE_RUNNING",
        "STATE_TYPE_COMPLETED",
    ]


async def test_node_consumes_one_scheduled_task_from_the_stream(
    node_report: dict[str, Any], task_runs: Any
) -> None:
    from taskrun.v1 import task_run_service_pb2 as service

    delivered = node_report["delivered"]
    assert delivered["delivery_count"] == 1
    read = await task_runs.ReadTaskRun(service.ReadTaskRunRequest(task_run_id=delivered["id"]))
    assert read.task_run.state.name == "Pending"


async def test_node_reads_the_bad_field_from_the_error_details(
    node_report: dict[str, Any],
) -> None:
    invalid = node_report["invalid"]
    assert invalid["code"] == "INVALID_ARGUMENT"
    assert [v["field"] for v in invalid["violations"]] == ["task_run_id"]
    assert "not a UUID" in invalid["violations"][0]["description"]
    assert (invalid["reason"], invalid["domain"]) == ("INVALID_FIELD", "taskrun")


async def test_parameters_from_node_reach_a_python_worker_as_arguments(
    node_report: dict[str, Any], fresh_server: RunningServer
) -> None:
    from taskrun.v1 import state_pb2
    from taskrun_client import AsyncTaskRunClient, ClientConfig, TaskWorker

    config = ClientConfig(target=f"127.0.0.1:{fresh_server.port}")
    worker = TaskWorker(config)

    @worker.task("polyglot-add")
    def add(a: float, b: float, label: str) -> dict[str, Any]:
        return {"sum": a + b, "label": label}

    serving = asyncio.ensure_future(worker.serve())
    try:
        for _ in range(200):
            if worker.completed:
                break
            await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await asyncio.wait_for(serving, 30)
    async with AsyncTaskRunClient(config) as client:
        run = await client.read_task_run(node_report["submitted"]["id"])
    assert run.state_type == state_pb2.STATE_TYPE_COMPLETED
    result = run.state.data.struct_value.fields
    assert (result["sum"].number_value, result["label"].string_value) == (42, "from node")
