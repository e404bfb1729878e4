"""ReadTaskRuns: every filter, the operators, every sort, limit and offset."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from taskrun.v1 import filters_pb2 as f
from taskrun.v1 import resources_pb2, state_pb2, task_run_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from tests.factories import (
    DeploymentStub,
    FlowRunStub,
    FlowStub,
    TaskRunStub,
    create_flow_run,
    create_run,
    expect_status,
    hours,
    now,
    scheduled,
    state,
    ts,
)
from tests.subscriptions import Opener

# Values outside the enums, which proto3 lets a client send and the server must refuse.
UNKNOWN_OPERATOR: Any = 7
UNKNOWN_STATE_TYPE: Any = 77


async def names(stub: TaskRunStub, **request: object) -> list[str]:
    response = await stub.ReadTaskRuns(pb.ReadTaskRunsRequest(**request))  # type: ignore[arg-type]
    return [r.name for r in response.task_runs]


async def test_no_filter_returns_every_run_newest_first(task_runs: TaskRunStub) -> None:
    for name in ("a", "b", "c"):
        await create_run(task_runs, name=name)
    assert await names(task_runs) == ["c", "b", "a"]


async def test_id_any_and_not_any(task_runs: TaskRunStub) -> None:
    a = await create_run(task_runs, name="a")
    b = await create_run(task_runs, name="b")
    await create_run(task_runs, name="c")
    only = f.TaskRunFilter(id=f.IdFilter(any=[a.id, b.id]))
    assert sorted(await names(task_runs, task_runs=only)) == ["a", "b"]
    without = f.TaskRunFilter(id=f.IdFilter(not_any=[a.id]))
    assert sorted(await names(task_runs, task_runs=without)) == ["b", "c"]


async def test_name_any_and_like(task_runs: TaskRunStub) -> None:
    for name in ("load-orders", "load-users", "send-mail"):
        await create_run(task_runs, name=name)
    by_any = f.TaskRunFilter(name=f.NameFilter(any=["send-mail"]))
    assert await names(task_runs, task_runs=by_any) == ["send-mail"]
    by_like = f.TaskRunFilter(name=f.NameFilter(like="LOAD"))
    assert sorted(await names(task_runs, task_runs=by_like)) == ["load-orders", "load-users"]


async def test_tags_all_and_is_null(task_runs: TaskRunStub) -> None:
    await create_run(task_runs, name="both", tags=["x", "y"])
    await create_run(task_runs, name="x-only", tags=["x"])
    await create_run(task_runs, name="untagged")
    all_xy = f.TaskRunFilter(tags=f.TagsFilter(all=["x", "y"]))
    assert await names(task_runs, task_runs=all_xy) == ["both"]
    untagged = f.TaskRunFilter(tags=f.TagsFilter(is_null=True))
    assert await names(task_runs, task_runs=untagged) == ["untagged"]
    tagged = f.TaskRunFilter(tags=f.TagsFilter(is_null=False))
    assert sorted(await names(task_runs, task_runs=tagged)) == ["both", "x-only"]


async def test_state_type_and_name(task_runs: TaskRunStub) -> None:
    await create_run(task_runs, name="pending")
    await create_run(task_runs, name="running", state=state(state_pb2.STATE_TYPE_RUNNING))
    await create_run(task_runs, name="late", state=state(state_pb2.STATE_TYPE_SCHEDULED, "Late"))
    running = f.TaskRunFilter(
        state=f.StateFilter(type=f.StateTypeFilter(any=[state_pb2.STATE_TYPE_RUNNING]))
    )
    assert await names(task_runs, task_runs=running) == ["running"]
    not_running = f.TaskRunFilter(
        state=f.StateFilter(type=f.StateTypeFilter(not_any=[state_pb2.STATE_TYPE_RUNNING]))
    )
    assert sorted(await names(task_runs, task_runs=not_running)) == ["late", "pending"]
    late = f.TaskRunFilter(state=f.StateFilter(name=f.StateNameFilter(any=["Late"])))
    assert await names(task_runs, task_runs=late) == ["late"]
    not_late = f.TaskRunFilter(state=f.StateFilter(name=f.StateNameFilter(not_any=["Late"])))
    assert sorted(await names(task_runs, task_runs=not_late)) == ["pending", "running"]


async def test_state_operator_or(task_runs: TaskRunStub) -> None:
    await create_run(task_runs, name="pending")
    await create_run(task_runs, name="running", state=state(state_pb2.STATE_TYPE_RUNNING))
    await create_run(task_runs, name="done", state=state(state_pb2.STATE_TYPE_COMPLETED))
    either = f.TaskRunFilter(
        state=f.StateFilter(
            operator=f.OPERATOR_OR,
            type=f.StateTypeFilter(any=[state_pb2.STATE_TYPE_RUNNING]),
            name=f.StateNameFilter(any=["Completed"]),
        )
    )
    assert sorted(await names(task_runs, task_runs=either)) == ["done", "running"]


async def test_start_time_bounds_and_null(task_runs: TaskRunStub) -> None:
    started = await create_run(task_runs, name="started", state=state(state_pb2.STATE_TYPE_RUNNING))
    await create_run(task_runs, name="waiting")
    not_started = f.TaskRunFilter(start_time=f.TimeFilter(is_null=True))
    assert await names(task_runs, task_runs=not_started) == ["waiting"]
    after = f.TaskRunFilter(start_time=f.TimeFilter(after=started.start_time))
    assert await names(task_runs, task_runs=after) == ["started"]
    before = f.TaskRunFilter(start_time=f.TimeFilter(before=ts(now() - hours(1))))
    assert await names(task_runs, task_runs=before) == []


async def test_expected_start_time_bounds(task_runs: TaskRunStub) -> None:
    base = now()
    for i in range(4):
        await create_run(task_runs, name=f"h{i}", state=scheduled(base + hours(i)))
    window = f.TaskRunFilter(
        expected_start_time=f.TimeFilter(after=ts(base + hours(1)), before=ts(base + hours(2)))
    )
    assert sorted(await names(task_runs, task_runs=window)) == ["h1", "h2"]


async def test_operator_or_across_criteria(task_runs: TaskRunStub) -> None:
    await create_run(task_runs, name="a", tags=["x"])
    await create_run(task_runs, name="b")
    await create_run(task_runs, name="c")
    either = f.TaskRunFilter(
        operator=f.OPERATOR_OR,
        tags=f.TagsFilter(all=["x"]),
        name=f.NameFilter(any=["b"]),
    )
    assert sorted(await names(task_runs, task_runs=either)) == ["a", "b"]
    both = f.TaskRunFilter(tags=f.TagsFilter(all=["x"]), name=f.NameFilter(any=["b"]))
    assert await names(task_runs, task_runs=both) == []


async def test_flow_run_id_any_and_is_null(
    task_runs: TaskRunStub,
    flows: FlowStub,
    flow_runs: FlowRunStub,
) -> None:
    flow_run = await create_flow_run(flows, flow_runs)
    await create_run(task_runs, name="in-flow", flow_run_id=flow_run.id)
    await create_run(task_runs, name="background")
    in_flow = f.TaskRunFilter(flow_run_id=f.NullableIdFilter(any=[flow_run.id]))
    assert await names(task_runs, task_runs=in_flow) == ["in-flow"]
    background = f.TaskRunFilter(flow_run_id=f.NullableIdFilter(is_null=True))
    assert await names(task_runs, task_runs=background) == ["background"]


async def test_subflow_runs_exists(
    task_runs: TaskRunStub,
    flows: FlowStub,
    flow_runs: FlowRunStub,
) -> None:
    parent = await create_run(task_runs, name="parent")
    await create_run(task_runs, name="plain")
    await create_flow_run(flows, flow_runs, parent_task_run_id=parent.id)
    with_subflows = f.TaskRunFilter(subflow_runs=f.ExistsFilter(exists=True))
    assert await names(task_runs, task_runs=with_subflows) == ["parent"]
    without = f.TaskRunFilter(subflow_runs=f.ExistsFilter(exists=False))
    assert await names(task_runs, task_runs=without) == ["plain"]


async def test_flow_flow_run_and_deployment_filters(
    task_runs: TaskRunStub,
    flows: FlowStub,
    flow_runs: FlowRunStub,
    deployments: DeploymentStub,
) -> None:
    etl = (await flows.CreateFlow(resources_pb2.CreateFlowRequest(name="etl", tags=["prod"]))).flow
    report = (await flows.CreateFlow(resources_pb2.CreateFlowRequest(name="report"))).flow
    nightly = (
        await deployments.CreateDeployment(
            resources_pb2.CreateDeploymentRequest(name="nightly", flow_id=etl.id)
        )
    ).deployment
    etl_run = (
        await flow_runs.CreateFlowRun(
            resources_pb2.CreateFlowRunRequest(
                flow_id=etl.id,
                deployment_id=nightly.id,
                state_type=state_pb2.STATE_TYPE_RUNNING,
            )
        )
    ).flow_run
    report_run = (
        await flow_runs.CreateFlowRun(resources_pb2.CreateFlowRunRequest(flow_id=report.id))
    ).flow_run
    await create_run(task_runs, name="etl-task", flow_run_id=etl_run.id)
    await create_run(task_runs, name="report-task", flow_run_id=report_run.id)
    await create_run(task_runs, name="background")

    by_flow = f.FlowFilter(name=f.NameFilter(any=["etl"]))
    assert await names(task_runs, flows=by_flow) == ["etl-task"]
    by_flow_tag = f.FlowFilter(tags=f.TagsFilter(all=["prod"]))
    assert await names(task_runs, flows=by_flow_tag) == ["etl-task"]
    running_flow_runs = f.FlowRunFilter(
        state=f.StateFilter(type=f.StateTypeFilter(any=[state_pb2.STATE_TYPE_RUNNING]))
    )
    assert await names(task_runs, flow_runs=running_flow_runs) == ["etl-task"]
    by_deployment = f.DeploymentFilter(name=f.NameFilter(like="night"))
    assert await names(task_runs, deployments=by_deployment) == ["etl-task"]
    # Any flow-side filter, even an empty one, keeps only runs that have a flow run.
    assert sorted(await names(task_runs, flow_runs=f.FlowRunFilter())) == [
        "etl-task",
        "report-task",
    ]
    no_match = f.FlowFilter(name=f.NameFilter(any=["etl"]))
    report_only = f.TaskRunFilter(name=f.NameFilter(any=["report-task"]))
    assert await names(task_runs, flows=no_match, task_runs=report_only) == []


async def test_sorts(task_runs: TaskRunStub) -> None:
    base = now()
    await create_run(task_runs, name="b", state=scheduled(base + hours(3)))
    await create_run(task_runs, name="c", state=scheduled(base + hours(1)))
    await create_run(task_runs, name="a", state=state(state_pb2.STATE_TYPE_COMPLETED))
    assert await names(task_runs, sort=f.TASK_RUN_SORT_ID_DESC) == ["a", "c", "b"]
    assert await names(task_runs, sort=f.TASK_RUN_SORT_NAME_ASC) == ["a", "b", "c"]
    assert await names(task_runs, sort=f.TASK_RUN_SORT_NAME_DESC) == ["c", "b", "a"]
    assert await names(task_runs, sort=f.TASK_RUN_SORT_EXPECTED_START_TIME_ASC) == ["a", "c", "b"]
    assert await names(task_runs, sort=f.TASK_RUN_SORT_EXPECTED_START_TIME_DESC) == [
        "b",
        "c",
        "a",
    ]
    # Runs with no next scheduled time sort last when ascending (Postgres NULLS LAST).
    assert await names(task_runs, sort=f.TASK_RUN_SORT_NEXT_SCHEDULED_START_TIME_ASC) == [
        "c",
        "b",
        "a",
    ]
    # Unfinished runs (no end time) sort first when descending (Postgres NULLS FIRST).
    assert await names(task_runs, sort=f.TASK_RUN_SORT_END_TIME_DESC) == ["c", "b", "a"]


async def test_limit_and_offset(task_runs: TaskRunStub) -> None:
    for i in range(5):
        await create_run(task_runs, name=f"r{i}")
    assert await names(task_runs, limit=2) == ["r4", "r3"]
    assert await names(task_runs, limit=2, offset=2) == ["r2", "r1"]
    assert await names(task_runs, limit=0) == []
    assert await names(task_runs, offset=10) == []


async def test_default_limit_is_200(task_runs: TaskRunStub) -> None:
    for chunk in range(0, 205, 41):
        await asyncio.gather(*(create_run(task_runs) for _ in range(min(41, 205 - chunk))))
    assert len(await names(task_runs)) == 200


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"limit": 201}, "limit"),
        ({"limit": -1}, "limit"),
        ({"offset": -1}, "offset"),
        ({"sort": 99}, "sort"),
        ({"task_runs": f.TaskRunFilter(id=f.IdFilter(any=["nope"]))}, "task_runs.id.any[0]"),
        ({"task_runs": f.TaskRunFilter(operator=UNKNOWN_OPERATOR)}, "task_runs.operator"),
        (
            {
                "task_runs": f.TaskRunFilter(
                    state=f.StateFilter(type=f.StateTypeFilter(any=[UNKNOWN_STATE_TYPE]))
                )
            },
            "task_runs.state.type.any[0]",
        ),
        (
            {"task_runs": f.TaskRunFilter(id=f.IdFilter(any=[str(uuid.uuid4())] * 1001))},
            "task_runs.id.any",
        ),
        ({"flows": f.FlowFilter(name=f.NameFilter(any=[""]))}, "flows.name.any[0]"),
        ({"deployments": f.DeploymentFilter(id=f.IdFilter(not_any=["x"]))}, "deployments.id"),
        ({"flow_runs": f.FlowRunFilter(tags=f.TagsFilter(all=["a\x00"]))}, "flow_runs.tags.all"),
    ],
)
async def test_invalid_reads_name_the_field(
    task_runs: TaskRunStub, request_fields: dict[str, object], field: str
) -> None:
    call = task_runs.ReadTaskRuns(pb.ReadTaskRunsRequest(**request_fields))  # type: ignore[arg-type]
    await expect_status(call, grpc.StatusCode.INVALID_ARGUMENT, field)


async def test_a_listed_run_reads_as_the_run_read_alone(
    task_runs: TaskRunStub, subscriptions: Opener
) -> None:
    """Lists are encoded from rows as stored, single reads from the run orchestration holds:
    field for field the same answer (the estimates, computed at read time, aside)."""
    details = state_pb2.StateDetails(
        scheduled_time=ts(now() - hours(1)),
        cache_key="ck",
        cache_expiration=ts(now() + hours(2)),
        retriable=False,
        refresh_cache=True,
        pause_key="pk",
        traceparent="00-abc-def-01",
    )
    made = await create_run(
        task_runs,
        task_key="listed",
        name="everything",
        cache_key="key",
        cache_expiration=ts(now() + hours(1)),
        task_version="v2",
        tags=["a", "b"],
        labels={"team": "x", "n": 3, "on": True},
        task_inputs={
            "x": task_run_pb2.TaskRunInputs(
                inputs=[
                    task_run_pb2.TaskRunInput(
                        task_run=task_run_pb2.TaskRunResultInput(id=str(uuid.uuid4()))
                    ),
                    task_run_pb2.TaskRunInput(parameter=task_run_pb2.ParameterInput(name="p")),
                    task_run_pb2.TaskRunInput(constant=task_run_pb2.ConstantInput(type="int")),
                ]
            )
        },
        empirical_policy=task_run_pb2.TaskRunPolicy(
            retries=2, retry_delay=[1, 5], retry_jitter_factor=0.5, heartbeat_timeout_seconds=9
        ),
        parameters={"rows": [1, 2], "name": "n"},
        state=state_pb2.StateCreate(
            type=state_pb2.STATE_TYPE_SCHEDULED,
            message="queued",
            state_details=details,
            data=struct_pb2.Value(string_value="payload"),
        ),
    )
    delivery = await subscriptions("listed").receive()  # a lease, and a delivery count
    assert delivery.task_run.id == made.id
    alone = (await task_runs.ReadTaskRun(pb.ReadTaskRunRequest(task_run_id=made.id))).task_run
    (listed,) = (
        await task_runs.ReadTaskRuns(
            pb.ReadTaskRunsRequest(
                task_runs=f.TaskRunFilter(id=f.IdFilter(any=[made.id])),
                view=pb.TASK_RUN_VIEW_FULL,
            )
        )
    ).task_runs
    for run in (alone, listed):
        run.ClearField("estimated_run_time")
        run.ClearField("estimated_start_time_delta")
    assert listed == alone
    assert alone.lease_owner and alone.delivery_count == 1 and alone.state.data.string_value


async def test_task_key_any(task_runs: TaskRunStub) -> None:
    await create_run(task_runs, task_key="extract", name="e")
    await create_run(task_runs, task_key="load", name="l")
    await create_run(task_runs, task_key="other", name="o")
    chosen = f.TaskRunFilter(task_key=f.TaskKeyFilter(any=["extract", "load"]))
    assert sorted(await names(task_runs, task_runs=chosen)) == ["e", "l"]


async def test_an_id_prefix_finds_its_run_with_or_without_dashes(task_runs: TaskRunStub) -> None:
    runs = [await create_run(task_runs) for _ in range(3)]
    target = runs[1]
    for prefix in (target.id[:24], target.id[:24].upper(), target.id.replace("-", "")[:20]):
        found = await task_runs.ReadTaskRuns(
            pb.ReadTaskRunsRequest(task_runs=f.TaskRunFilter(id=f.IdFilter(prefix=prefix)))
        )
        assert [r.id for r in found.task_runs] == [target.id], prefix
    everyone = f.TaskRunFilter(id=f.IdFilter(prefix=target.id[:4]))
    shared = await task_runs.ReadTaskRuns(pb.ReadTaskRunsRequest(task_runs=everyone))
    assert len(shared.task_runs) == 3  # time-ordered ids share their first digits
    bad = pb.ReadTaskRunsRequest(task_runs=f.TaskRunFilter(id=f.IdFilter(prefix="xyz")))
    await expect_status(
        task_runs.ReadTaskRuns(bad), grpc.StatusCode.INVALID_ARGUMENT, "task_runs.id.prefix"
    )


async def test_labels_are_answered_present_whether_or_not_a_run_has_any(
    task_runs: TaskRunStub,
) -> None:
    key = f"labels-{uuid.uuid4().hex[:8]}"
    labelled = struct_pb2.Struct()
    labelled.update({"team": "data", "tier": 2})
    await create_run(task_runs, task_key=key, labels=labelled)
    await create_run(task_runs, task_key=key)
    read = await task_runs.ReadTaskRuns(
        pb.ReadTaskRunsRequest(task_runs=f.TaskRunFilter(task_key=f.TaskKeyFilter(any=[key])))
    )
    labels = sorted((dict(r.labels) for r in read.task_runs), key=len)
    assert labels == [{}, {"team": "data", "tier": 2}]
    assert all(r.HasField("labels") for r in read.task_runs)
