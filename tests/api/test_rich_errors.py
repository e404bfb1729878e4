"""Every error carries a google.rpc.Status in its trailers (AIP-193): an ErrorInfo with a
reason, the field violations of a bad request, and a retry delay where the server knows one."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from taskrun.v1 import state_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from tests.factories import TaskRunStub, create_run, state


def rich_details(error: grpc.aio.AioRpcError) -> dict[str, Any]:
    """The details of an error's google.rpc.Status, by message type."""
    trailers = dict(error.trailing_metadata() or ())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert status.code == error.code().value[0]
    assert status.message == error.details()
    found: dict[str, Any] = {}
    for kind in (
        error_details_pb2.ErrorInfo,
        error_details_pb2.BadRequest,
        error_details_pb2.RetryInfo,
    ):
        for detail in status.details:
            message = kind()
            if detail.Unpack(message):
                found[kind.DESCRIPTOR.name] = message
    return found


async def failure(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_a_bad_field_is_named_in_a_field_violation(task_runs: TaskRunStub) -> None:
    error = await failure(task_runs.ReadTaskRun(pb.ReadTaskRunRequest(task_run_id="nope")))
    details = rich_details(error)
    (violation,) = details["BadRequest"].field_violations
    assert violation.field == "task_run_id"
    assert "not a UUID" in violation.description
    info = details["ErrorInfo"]
    assert (info.reason, info.domain, info.metadata["field"]) == (
        "INVALID_FIELD",
        "taskrun",
        "task_run_id",
    )


async def test_a_bad_field_deep_in_a_batch_is_named_by_its_path(task_runs: TaskRunStub) -> None:
    request = pb.BatchCreateTaskRunsRequest(
        requests=[
            pb.CreateTaskRunRequest(task_key="k", dynamic_key="1"),
            pb.CreateTaskRunRequest(task_key="k", dynamic_key=""),
        ]
    )
    details = rich_details(await failure(task_runs.BatchCreateTaskRuns(request)))
    assert [v.field for v in details["BadRequest"].field_violations] == ["requests[1].dynamic_key"]


async def test_an_unknown_run_is_not_found_with_a_reason(task_runs: TaskRunStub) -> None:
    missing = str(uuid.uuid4())
    error = await failure(task_runs.ReadTaskRun(pb.ReadTaskRunRequest(task_run_id=missing)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    details = rich_details(error)
    assert details["ErrorInfo"].reason == "NOT_FOUND"
    assert "BadRequest" not in details


async def test_a_taken_id_is_already_exists(task_runs: TaskRunStub) -> None:
    taken = await create_run(task_runs)
    request = pb.CreateTaskRunRequest(task_key="other", dynamic_key="x", id=taken.id)
    error = await failure(task_runs.CreateTaskRun(request))
    assert rich_details(error)["ErrorInfo"].reason == "ALREADY_EXISTS"


async def test_corrupt_bytes_are_a_malformed_request(channel: grpc.aio.Channel) -> None:
    call = channel.unary_unary(
        "/taskrun.v1.TaskRunService/ReadTaskRun",
        request_serializer=lambda raw: raw,
        response_deserializer=lambda raw: raw,
    )
    details = rich_details(await failure(call(b"\xff\xff\xff")))
    assert details["ErrorInfo"].reason == "MALFORMED_REQUEST"
    assert details["BadRequest"].field_violations[0].field == "request"


async def test_a_batch_item_error_carries_the_same_details(task_runs: TaskRunStub) -> None:
    request = pb.BatchSetTaskRunStatesRequest(
        requests=[
            pb.SetTaskRunStateRequest(
                task_run_id=str(uuid.uuid4()), state=state(state_pb2.STATE_TYPE_RUNNING)
            )
        ]
    )
    (result,) = (await task_runs.BatchSetTaskRunStates(request)).results
    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in result.error.details)
    assert (info.reason, info.metadata["field"]) == ("NOT_FOUND", "task_run_id")
