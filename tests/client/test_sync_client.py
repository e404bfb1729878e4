"""TaskRunClient (blocking) against a server in its own process."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest

from taskrun.v1 import state_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_client import ClientConfig, TaskRunClient, TaskRunError
from tests.factories import now, scheduled
from tests.processes import server_process


@pytest.fixture(scope="module")
def client(database_url: str) -> Iterator[TaskRunClient]:
    with server_process(database_url) as target, TaskRunClient(ClientConfig(target=target)) as c:
        yield c


def test_a_run_lives_through_the_blocking_client(client: TaskRunClient) -> None:
    key = uuid.uuid4().hex
    run = client.create_task_run(key, "0", state=scheduled(now())).task_run
    delivery = next(iter(client.subscribe_scheduled_tasks([key])))
    assert delivery.task_run.id == run.id
    for kind in (state_pb2.STATE_TYPE_PENDING, state_pb2.STATE_TYPE_RUNNING):
        assert client.set_task_run_state(run.id, kind).status == pb.SET_STATE_STATUS_ACCEPT
    done = client.set_task_run_state(run.id, state_pb2.STATE_TYPE_COMPLETED)
    assert done.task_run.state_type == state_pb2.STATE_TYPE_COMPLETED
    names = [s.name for s in client.read_task_run_states(run.id)]
    assert names == ["Scheduled", "Pending", "Running", "Completed"]


def test_blocking_errors_name_the_field(client: TaskRunClient) -> None:
    with pytest.raises(TaskRunError) as caught:
        client.set_task_run_state("not-a-uuid", state_pb2.STATE_TYPE_RUNNING)
    error = caught.value
    assert (error.code, error.field, error.reason, error.domain) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "task_run_id",
        "INVALID_FIELD",
        "taskrun",
    )
    (violation,) = error.field_violations
    assert violation.field == "task_run_id" and "not a UUID" in violation.description
    assert error.problem == violation.description


def test_a_batch_is_created_in_one_call_and_an_invalid_item_is_named(
    client: TaskRunClient,
) -> None:
    key = uuid.uuid4().hex
    items = [pb.CreateTaskRunRequest(task_key=key, dynamic_key=str(i)) for i in range(3)]
    answers = client.batch_create_task_runs(items)
    assert [(a.task_run.dynamic_key, a.created) for a in answers] == [
        ("0", True), ("1", True), ("2", True),
    ]  # fmt: skip
    with pytest.raises(TaskRunError) as caught:
        client.batch_create_task_runs([*items, pb.CreateTaskRunRequest(task_key=key)])
    assert caught.value.field == "requests[3].dynamic_key"
