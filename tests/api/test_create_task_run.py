"""CreateTaskRun: defaults, the first state, idempotency by key, and input validation."""

from __future__ import annotations

import asyncio
import struct
import uuid

import grpc
import pytest
from google.protobuf import struct_pb2
from sqlalchemy import func, select

from taskrun.v1 import state_pb2, task_run_pb2, task_run_service_pb2_grpc
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_server.database.tables import task_run, task_run_state
from taskrun_server.server import RunningServer
from tests.factories import (
    TaskRunStub,
    at,
    create_flow_run,
    create_run,
    expect_status,
    hours,
    now,
    scheduled,
    state,
    ts,
)


async def count_rows(server: RunningServer) -> tuple[int, int]:
    async with server.engine.connect() as conn:
        runs = (await conn.execute(select(func.count()).select_from(task_run))).scalar_one()
        states = (await conn.execute(select(func.count()).select_from(task_run_state))).scalar_one()
    return runs, states


async def test_run_created_without_state_is_pending(task_runs: TaskRunStub) -> None:
    run = await create_run(task_runs)
    assert run.state_type == state_pb2.STATE_TYPE_PENDING
    assert run.state_name == "Pending"
    assert run.state.id == run.state_id
    assert run.state.state_details.task_run_id == run.id
    assert at(run.expected_start_time) == at(run.state.timestamp)
    assert run.run_count == 0
    assert not run.HasField("start_time")


async def test_given_state_is_stored_as_first_state(task_runs: TaskRunStub) -> None:
    when = now() + hours(2)
    run = await create_run(task_runs, state=scheduled(when))
    assert run.state_type == state_pb2.STATE_TYPE_SCHEDULED
    assert run.state_name == "Scheduled"
    assert at(run.expected_start_time) == when
    assert at(run.next_scheduled_start_time) == when
    states = await task_runs.ReadTaskRunStates(pb.ReadTaskRunStatesRequest(task_run_id=run.id))
    assert [s.id for s in states.states] == [run.state_id]


async def test_scheduled_state_without_time_is_due_at_once(task_runs: TaskRunStub) -> None:
    before = now()
    run = await create_run(task_runs, state=state(state_pb2.STATE_TYPE_SCHEDULED))
    due = at(run.state.state_details.scheduled_time)
    assert before <= due <= now()


async def test_running_first_state_starts_the_run(task_runs: TaskRunStub) -> None:
    run = await create_run(task_runs, state=state(state_pb2.STATE_TYPE_RUNNING, "Going"))
    assert run.state_name == "Going"
    assert run.run_count == 1
    assert at(run.start_time) == at(run.state.timestamp)


async def test_terminal_first_state_sets_end_time(task_runs: TaskRunStub) -> None:
    run = await create_run(task_runs, state=state(state_pb2.STATE_TYPE_COMPLETED))
    assert at(run.end_time) == at(run.state.timestamp)


async def test_every_field_round_trips(task_runs: TaskRunStub) -> None:
    expiration = now() + hours(1)
    labels = struct_pb2.Struct()
    labels.update({"team": "data", "priority": 3, "urgent": True})
    created = await create_run(
        task_runs,
        name="load-orders",
        task_key="etl.load",
        dynamic_key="7",
        cache_key="orders-2026",
        cache_expiration=ts(expiration),
        task_version="1.2.3",
        empirical_policy=task_run_pb2.TaskRunPolicy(
            retries=3, retry_delay=[1, 10, 60], retry_jitter_factor=0.5
        ),
        tags=["nightly", "etl", "nightly"],
        labels=labels,
        task_inputs={
            "orders": task_run_pb2.TaskRunInputs(
                inputs=[
                    task_run_pb2.TaskRunInput(
                        task_run=task_run_pb2.TaskRunResultInput(id=str(uuid.uuid4()))
                    ),
                    task_run_pb2.TaskRunInput(parameter=task_run_pb2.ParameterInput(name="day")),
                    task_run_pb2.TaskRunInput(constant=task_run_pb2.ConstantInput(type="int")),
                ]
            )
        },
    )
    read = (await task_runs.ReadTaskRun(pb.ReadTaskRunRequest(task_run_id=created.id))).task_run
    assert read.name == "load-orders"
    assert (read.task_key, read.dynamic_key) == ("etl.load", "7")
    assert read.cache_key == "orders-2026"
    assert at(read.cache_expiration) == expiration
    assert read.task_version == "1.2.3"
    assert read.empirical_policy.retries == 3
    assert list(read.empirical_policy.retry_delay) == [1, 10, 60]
    assert read.empirical_policy.retry_jitter_factor == 0.5
    assert list(read.tags) == ["nightly", "etl"]
    assert dict(read.labels) == {"team": "data", "priority": 3, "urgent": True}
    assert read.task_inputs["orders"] == created.task_inputs["orders"]
    assert len(read.task_inputs["orders"].inputs) == 3
    assert read.state == created.state


async def test_name_is_generated_when_missing(task_runs: TaskRunStub) -> None:
    run = await create_run(task_runs)
    adjective, animal = run.name.split("-")
    assert adjective and animal


async def test_deprecated_policy_fields_fill_the_current_ones(task_runs: TaskRunStub) -> None:
    run = await create_run(
        task_runs,
        empirical_policy=task_run_pb2.TaskRunPolicy(max_retries=2, retry_delay_seconds=5),
    )
    assert run.empirical_policy.retries == 2
    assert list(run.empirical_policy.retry_delay) == [5]


async def test_second_create_with_same_key_returns_the_first_run(task_runs: TaskRunStub) -> None:
    request = pb.CreateTaskRunRequest(task_key="k", dynamic_key="1", name="first")
    first = await task_runs.CreateTaskRun(request)
    request.name = "second"
    request.state.CopyFrom(state(state_pb2.STATE_TYPE_RUNNING))
    second = await task_runs.CreateTaskRun(request)
    assert first.created and not second.created
    assert second.task_run.id == first.task_run.id
    assert second.task_run.name == "first"
    assert second.task_run.state_type == state_pb2.STATE_TYPE_PENDING


async def test_a_different_dynamic_key_makes_a_new_run(task_runs: TaskRunStub) -> None:
    one = await create_run(task_runs, task_key="k", dynamic_key="1")
    two = await create_run(task_runs, task_key="k", dynamic_key="2")
    assert one.id != two.id


async def test_key_is_scoped_by_flow_run(
    task_runs: TaskRunStub, flows: object, flow_runs: object
) -> None:
    flow_run = await create_flow_run(flows, flow_runs)  # type: ignore[arg-type]
    background = await create_run(task_runs, task_key="k", dynamic_key="1")
    in_flow = await create_run(task_runs, task_key="k", dynamic_key="1", flow_run_id=flow_run.id)
    again = await task_runs.CreateTaskRun(
        pb.CreateTaskRunRequest(task_key="k", dynamic_key="1", flow_run_id=flow_run.id)
    )
    assert background.id != in_flow.id
    assert not again.created and again.task_run.id == in_flow.id
    assert in_flow.state.state_details.flow_run_id == flow_run.id


async def test_concurrent_creates_of_one_key_yield_one_run(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    """20 clients on their own connections race to create the same key."""
    target = f"127.0.0.1:{fresh_server.port}"
    channels = [grpc.aio.insecure_channel(target) for _ in range(20)]
    try:
        stubs = [task_run_service_pb2_grpc.TaskRunServiceStub(ch) for ch in channels]
        request = pb.CreateTaskRunRequest(task_key="race", dynamic_key="0")
        responses = await asyncio.gather(*(s.CreateTaskRun(request) for s in stubs))
    finally:
        await asyncio.gather(*(ch.close() for ch in channels))
    assert len({r.task_run.id for r in responses}) == 1
    assert sum(r.created for r in responses) == 1
    assert await count_rows(fresh_server) == (1, 1)


async def test_client_chosen_id_is_used(task_runs: TaskRunStub) -> None:
    chosen = str(uuid.uuid4())
    run = await create_run(task_runs, id=chosen)
    assert run.id == chosen


async def test_client_id_taken_by_another_key_already_exists(task_runs: TaskRunStub) -> None:
    chosen = str(uuid.uuid4())
    await create_run(task_runs, id=chosen, dynamic_key="a")
    await expect_status(
        task_runs.CreateTaskRun(pb.CreateTaskRunRequest(id=chosen, task_key="t", dynamic_key="b")),
        grpc.StatusCode.ALREADY_EXISTS,
        "id",
    )


async def test_unknown_flow_run_is_not_found(task_runs: TaskRunStub) -> None:
    request = pb.CreateTaskRunRequest(task_key="t", dynamic_key="0", flow_run_id=str(uuid.uuid4()))
    await expect_status(task_runs.CreateTaskRun(request), grpc.StatusCode.NOT_FOUND, "flow_run_id")


async def test_invalid_requests_name_the_field_and_store_nothing(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    nested = struct_pb2.Struct()
    nested.update({"owner": {"name": "x"}})
    infinite_label = struct_pb2.Struct()
    infinite_label.update({"score": float("inf")})
    nan_in_data = struct_pb2.Value()
    nan_in_data.struct_value.update({"rows": [1, float("nan")]})
    cases: list[tuple[pb.CreateTaskRunRequest, str]] = [
        (pb.CreateTaskRunRequest(dynamic_key="0"), "task_key"),
        (pb.CreateTaskRunRequest(task_key="t"), "dynamic_key"),
        (pb.CreateTaskRunRequest(task_key="t", dynamic_key="0", flow_run_id="x"), "flow_run_id"),
        (pb.CreateTaskRunRequest(task_key="t", dynamic_key="0", id="not-a-uuid"), "id"),
        (pb.CreateTaskRunRequest(task_key="t\x00", dynamic_key="0"), "task_key"),
        (pb.CreateTaskRunRequest(task_key="t" * 2000, dynamic_key="0"), "task_key"),
        (pb.CreateTaskRunRequest(task_key="t", dynamic_key="0", tags=["a"] * 101), "tags"),
        (pb.CreateTaskRunRequest(task_key="t", dynamic_key="0", tags=[""]), "tags[0]"),
        (pb.CreateTaskRunRequest(task_key="t", dynamic_key="0", labels=nested), "labels"),
        (
            pb.CreateTaskRunRequest(task_key="t", dynamic_key="0", labels=infinite_label),
            "labels.score",
        ),
        (
            pb.CreateTaskRunRequest(
                task_key="t",
                dynamic_key="0",
                state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_PENDING, data=nan_in_data),
            ),
            "state.data.rows[1]",
        ),
        (
            pb.CreateTaskRunRequest(task_key="t", dynamic_key="0", state=state_pb2.StateCreate()),
            "state.type",
        ),
        (
            pb.CreateTaskRunRequest(
                task_key="t",
                dynamic_key="0",
                state=state_pb2.StateCreate(type=42),  # type: ignore[arg-type]
            ),
            "state.type",
        ),
        (
            pb.CreateTaskRunRequest(
                task_key="t",
                dynamic_key="0",
                empirical_policy=task_run_pb2.TaskRunPolicy(retries=-1),
            ),
            "empirical_policy.retries",
        ),
        (
            pb.CreateTaskRunRequest(
                task_key="t",
                dynamic_key="0",
                empirical_policy=task_run_pb2.TaskRunPolicy(retry_delay=[float("nan")]),
            ),
            "empirical_policy.retry_delay[0]",
        ),
        *(
            (
                pb.CreateTaskRunRequest(
                    task_key="t",
                    dynamic_key="0",
                    empirical_policy=task_run_pb2.TaskRunPolicy(retries=1, retry_delay=[1, delay]),
                ),
                "empirical_policy.retry_delay[1]",
            )
            for delay in (1e12, 1e300, 3e11)  # each made a later RUNNING -> FAILED INTERNAL
        ),
        (
            pb.CreateTaskRunRequest(
                task_key="t",
                dynamic_key="0",
                empirical_policy=task_run_pb2.TaskRunPolicy(retry_delay_seconds=1e12),
            ),
            "empirical_policy.retry_delay_seconds",
        ),
        (
            pb.CreateTaskRunRequest(
                task_key="t",
                dynamic_key="0",
                empirical_policy=task_run_pb2.TaskRunPolicy(retry_jitter_factor=1e300),
            ),
            "empirical_policy.retry_jitter_factor",
        ),
        (
            pb.CreateTaskRunRequest(
                task_key="t",
                dynamic_key="0",
                labels=struct_pb2.Struct(
                    fields={f"k{i}": struct_pb2.Value(number_value=i) for i in range(257)}
                ),
            ),
            "labels",
        ),
        (
            pb.CreateTaskRunRequest(
                task_key="t",
                dynamic_key="0",
                task_inputs={"x": task_run_pb2.TaskRunInputs(inputs=[task_run_pb2.TaskRunInput()])},
            ),
            "task_inputs",
        ),
    ]
    for request, field in cases:
        await expect_status(
            task_runs.CreateTaskRun(request), grpc.StatusCode.INVALID_ARGUMENT, field
        )
    assert await count_rows(fresh_server) == (0, 0)


def _nested_struct_bytes(depth: int) -> bytes:
    """A Struct `depth` levels deep, encoded by hand: Python's own protobuf refuses to build one
    deeper than it can parse, but clients in other languages can send it."""

    def field(number: int, payload: bytes) -> bytes:
        return _varint(number << 3 | 2) + _varint(len(payload)) + payload

    number = bytes([2 << 3 | 1]) + struct.pack("<d", 1.0)  # Value.number_value = 1.0
    inner = field(1, field(1, b"x") + field(2, number))  # Struct.fields["x"]
    for _ in range(depth):
        value = field(5, inner)  # Value.struct_value
        inner = field(1, field(1, b"a") + field(2, value))  # Struct.fields["a"]
    return inner


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


async def test_json_nested_past_protobuf_s_decoding_limit_is_refused_by_name(
    channel: grpc.aio.Channel, fresh_server: RunningServer
) -> None:
    create = channel.unary_unary(
        "/taskrun.v1.TaskRunService/CreateTaskRun",
        request_serializer=lambda raw: raw,
        response_deserializer=lambda raw: raw,
    )
    head = pb.CreateTaskRunRequest(task_key="deep", dynamic_key="0").SerializeToString()
    for depth in (40, 60):
        parameters = _nested_struct_bytes(depth)
        request = head + bytes([14 << 3 | 2]) + _varint(len(parameters)) + parameters
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await create(request, timeout=5)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "nests deeper than protobuf decoding allows" in (refused.value.details() or "")
