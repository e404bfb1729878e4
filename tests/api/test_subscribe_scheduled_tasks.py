"""SubscribeScheduledTasks against the in-process server: what is delivered, when, to whom,
and what happens to leases when subscribers settle, leave or go quiet."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import grpc
from sqlalchemy import event

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
from tests.subscriptions import Opener, due_run, settle


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
        Settings(database_url=database_url, port=0, metrics_port=0, dashboard_port=0), database_url
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{own.port}") as channel:
        stub = task_run_service_pb2_grpc.TaskRunServiceStub(channel)
        request = pb.SubscribeScheduledTasksRequest(task_keys=["shutdown"])
        call: Any = stub.SubscribeScheduledTasks(request)
        await asyncio.sleep(0.3)
        await own.stop(grace=2)
        await expect_status(call.read(), grpc.StatusCode.UNAVAILABLE, "shutting down")


async def test_a_subscriber_that_never_reads_cannot_hold_runs_beyond_one_lease(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    """The hung stream claims every run; once its 2 s leases lapse unsettled it claims nothing
    more, and the healthy subscriber gets them all, each delivered exactly twice."""
    ids = {(await due_run(task_runs, "hoard")).id for _ in range(20)}
    hung = task_runs.SubscribeScheduledTasks(
        pb.SubscribeScheduledTasksRequest(task_keys=["hoard"], client_id="hung", prefetch=20)
    )
    try:
        await asyncio.sleep(0.5)  # it has claimed them all by now
        healthy = subscriptions("hoard", prefetch=20)
        got: dict[str, int] = {}
        while set(got) != ids:
            delivery = await healthy.receive(within=15)
            got[delivery.task_run.id] = delivery.delivery_count
            await settle(task_runs, delivery.task_run.id)
        assert set(got.values()) == {2}
    finally:
        hung.cancel()


async def test_idle_subscribers_do_not_query_the_database(
    task_runs: TaskRunStub, subscriptions: Opener, fresh_server: RunningServer
) -> None:
    """Fifty idle streams for two seconds: the process's timer looks up their keys once per
    tick (0.2 s here); the streams themselves make no query while nothing is due."""
    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    for i in range(50):
        subscriptions(f"idle-{i % 5}")
    await asyncio.sleep(1.0)  # each has made its first claim and gone to sleep
    engine = fresh_server.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        await asyncio.sleep(2.0)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # About 10 timer look-ups, 10 metrics refreshes and a health probe; polling streams made
    # about 50 x 10 x 3 = 1,500.
    assert statements < 60, statements
