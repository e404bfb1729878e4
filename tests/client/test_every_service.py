"""The client covers every service, takes enums by name, pages through everything, waits for
results, and reads its target and token from the environment as the CLI does."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from taskrun.v1 import resources_pb2, state_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_client import AsyncTaskRunClient, ClientConfig, TaskRunClient, TaskRunError, filters
from taskrun_server.server import RunningServer


@pytest.fixture
async def client(fresh_server: RunningServer) -> AsyncIterator[AsyncTaskRunClient]:
    async with AsyncTaskRunClient(ClientConfig(target=f"127.0.0.1:{fresh_server.port}")) as c:
        yield c


async def test_concurrency_limits_are_managed_by_tag(client: AsyncTaskRunClient) -> None:
    made = await client.create_concurrency_limit("db", 2)
    assert made.created and made.concurrency_limit.concurrency_limit == 2
    assert not (await client.create_concurrency_limit("db", 3)).created
    run = (await client.create_task_run("k", "0", tags=["db"])).task_run
    await client.set_task_run_state(run.id, "RUNNING")
    assert list((await client.read_concurrency_limit("db")).active_slots) == [run.id]
    assert [lim.tag for lim in await client.read_concurrency_limits()] == ["db"]
    assert list((await client.reset_concurrency_limit("db")).active_slots) == []
    await client.delete_concurrency_limit("db")
    with pytest.raises(TaskRunError) as caught:
        await client.read_concurrency_limit("db")
    assert caught.value.reason == "NOT_FOUND"


async def test_flows_deployments_flow_runs_and_their_task_runs(
    client: AsyncTaskRunClient,
) -> None:
    flow = (await client.create_flow("etl", tags=["team"])).flow
    assert (await client.read_flow(flow.id)).name == "etl"
    deployment = (await client.create_deployment(flow.id, "nightly")).deployment
    assert (await client.read_deployment(deployment.id)).flow_id == flow.id
    flow_run = await client.create_flow_run(flow.id, deployment_id=deployment.id, state="RUNNING")
    assert flow_run.state_type == state_pb2.STATE_TYPE_RUNNING
    paused = await client.set_flow_run_state(flow_run.id, "paused")
    assert paused.state_type == state_pb2.STATE_TYPE_PAUSED
    assert (await client.read_flow_run(flow_run.id)).state_type == state_pb2.STATE_TYPE_PAUSED
    task = (await client.create_task_run("extract", "0", flow_run_id=flow_run.id)).task_run
    found = await client.read_task_runs(task_runs=filters.task_runs(flow_run_id=[flow_run.id]))
    assert [r.id for r in found] == [task.id]


async def test_logs_are_written_and_read_back_in_order(client: AsyncTaskRunClient) -> None:
    run = (await client.create_task_run("chatty", "0")).task_run
    lines = [
        resources_pb2.LogCreate(
            name="task", level=20, message=f"line {i}", task_run_id=run.id,
            timestamp=Timestamp(seconds=1_700_000_000 + i),
        )
        for i in range(3)
    ]  # fmt: skip
    assert await client.create_logs(lines) == 3
    read = await client.read_logs(task_run_id=run.id)
    assert [log.message for log in read.logs] == ["line 0", "line 1", "line 2"]


async def test_states_and_sorts_are_taken_by_name(client: AsyncTaskRunClient) -> None:
    run = (await client.create_task_run("named", "0", state="scheduled")).task_run
    assert run.state_type == state_pb2.STATE_TYPE_SCHEDULED
    answer = await client.set_task_run_state(run.id, "Running")
    assert answer.status == pb.SET_STATE_STATUS_ACCEPT
    listed = await client.read_task_runs(
        task_runs=filters.task_runs(state=["RUNNING"]), sort="expected_start_time_desc"
    )
    assert [r.id for r in listed] == [run.id]
    with pytest.raises(ValueError, match="not a state type"):
        await client.set_task_run_state(run.id, "SLEEPING")


async def test_iter_task_runs_reads_past_one_page(client: AsyncTaskRunClient) -> None:
    items = [pb.CreateTaskRunRequest(task_key="many", dynamic_key=str(i)) for i in range(450)]
    await client.batch_create_task_runs(items)
    seen = [
        r.dynamic_key
        async for r in client.iter_task_runs(
            task_runs=filters.task_runs(task_key=["many"]), sort="NAME_ASC", page_size=200
        )
    ]
    assert sorted(seen, key=int) == [str(i) for i in range(450)]


async def test_wait_returns_the_finished_run_with_its_result(client: AsyncTaskRunClient) -> None:
    run = (await client.create_task_run("awaited", "0")).task_run
    waiting = asyncio.ensure_future(client.wait(run.id, timeout=10))
    await asyncio.sleep(0.2)
    await client.set_task_run_state(run.id, "RUNNING")
    done = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_COMPLETED)
    done.data.string_value = "the answer"
    await client.set_task_run_state(run.id, done)
    finished = await waiting
    assert finished.state_type == state_pb2.STATE_TYPE_COMPLETED
    assert finished.state.data.string_value == "the answer"


async def test_wait_gives_up_after_its_timeout(client: AsyncTaskRunClient) -> None:
    run = (await client.create_task_run("never", "0")).task_run
    with pytest.raises(TimeoutError):
        await client.wait(run.id, timeout=0.5)


async def test_the_blocking_client_waits_and_watches_the_same_way(
    fresh_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKRUN_TARGET", f"127.0.0.1:{fresh_server.port}")

    def blocking() -> None:  # on a thread: the server answers on this test's event loop
        with TaskRunClient() as client:  # the target from the environment
            key = str(uuid.uuid4())
            run = client.create_task_run("blocking", key, state="COMPLETED").task_run
            assert client.wait(run.id, timeout=5).id == run.id
            watched = client.watch_task_runs([run.id], until_terminal=True)
            assert [r.state_type for r in watched] == [state_pb2.STATE_TYPE_COMPLETED]
            before = filters.task_runs(expected_before=datetime.now(UTC))
            assert client.count_task_runs(task_runs=before) == 1

    await asyncio.to_thread(blocking)


def test_target_and_token_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKRUN_TARGET", "example.internal:443")
    monkeypatch.setenv("TASKRUN_TOKEN", "s3cret")
    config = ClientConfig.from_env()
    assert (config.target, config.token) == ("example.internal:443", "s3cret")
    assert ClientConfig.from_env(target="other:1").target == "other:1"
