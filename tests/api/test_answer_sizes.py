"""Every answer fits a client's default 4 MiB receive limit, whatever is stored: answers never
repeat a payload, list reads leave bulky fields out unless asked, and a list that would not fit
is cut short and says so. The channel here keeps gRPC's default limits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import struct_pb2

from taskrun.v1 import (
    resources_pb2,
    resources_pb2_grpc,
    state_pb2,
    task_run_pb2,
    task_run_service_pb2_grpc,
)
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_server.server import RunningServer
from tests.factories import TaskRunStub, create_run, expect_status

DEFAULT_LIMIT = 4 * 1024 * 1024
BIG = 900_000  # bytes of data per state: under the 1 MiB limit, four of them are not


@pytest.fixture
async def plain(fresh_server: RunningServer) -> AsyncIterator[TaskRunStub]:
    """A stub on a channel with gRPC's default receive limit (4 MiB)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{fresh_server.port}") as channel:
        yield task_run_service_pb2_grpc.TaskRunServiceStub(channel)


def completed_with(size: int) -> state_pb2.StateCreate:
    proposal = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_COMPLETED)
    proposal.data.string_value = "x" * size
    return proposal


async def big_runs(stub: TaskRunStub, count: int) -> list[str]:
    return [(await create_run(stub, state=completed_with(BIG))).id for _ in range(count)]


async def test_a_state_change_answer_carries_its_data_once(plain: TaskRunStub) -> None:
    run = await create_run(plain)
    answer = await plain.SetTaskRunState(
        pb.SetTaskRunStateRequest(task_run_id=run.id, state=completed_with(BIG))
    )
    assert answer.status == pb.SET_STATE_STATUS_ACCEPT
    assert len(answer.state.data.string_value) == BIG
    assert not answer.task_run.HasField("state")
    assert answer.ByteSize() < BIG * 1.1


async def test_list_reads_leave_state_data_and_parameters_out_by_default(
    plain: TaskRunStub,
) -> None:
    ids = await big_runs(plain, 8)  # 7 MB of data in all
    for request in (pb.ReadTaskRunsRequest(), pb.ReadTaskRunsRequest(view=pb.TASK_RUN_VIEW_BASIC)):
        answer = await plain.ReadTaskRuns(request)
        assert sorted(r.id for r in answer.task_runs) == sorted(ids)
        assert not answer.truncated
        assert all(not r.state.HasField("data") for r in answer.task_runs)
    page = await plain.PaginateTaskRuns(pb.PaginateTaskRunsRequest())
    assert page.count == 8 and len(page.results) == 8


async def test_a_full_list_is_cut_short_to_fit_and_reads_on_from_where_it_stopped(
    plain: TaskRunStub,
) -> None:
    ids = await big_runs(plain, 8)
    seen: list[str] = []
    while True:
        answer = await plain.ReadTaskRuns(
            pb.ReadTaskRunsRequest(view=pb.TASK_RUN_VIEW_FULL, offset=len(seen))
        )
        assert answer.ByteSize() < DEFAULT_LIMIT
        assert all(len(r.state.data.string_value) == BIG for r in answer.task_runs)
        seen += [r.id for r in answer.task_runs]
        if not answer.truncated:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    page = await plain.PaginateTaskRuns(pb.PaginateTaskRunsRequest(view=pb.TASK_RUN_VIEW_FULL))
    assert page.truncated and 0 < len(page.results) < 8


async def test_a_long_history_of_big_states_is_read_in_pieces(plain: TaskRunStub) -> None:
    run = await create_run(plain)
    for _ in range(7):
        proposal = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING)
        proposal.data.string_value = "y" * BIG
        await plain.SetTaskRunState(
            pb.SetTaskRunStateRequest(task_run_id=run.id, state=proposal, force=True)
        )
    states: list[state_pb2.State] = []
    while True:
        answer = await plain.ReadTaskRunStates(
            pb.ReadTaskRunStatesRequest(task_run_id=run.id, offset=len(states))
        )
        states += answer.states
        if not answer.truncated:
            break
    assert len(states) == 8 and len({s.id for s in states}) == 8


async def test_request_fields_are_bounded_so_that_answers_fit(task_runs: TaskRunStub) -> None:
    labels = struct_pb2.Struct(fields={"k": struct_pb2.Value(string_value="v" * 70_000)})
    inputs = {
        f"p{i}": task_run_pb2.TaskRunInputs(
            inputs=[
                task_run_pb2.TaskRunInput(parameter=task_run_pb2.ParameterInput(name="n" * 1000))
            ]
        )
        for i in range(300)
    }
    for fields, field in (
        ({"state": completed_with(1_100_000)}, "state.data"),
        ({"labels": labels}, "labels"),
        ({"task_inputs": inputs}, "task_inputs"),
    ):
        await expect_status(
            create_run(task_runs, **fields), grpc.StatusCode.INVALID_ARGUMENT, field
        )


async def test_long_logs_are_read_in_pieces(
    plain: TaskRunStub, fresh_server: RunningServer
) -> None:
    run = await create_run(plain)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{fresh_server.port}") as channel:
        logs = resources_pb2_grpc.LogServiceStub(channel)
        line = resources_pb2.LogCreate(
            name="big", level=20, message="z" * 900_000, task_run_id=run.id
        )
        for _ in range(6):
            await logs.CreateLogs(resources_pb2.CreateLogsRequest(logs=[line]))
        read: list[resources_pb2.Log] = []
        while True:
            answer = await logs.ReadLogs(
                resources_pb2.ReadLogsRequest(task_run_id=run.id, offset=len(read))
            )
            assert answer.ByteSize() < DEFAULT_LIMIT
            read += answer.logs
            if not answer.truncated:
                break
    assert len(read) == 6 and len({log.id for log in read}) == 6
