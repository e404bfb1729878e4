"""AsyncTaskRunClient against the real server: calls, errors as TaskRunError, retry-safe state
changes, subscriptions, and retries while the server is not up yet."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest

from devtools.server_processes import free_port, start_server_process
from taskrun.v1 import filters_pb2, state_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_client import AsyncTaskRunClient, ClientConfig, RetryPolicy, TaskRunError
from taskrun_server.server import RunningServer
from tests.factories import now, scheduled


@pytest.fixture
async def client(fresh_server: RunningServer) -> AsyncIterator[AsyncTaskRunClient]:
    async with AsyncTaskRunClient(ClientConfig(target=f"127.0.0.1:{fresh_server.port}")) as c:
        yield c


async def test_runs_are_created_read_listed_renamed_and_deleted(client: AsyncTaskRunClient) -> None:
    created = await client.create_task_run("etl", "1", tags=["nightly"])
    again = await client.create_task_run("etl", "1")
    assert created.created and not again.created
    run_id = created.task_run.id
    assert (await client.read_task_run(run_id)).task_key == "etl"
    nightly = filters_pb2.TaskRunFilter(tags=filters_pb2.TagsFilter(all=["nightly"]))
    assert [r.id for r in await client.read_task_runs(task_runs=nightly)] == [run_id]
    assert await client.count_task_runs(task_runs=nightly) == 1
    page = await client.paginate_task_runs(limit=1)
    assert page.count == 1
    history = await client.task_run_history(
        now() - timedelta(hours=1), now() + timedelta(hours=1), timedelta(hours=1)
    )
    assert sum(s.count_runs for i in history for s in i.states) == 1
    assert (await client.update_task_run(run_id, name="renamed")).name == "renamed"
    await client.delete_task_run(run_id)
    assert await client.count_task_runs() == 0


async def test_failures_raise_task_run_error_with_the_field(client: AsyncTaskRunClient) -> None:
    with pytest.raises(TaskRunError) as missing:
        await client.read_task_run(str(uuid.uuid4()))
    assert missing.value.code is grpc.StatusCode.NOT_FOUND
    assert missing.value.field == "task_run_id"
    with pytest.raises(TaskRunError) as invalid:
        await client.create_task_run("", "0")
    assert (invalid.value.code, invalid.value.field) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "task_key",
    )


async def test_a_repeated_state_proposal_is_applied_once(client: AsyncTaskRunClient) -> None:
    run = (await client.create_task_run("k", "0")).task_run
    proposal = state_pb2.StateCreate(
        type=state_pb2.STATE_TYPE_RUNNING,
        state_details=state_pb2.StateDetails(transition_id=str(uuid.uuid4())),
    )
    first = await client.set_task_run_state(run.id, proposal)
    again = await client.set_task_run_state(run.id, proposal)  # as a retry would send it
    assert first.status == again.status == pb.SET_STATE_STATUS_ACCEPT
    assert again.state.id == first.state.id
    assert len(await client.read_task_run_states(run.id)) == 2


async def test_state_types_can_be_proposed_by_value(client: AsyncTaskRunClient) -> None:
    run = (await client.create_task_run("k", "1")).task_run
    answer = await client.set_task_run_state(run.id, state_pb2.STATE_TYPE_RUNNING, name="Go")
    assert (answer.status, answer.state.name) == (pb.SET_STATE_STATUS_ACCEPT, "Go")
    assert answer.state.state_details.transition_id  # the client made it retry-safe


async def test_subscriptions_yield_deliveries(client: AsyncTaskRunClient) -> None:
    run = (await client.create_task_run("work", "0", state=scheduled(now()))).task_run
    async for delivery in client.subscribe_scheduled_tasks(["work"]):
        assert delivery.task_run.id == run.id
        break


async def test_calls_are_retried_until_the_server_is_up(database_url: str) -> None:
    port = free_port()
    patient = ClientConfig(target=f"127.0.0.1:{port}", timeout=60)  # waits for a connection
    async with AsyncTaskRunClient(patient) as client:
        call = asyncio.ensure_future(client.count_task_runs())
        await asyncio.sleep(0.5)
        process = start_server_process(database_url, port)
        try:
            assert await asyncio.wait_for(call, 60) >= 0
        finally:
            process.terminate()
            process.wait(timeout=30)


async def test_unavailable_is_raised_once_retries_run_out() -> None:
    config = ClientConfig(
        target=f"127.0.0.1:{free_port()}",
        retry=RetryPolicy(max_attempts=2, initial_backoff=0.01),
        wait_for_ready=False,
    )
    async with AsyncTaskRunClient(config) as client:
        with pytest.raises(TaskRunError) as caught:
            await client.count_task_runs()
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE


def test_a_retry_policy_beyond_grpc_s_five_attempts_is_refused() -> None:
    with pytest.raises(ValueError, match="between 1 and 5"):
        RetryPolicy(max_attempts=6)
