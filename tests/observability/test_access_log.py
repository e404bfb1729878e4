"""The access log: one structured record per RPC, and its JSON rendering."""

from __future__ import annotations

import json
import logging

import grpc
import pytest

from taskrun.v1 import task_run_service_pb2
from taskrun_server.observability.log_format import JsonFormatter, KeyValueFormatter
from taskrun_server.server import RunningServer
from tests.factories import TaskRunStub, create_run, expect_status

ACCESS = "taskrun_server.access"


def access_records(caplog: pytest.LogCaptureFixture, method: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == ACCESS and getattr(record, "rpc", "").endswith(method)
    ]


async def test_logs_the_rpc_code_latency_and_task_run_id(
    task_runs: TaskRunStub, fresh_server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS):
        run = await create_run(task_runs)
        await task_runs.ReadTaskRun(task_run_service_pb2.ReadTaskRunRequest(task_run_id=run.id))

    created = access_records(caplog, "/CreateTaskRun")[-1]
    read = access_records(caplog, "/ReadTaskRun")[-1]
    assert created.__dict__["task_run_id"] == run.id  # taken from the response
    assert read.__dict__["task_run_id"] == run.id  # taken from the request
    assert read.__dict__["code"] == "OK"
    assert read.__dict__["latency_ms"] > 0


async def test_logs_the_status_a_rejected_call_received(
    task_runs: TaskRunStub, fresh_server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS):
        await expect_status(
            task_runs.DeleteTaskRun(task_run_service_pb2.DeleteTaskRunRequest(task_run_id="x")),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
    record = access_records(caplog, "/DeleteTaskRun")[-1]
    assert record.__dict__["code"] == "INVALID_ARGUMENT"
    assert record.levelno == logging.INFO  # the caller's mistake is not the server's warning


def _record(**extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": ACCESS, "msg": "rpc finished", "levelname": "INFO"})
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_the_extra_fields_at_top_level() -> None:
    line = JsonFormatter().format(_record(rpc="/x/Y", code="OK", latency_ms=1.5, task_run_id="r"))
    entry = json.loads(line)
    assert entry["message"] == "rpc finished"
    assert (entry["rpc"], entry["code"], entry["latency_ms"], entry["task_run_id"]) == (
        "/x/Y",
        "OK",
        1.5,
        "r",
    )


def test_text_lines_append_the_extra_fields_as_key_value() -> None:
    line = KeyValueFormatter().format(_record(rpc="/x/Y", code="NOT_FOUND"))
    assert line.endswith("rpc finished rpc=/x/Y code=NOT_FOUND")
