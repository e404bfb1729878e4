"""SubscribeScheduledTasks against the in-process server: what is delivered, when, to whom,
and what happens to leases when subscribers settle, leave or go quiet."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import grpc
import pytest

from taskrun.v1 import state_pb2, task_run_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_server.server import RunningServer
from taskrun_server.settings import Settings
from tests.factories import (
    FlowRunStub,
    FlowStub,
    TaskRunStub,
    at,
    create_flow_run,
    create_run,
    expect_status,
    now,
    propose,
    scheduled,
    state,
)


class Subscription:
    """A stream read continuously into a queue, so a test can wait for, or rule out, a message
    without cancelling the call (cancelling a pending read cancels a grpc.aio stream)."""

    def __init__(self, stub: TaskRunStub, *keys: str, prefetch: int = 10) -> None:
        request = pb.SubscribeScheduledTasksRequest(
            task_keys=keys, client_id="test", prefetch=prefetch
        )
        self.call: Any = stub.SubscribeScheduledTasks(request)
        self.messages: asyncio.Queue[pb.SubscribeScheduledTasksResponse] = asyncio.Queue()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for message in self.call:
            await self.messages.put(message)

    async def receive(self, within: float = 10.0) -> pb.SubscribeScheduledTasksResponse:
        return await asyncio.wait_for(self.messages.get(), within)

    async def nothing_within(self, seconds: float) -> bool:
        await asyncio.sleep(seconds)
        return self.messages.empty()

    def cancel(self) -> None:
        self.call.cancel()
        self.reader.cancel()


async def due_run(stub: TaskRunStub, key: str, **fields: Any) -> task_run_pb2.TaskRun:
    return await create_run(
        stub, task_key=key, state=scheduled(now() - timedelta(seconds=1)), **fields
    )


async def settle(stub: TaskRunStub, run_id: str) -> None:
    answer = await propose(stub, run_id, state(state_pb2.STATE_TYPE_PENDING))
    assert answer.status == pb.SET_STATE_STATUS_ACCEPT, answer


Opener = Callable[..., Subscription]


@pytest.fixture
def subscriptions(task_runs: TaskRunStub) -> Iterator[Opener]:
    """Opens subscriptions for a test and cancels them at its end."""
    opened: list[Subscription] = []

    def open_one(*keys: str, prefetch: int = 10) -> Subscription:
        opened.append(Subscription(task_runs, *keys, prefetch=prefetch))
        return opened[-1]

    yield open_one
    for subscription in opened:
        subscription.cancel()


async def test_due_background_runs_of_its_keys_are_delivered(
    task_runs: TaskRunStub,
    flows: FlowStub,
    flow_runs: FlowRunStub,
    subscriptions: Opener,
) -> None:
    wanted = {(await due_run(task_runs, "a")).id, (await due_run(task_runs, "a")).id}
    await due_run(task_runs, "b")
    flow_run = await create_flow_run(flows, flow_runs)
    await due_run(task_runs, "a", flow_run_id=flow_run.id)  # in a flow: not a background run
    await create_run(task_runs, task_key="a")  # PENDING, not SCHEDULED
    stream = subscriptions("a")
    got = {(await stream.receive()).task_run.id for _ in range(2)}
    assert got == wanted
    assert await stream.nothing_within(0.6)


async def test_a_delivery_carries_the_run_and_its_lease(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    parameters = str(uuid.uuid4())
    run = await create_run(
        task_runs,
        task_key="k",
        state=state_pb2.StateCreate(
            type=state_pb2.STATE_TYPE_SCHEDULED,
            state_details=state_pb2.StateDetails(task_parameters_id=parameters),
        ),
    )
    stream = subscriptions("k")
    message = await stream.receive()
    assert message.task_run.id == run.id and message.delivery_count == 1
    assert message.task_run.state.state_details.task_parameters_id == parameters
    assert at(message.lease_expires) > now()


async def test_a_future_run_is_delivered_once_due(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    due = now() + timedelta(seconds=1)
    await create_run(task_runs, task_key="later", state=scheduled(due))
    stream = subscriptions("later")
    await stream.receive()
    assert now() >= due


async def test_a_new_run_reaches_an_idle_subscriber(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    stream = subscriptions("fresh")
    assert await stream.nothing_within(0.3)
    run = await due_run(task_runs, "fresh")
    assert (await stream.receive()).task_run.id == run.id


async def test_prefetch_bounds_unsettled_deliveries(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    for _ in range(4):
        await due_run(task_runs, "p")
    stream = subscriptions("p", prefetch=2)
    first = await stream.receive()
    await stream.receive()
    assert await stream.nothing_within(0.6)
    await settle(task_runs, first.task_run.id)
    await stream.receive()
    assert await stream.nothing_within(0.6)


async def test_a_subscriber_that_leaves_gives_its_runs_to_another(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    run = await due_run(task_runs, "handoff")
    leaving = subscriptions("handoff", prefetch=1)
    assert (await leaving.receive()).task_run.id == run.id
    staying = subscriptions("handoff")
    assert await staying.nothing_within(0.4)  # leased to the first subscriber
    leaving.cancel()
    message = await staying.receive()
    assert (message.task_run.id, message.delivery_count) == (run.id, 2)


async def test_an_expired_lease_is_delivered_again(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    """The session server's lease is 2 s. The first subscriber never settles."""
    run = await due_run(task_runs, "expire")
    quiet = subscriptions("expire", prefetch=1)
    assert (await quiet.receive()).task_run.id == run.id
    other = subscriptions("expire", prefetch=1)
    reads = [asyncio.ensure_future(s.receive()) for s in (quiet, other)]
    done, pending = await asyncio.wait(reads, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    message = next(iter(done)).result()
    assert (message.task_run.id, message.delivery_count) == (run.id, 2)


async def test_settled_runs_are_not_delivered_again(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    run = await due_run(task_runs, "settled")
    stream = subscriptions("settled")
    await stream.receive()
    await settle(task_runs, run.id)
    assert await stream.nothing_within(2.6)  # past the lease


async def test_a_retried_run_is_delivered_again(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    run = await due_run(
        task_runs, "retry", empirical_policy=task_run_pb2.TaskRunPolicy(retries=1, retry_delay=[0])
    )
    stream = subscriptions("retry")
    assert (await stream.receive()).task_run.id == run.id
    for kind in (state_pb2.STATE_TYPE_PENDING, state_pb2.STATE_TYPE_RUNNING):
        await propose(task_runs, run.id, state(kind))
    retry = await propose(task_runs, run.id, state(state_pb2.STATE_TYPE_FAILED))
    assert retry.state.name == "AwaitingRetry"
    again = await stream.receive()
    assert again.task_run.id == run.id and again.task_run.state.name == "AwaitingRetry"


async def test_bad_subscriptions_are_refused(task_runs: TaskRunStub) -> None:
    cases = [
        (pb.SubscribeScheduledTasksRequest(), "task_keys"),
        (pb.SubscribeScheduledTasksRequest(task_keys=[""]), "task_keys[0]"),
        (pb.SubscribeScheduledTasksRequest(task_keys=["k"], prefetch=5000), "prefetch"),
        (pb.SubscribeScheduledTasksRequest(task_keys=["k"], prefetch=-1), "prefetch"),
    ]
    for request, field in cases:
        stream = task_runs.SubscribeScheduledTasks(request)
        await expect_status(stream.read(), grpc.StatusCode.INVALID_ARGUMENT, field)


async def test_shutdown_ends_streams_with_unavailable(
    database_url: str, fresh_server: RunningServer
) -> None:
    from taskrun.v1 import task_run_service_pb2_grpc
    from taskrun_server.server import start_server

    own = await start_server(
        Settings(database_url=database_url, port=0, metrics_port=0), database_url
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{own.port}") as channel:
        stub = task_run_service_pb2_grpc.TaskRunServiceStub(channel)
        request = pb.SubscribeScheduledTasksRequest(task_keys=["shutdown"])
        call: Any = stub.SubscribeScheduledTasks(request)
        await asyncio.sleep(0.3)
        await own.stop(grace=2)
        await expect_status(call.read(), grpc.StatusCode.UNAVAILABLE, "shutting down")
