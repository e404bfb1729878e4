"""OpenTelemetry: off by default; with the standard OTEL_* variables, a span per RPC continuing
the caller's trace, and state proposals linked to the trace their traceparent names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import grpc

from devtools.server_processes import free_port, wait_until_serving
from taskrun.v1 import state_pb2, task_run_service_pb2_grpc
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_server.observability.tracing import provider_from_environment

CALLER_TRACE = uuid.uuid4().hex
CALLER_SPAN = uuid.uuid4().hex[:16]
TASK_TRACE = uuid.uuid4().hex
TASK_SPAN = uuid.uuid4().hex[:16]


def spans_of(output: str) -> list[dict[str, Any]]:
    """The console exporter's spans: one JSON object each, pretty-printed one after another."""
    decoder, spans, at = json.JSONDecoder(), [], output.find("{")
    while at != -1:
        span, end = decoder.raw_decode(output, at)
        if isinstance(span, dict) and "context" in span:
            spans.append(span)
        at = output.find("{", end)
    return spans


def traced_server_run(database_url: str) -> str:
    """A server process exporting spans to its stdout; one create and one proposal through it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKRUN_", "OTEL_"))}
    env |= {
        "TASKRUN_DATABASE_URL": database_url,
        "TASKRUN_PORT": str(port),
        "TASKRUN_METRICS_PORT": "0",
        "TASKRUN_DASHBOARD_PORT": "0",
        "TASKRUN_LOG_LEVEL": "WARNING",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_SERVICE_NAME": "taskrun-under-test",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "taskrun_server.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_until_serving(f"127.0.0.1:{port}", time.monotonic() + 60)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub: Any = task_run_service_pb2_grpc.TaskRunServiceStub(channel)
            caller = (("traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"),)
            created = stub.CreateTaskRun(
                pb.CreateTaskRunRequest(task_key="traced", dynamic_key=uuid.uuid4().hex),
                metadata=caller,
            )
            running = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING)
            running.state_details.traceparent = f"00-{TASK_TRACE}-{TASK_SPAN}-01"
            stub.SetTaskRunState(
                pb.SetTaskRunStateRequest(task_run_id=created.task_run.id, state=running)
            )
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    return output


def test_each_rpc_is_a_span_of_the_callers_trace_and_proposals_link_theirs(
    database_url: str,
) -> None:
    spans = spans_of(traced_server_run(database_url))
    by_name = {span["name"]: span for span in spans}
    create = by_name["/taskrun.v1.TaskRunService/CreateTaskRun"]
    assert create["context"]["trace_id"] == f"0x{CALLER_TRACE}"
    assert create["parent_id"] == f"0x{CALLER_SPAN}"
    assert create["resource"]["attributes"]["service.name"] == "taskrun-under-test"
    propose = by_name["taskrun.propose_state"]
    (link,) = propose["links"]
    assert link["context"]["trace_id"] == f"0x{TASK_TRACE}"
    set_state = by_name["/taskrun.v1.TaskRunService/SetTaskRunState"]
    assert propose["parent_id"] == set_state["context"]["span_id"]
    assert not any("grpc.health" in span["name"] for span in spans)


def test_tracing_is_off_unless_the_environment_asks() -> None:
    assert provider_from_environment({}) is None
    assert provider_from_environment({"OTEL_TRACES_EXPORTER": "none"}) is None
    disabled = {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}
    assert provider_from_environment(disabled) is None
    assert provider_from_environment({"OTEL_TRACES_EXPORTER": "console"}) is not None
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}
    assert provider_from_environment(endpoint) is not None
