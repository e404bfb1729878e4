"""The Prometheus endpoint: per-RPC counts by code, latency, subscribers and the backlog."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable

import grpc
from prometheus_client.parser import text_string_to_metric_families

from taskrun.v1 import state_pb2, task_run_service_pb2
from taskrun_server.server import RunningServer
from tests.factories import TaskRunStub, create_run, expect_status, now, scheduled

SERVICE = "/taskrun.v1.TaskRunService/"


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


async def sample(server: RunningServer, name: str, **labels: str) -> float:
    """One sample's value from a real scrape over HTTP (0 when the series does not exist)."""
    assert server.metrics_port is not None
    text = await asyncio.to_thread(_scrape, server.metrics_port)
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


async def eventually(read: Callable[[], object], expected: float, seconds: float = 5) -> None:
    """Poll a gauge until it shows `expected` (gauges refresh in the background)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    value: object = None
    while loop.time() < deadline:
        value = await read()  # type: ignore[misc]
        if value == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {expected}, last saw {value}")


def unary(method: str) -> dict[str, str]:
    """The standard labels (go-grpc-prometheus's) of one of TaskRunService's unary methods."""
    return {
        "grpc_type": "unary",
        "grpc_service": SERVICE.strip("/"),
        "grpc_method": method,
    }


async def test_counts_rpcs_under_the_standard_grpc_names(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    ok = unary("CreateTaskRun") | {"grpc_code": "OK"}
    invalid = unary("ReadTaskRun") | {"grpc_code": "INVALID_ARGUMENT"}
    ok_before = await sample(fresh_server, "grpc_server_handled_total", **ok)
    invalid_before = await sample(fresh_server, "grpc_server_handled_total", **invalid)
    started_before = await sample(
        fresh_server, "grpc_server_started_total", **unary("CreateTaskRun")
    )

    await create_run(task_runs)
    await create_run(task_runs)
    await expect_status(
        task_runs.ReadTaskRun(task_run_service_pb2.ReadTaskRunRequest(task_run_id="nope")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )

    assert await sample(fresh_server, "grpc_server_handled_total", **ok) == ok_before + 2
    assert await sample(fresh_server, "grpc_server_handled_total", **invalid) == invalid_before + 1
    started = await sample(fresh_server, "grpc_server_started_total", **unary("CreateTaskRun"))
    assert started == started_before + 2


async def test_times_calls_in_the_standard_histogram(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    labels = unary("CountTaskRuns")
    before = await sample(fresh_server, "grpc_server_handling_seconds_count", **labels)
    sent_before = await sample(fresh_server, "grpc_server_msg_sent_total", **labels)
    await task_runs.CountTaskRuns(task_run_service_pb2.CountTaskRunsRequest())
    after = await sample(fresh_server, "grpc_server_handling_seconds_count", **labels)
    assert after == before + 1
    assert await sample(fresh_server, "grpc_server_handling_seconds_sum", **labels) > 0
    assert await sample(fresh_server, "grpc_server_msg_sent_total", **labels) == sent_before + 1


async def test_exports_the_process_metrics(fresh_server: RunningServer) -> None:
    assert await sample(fresh_server, "process_cpu_seconds_total") > 0
    assert await sample(fresh_server, "process_resident_memory_bytes") > 0
    assert await sample(fresh_server, "python_gc_objects_collected_total", generation="0") >= 0


async def test_gauges_open_subscriptions_and_counts_deliveries(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    deliveries_before = await sample(fresh_server, "taskrun_deliveries_total")
    stream = task_runs.SubscribeScheduledTasks(
        task_run_service_pb2.SubscribeScheduledTasksRequest(task_keys=["metered"])
    )
    await eventually(lambda: sample(fresh_server, "taskrun_active_subscribers"), 1)
    await create_run(task_runs, task_key="metered", state=scheduled(now()))
    await stream.read()
    assert await sample(fresh_server, "taskrun_deliveries_total") == deliveries_before + 1
    stream.cancel()
    await eventually(lambda: sample(fresh_server, "taskrun_active_subscribers"), 0)


async def test_gauges_queued_and_leased_scheduled_runs(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    for _ in range(3):
        await create_run(task_runs, task_key="backlog", state=scheduled(now()))
    await eventually(lambda: sample(fresh_server, "taskrun_queued_task_runs"), 3)

    stream = task_runs.SubscribeScheduledTasks(
        task_run_service_pb2.SubscribeScheduledTasksRequest(task_keys=["backlog"], prefetch=1)
    )
    delivered = await stream.read()
    assert isinstance(delivered, task_run_service_pb2.SubscribeScheduledTasksResponse)
    await eventually(lambda: sample(fresh_server, "taskrun_leased_task_runs"), 1)
    await eventually(lambda: sample(fresh_server, "taskrun_queued_task_runs"), 2)

    await task_runs.SetTaskRunState(
        task_run_service_pb2.SetTaskRunStateRequest(
            task_run_id=delivered.task_run.id,
            state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_PENDING),
        )
    )
    stream.cancel()
    await eventually(lambda: sample(fresh_server, "taskrun_leased_task_runs"), 0)
