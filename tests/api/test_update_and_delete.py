"""UpdateTaskRun renames; DeleteTaskRun removes the run, its states and its logs together."""

from __future__ import annotations

import uuid

import grpc

from taskrun.v1 import resources_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from tests.factories import (
    LogStub,
    TaskRunStub,
    at,
    create_run,
    expect_status,
)


async def test_update_renames_and_keeps_everything_else(task_runs: TaskRunStub) -> None:
    run = await create_run(task_runs, name="old", tags=["t"])
    updated = (
        await task_runs.UpdateTaskRun(pb.UpdateTaskRunRequest(task_run_id=run.id, name="new"))
    ).task_run
    assert updated.name == "new"
    assert list(updated.tags) == ["t"] and updated.state == run.state
    assert at(updated.updated) >= at(run.updated)


async def test_update_without_fields_changes_nothing(task_runs: TaskRunStub) -> None:
    run = await create_run(task_runs, name="same")
    updated = (await task_runs.UpdateTaskRun(pb.UpdateTaskRunRequest(task_run_id=run.id))).task_run
    assert updated.name == "same" and updated.updated == run.updated


async def test_update_unknown_run_is_not_found(task_runs: TaskRunStub) -> None:
    request = pb.UpdateTaskRunRequest(task_run_id=str(uuid.uuid4()), name="x")
    await expect_status(task_runs.UpdateTaskRun(request), grpc.StatusCode.NOT_FOUND, "task_run_id")


async def test_update_rejects_an_empty_name(task_runs: TaskRunStub) -> None:
    run = await create_run(task_runs, name="keep")
    request = pb.UpdateTaskRunRequest(task_run_id=run.id, name="")
    await expect_status(task_runs.UpdateTaskRun(request), grpc.StatusCode.INVALID_ARGUMENT, "name")
    read = await task_runs.ReadTaskRun(pb.ReadTaskRunRequest(task_run_id=run.id))
    assert read.task_run.name == "keep"


async def test_delete_removes_run_states_and_logs(task_runs: TaskRunStub, logs: LogStub) -> None:
    doomed = await create_run(task_runs)
    kept = await create_run(task_runs)
    await logs.CreateLogs(
        resources_pb2.CreateLogsRequest(
            logs=[
                resources_pb2.LogCreate(name="l", level=20, message="bye", task_run_id=doomed.id),
                resources_pb2.LogCreate(name="l", level=20, message="stay", task_run_id=kept.id),
            ]
        )
    )
    await task_runs.DeleteTaskRun(pb.DeleteTaskRunRequest(task_run_id=doomed.id))

    await expect_status(
        task_runs.ReadTaskRun(pb.ReadTaskRunRequest(task_run_id=doomed.id)),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_status(
        task_runs.ReadTaskRunState(pb.ReadTaskRunStateRequest(state_id=doomed.state_id)),
        grpc.StatusCode.NOT_FOUND,
    )
    gone = await logs.ReadLogs(resources_pb2.ReadLogsRequest(task_run_id=doomed.id))
    stayed = await logs.ReadLogs(resources_pb2.ReadLogsRequest(task_run_id=kept.id))
    assert list(gone.logs) == [] and [m.message for m in stayed.logs] == ["stay"]
    assert (await task_runs.CountTaskRuns(pb.CountTaskRunsRequest())).count == 1


async def test_delete_unknown_run_is_not_found(task_runs: TaskRunStub) -> None:
    request = pb.DeleteTaskRunRequest(task_run_id=str(uuid.uuid4()))
    await expect_status(task_runs.DeleteTaskRun(request), grpc.StatusCode.NOT_FOUND, "task_run_id")


async def test_delete_requires_a_valid_id(task_runs: TaskRunStub) -> None:
    await expect_status(
        task_runs.DeleteTaskRun(pb.DeleteTaskRunRequest()),
        grpc.StatusCode.INVALID_ARGUMENT,
        "task_run_id",
    )
