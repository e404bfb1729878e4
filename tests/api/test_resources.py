"""Flows, deployments, flow runs and logs: the minimal resources task-run filters rely on."""

from __future__ import annotations

import uuid

import grpc

from taskrun.v1 import resources_pb2 as pb
from taskrun.v1 import state_pb2
from tests.factories import (
    DeploymentStub,
    FlowRunStub,
    FlowStub,
    LogStub,
    TaskRunStub,
    create_run,
    expect_status,
)


async def test_create_flow_is_idempotent_by_name(flows: FlowStub) -> None:
    first = await flows.CreateFlow(pb.CreateFlowRequest(name="etl", tags=["a"]))
    second = await flows.CreateFlow(pb.CreateFlowRequest(name="etl"))
    assert first.created and not second.created
    assert second.flow.id == first.flow.id and list(second.flow.tags) == ["a"]
    read = await flows.ReadFlow(pb.ReadFlowRequest(flow_id=first.flow.id))
    assert read.flow == first.flow


async def test_unknown_flow_is_not_found(flows: FlowStub) -> None:
    request = pb.ReadFlowRequest(flow_id=str(uuid.uuid4()))
    await expect_status(flows.ReadFlow(request), grpc.StatusCode.NOT_FOUND, "flow_id")


async def test_flow_needs_a_name(flows: FlowStub) -> None:
    await expect_status(
        flows.CreateFlow(pb.CreateFlowRequest()), grpc.StatusCode.INVALID_ARGUMENT, "name"
    )


async def test_deployment_is_idempotent_per_flow_and_name(
    flows: FlowStub, deployments: DeploymentStub
) -> None:
    flow = (await flows.CreateFlow(pb.CreateFlowRequest(name="etl"))).flow
    first = await deployments.CreateDeployment(
        pb.CreateDeploymentRequest(name="d", flow_id=flow.id)
    )
    again = await deployments.CreateDeployment(
        pb.CreateDeploymentRequest(name="d", flow_id=flow.id)
    )
    assert first.created and not again.created and again.deployment.id == first.deployment.id
    read = await deployments.ReadDeployment(
        pb.ReadDeploymentRequest(deployment_id=first.deployment.id)
    )
    assert read.deployment.flow_id == flow.id


async def test_deployment_of_unknown_flow_is_not_found(deployments: DeploymentStub) -> None:
    request = pb.CreateDeploymentRequest(name="d", flow_id=str(uuid.uuid4()))
    await expect_status(deployments.CreateDeployment(request), grpc.StatusCode.NOT_FOUND, "flow_id")


async def test_flow_run_defaults_to_pending_and_its_state_can_be_set(
    flows: FlowStub, flow_runs: FlowRunStub
) -> None:
    flow = (await flows.CreateFlow(pb.CreateFlowRequest(name="etl"))).flow
    run = (await flow_runs.CreateFlowRun(pb.CreateFlowRunRequest(flow_id=flow.id))).flow_run
    assert (run.state_type, run.state_name) == (state_pb2.STATE_TYPE_PENDING, "Pending")
    running = await flow_runs.SetFlowRunState(
        pb.SetFlowRunStateRequest(flow_run_id=run.id, state_type=state_pb2.STATE_TYPE_RUNNING)
    )
    assert running.flow_run.state_name == "Running"
    read = await flow_runs.ReadFlowRun(pb.ReadFlowRunRequest(flow_run_id=run.id))
    assert read.flow_run.state_type == state_pb2.STATE_TYPE_RUNNING


async def test_flow_run_references_are_checked(flows: FlowStub, flow_runs: FlowRunStub) -> None:
    await expect_status(
        flow_runs.CreateFlowRun(pb.CreateFlowRunRequest(flow_id=str(uuid.uuid4()))),
        grpc.StatusCode.NOT_FOUND,
        "flow_id",
    )
    flow = (await flows.CreateFlow(pb.CreateFlowRequest(name="etl"))).flow
    await expect_status(
        flow_runs.CreateFlowRun(
            pb.CreateFlowRunRequest(flow_id=flow.id, deployment_id=str(uuid.uuid4()))
        ),
        grpc.StatusCode.NOT_FOUND,
        "deployment_id",
    )
    await expect_status(
        flow_runs.SetFlowRunState(
            pb.SetFlowRunStateRequest(
                flow_run_id=str(uuid.uuid4()), state_type=state_pb2.STATE_TYPE_RUNNING
            )
        ),
        grpc.StatusCode.NOT_FOUND,
        "flow_run_id",
    )


async def test_logs_are_written_and_read_in_time_order(
    task_runs: TaskRunStub, logs: LogStub
) -> None:
    run = await create_run(task_runs)
    written = await logs.CreateLogs(
        pb.CreateLogsRequest(
            logs=[
                pb.LogCreate(name="l", level=20, message=f"m{i}", task_run_id=run.id)
                for i in range(3)
            ]
        )
    )
    assert written.count == 3
    read = await logs.ReadLogs(pb.ReadLogsRequest(task_run_id=run.id))
    assert [m.message for m in read.logs] == ["m0", "m1", "m2"]


async def test_logs_are_validated(logs: LogStub) -> None:
    cases: list[tuple[pb.CreateLogsRequest, str]] = [
        (pb.CreateLogsRequest(logs=[pb.LogCreate(level=20, message="m")]), "logs[0]"),
        (
            pb.CreateLogsRequest(logs=[pb.LogCreate(level=-1, task_run_id=str(uuid.uuid4()))]),
            "logs[0].level",
        ),
        (pb.CreateLogsRequest(logs=[pb.LogCreate(task_run_id="bad")]), "logs[0].task_run_id"),
    ]
    for request, field in cases:
        await expect_status(logs.CreateLogs(request), grpc.StatusCode.INVALID_ARGUMENT, field)
    await expect_status(
        logs.ReadLogs(pb.ReadLogsRequest()), grpc.StatusCode.INVALID_ARGUMENT, "task_run_id"
    )
