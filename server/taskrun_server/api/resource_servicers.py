"""Servicers for flows, deployments, flow runs and logs: the minimal supporting resources."""

from __future__ import annotations

from typing import Any

import grpc

from taskrun.v1 import resources_pb2 as pb
from taskrun.v1 import resources_pb2_grpc as pb_grpc
from taskrun_server.api.answer_budget import add_within_budget
from taskrun_server.api.filter_codec import parse_limit, parse_offset
from taskrun_server.api.resource_codec import (
    deployment_to_proto,
    flow_run_to_proto,
    flow_to_proto,
    log_to_proto,
)
from taskrun_server.api.wire import parse_optional_timestamp, parse_state_type
from taskrun_server.domain.errors import InvalidArgument
from taskrun_server.domain.identifiers import parse_id, parse_optional_id
from taskrun_server.domain.limits import (
    MAX_LOGS_PER_CALL,
    MAX_NAME_BYTES,
    check_required_text,
    check_tags,
    check_text,
)
from taskrun_server.domain.resources import LogCreate
from taskrun_server.domain.states import StateType
from taskrun_server.service.clock import utcnow
from taskrun_server.service.resources import ResourceService

Context = grpc.aio.ServicerContext[Any, Any]


class FlowServicer(pb_grpc.FlowServiceServicer):
    def __init__(self, service: ResourceService) -> None:
        self._service = service

    async def CreateFlow(
        self, request: pb.CreateFlowRequest, context: Context
    ) -> pb.CreateFlowResponse:
        flow, created = await self._service.create_flow(
            check_required_text(request.name, "name", max_bytes=MAX_NAME_BYTES),
            check_tags(request.tags, "tags"),
        )
        return pb.CreateFlowResponse(flow=flow_to_proto(flow), created=created)

    async def ReadFlow(self, request: pb.ReadFlowRequest, context: Context) -> pb.ReadFlowResponse:
        flow = await self._service.read_flow(parse_id(request.flow_id, "flow_id"))
        return pb.ReadFlowResponse(flow=flow_to_proto(flow))


class DeploymentServicer(pb_grpc.DeploymentServiceServicer):
    def __init__(self, service: ResourceService) -> None:
        self._service = service

    async def CreateDeployment(
        self, request: pb.CreateDeploymentRequest, context: Context
    ) -> pb.CreateDeploymentResponse:
        deployment, created = await self._service.create_deployment(
            check_required_text(request.name, "name", max_bytes=MAX_NAME_BYTES),
            parse_id(request.flow_id, "flow_id"),
            check_tags(request.tags, "tags"),
        )
        return pb.CreateDeploymentResponse(
            deployment=deployment_to_proto(deployment), created=created
        )

    async def ReadDeployment(
        self, request: pb.ReadDeploymentRequest, context: Context
    ) -> pb.ReadDeploymentResponse:
        deployment = await self._service.read_deployment(
            parse_id(request.deployment_id, "deployment_id")
        )
        return pb.ReadDeploymentResponse(deployment=deployment_to_proto(deployment))


class FlowRunServicer(pb_grpc.FlowRunServiceServicer):
    def __init__(self, service: ResourceService) -> None:
        self._service = service

    async def CreateFlowRun(
        self, request: pb.CreateFlowRunRequest, context: Context
    ) -> pb.CreateFlowRunResponse:
        state_type = (
            parse_state_type(request.state_type, "state_type")
            if request.state_type
            else StateType.PENDING
        )
        run = await self._service.create_flow_run(
            flow_id=parse_id(request.flow_id, "flow_id"),
            name=check_text(request.name, "name", max_bytes=MAX_NAME_BYTES) or None,
            deployment_id=parse_optional_id(request.deployment_id, "deployment_id"),
            parent_task_run_id=parse_optional_id(request.parent_task_run_id, "parent_task_run_id"),
            tags=check_tags(request.tags, "tags"),
            state_type=state_type,
            state_name=check_text(request.state_name, "state_name", max_bytes=MAX_NAME_BYTES)
            or None,
        )
        return pb.CreateFlowRunResponse(flow_run=flow_run_to_proto(run))

    async def ReadFlowRun(
        self, request: pb.ReadFlowRunRequest, context: Context
    ) -> pb.ReadFlowRunResponse:
        run = await self._service.read_flow_run(parse_id(request.flow_run_id, "flow_run_id"))
        return pb.ReadFlowRunResponse(flow_run=flow_run_to_proto(run))

    async def SetFlowRunState(
        self, request: pb.SetFlowRunStateRequest, context: Context
    ) -> pb.SetFlowRunStateResponse:
        run = await self._service.set_flow_run_state(
            parse_id(request.flow_run_id, "flow_run_id"),
            parse_state_type(request.state_type, "state_type"),
            check_text(request.state_name, "state_name", max_bytes=MAX_NAME_BYTES) or None,
        )
        return pb.SetFlowRunStateResponse(flow_run=flow_run_to_proto(run))


class LogServicer(pb_grpc.LogServiceServicer):
    def __init__(self, service: ResourceService) -> None:
        self._service = service

    async def CreateLogs(
        self, request: pb.CreateLogsRequest, context: Context
    ) -> pb.CreateLogsResponse:
        if len(request.logs) > MAX_LOGS_PER_CALL:
            raise InvalidArgument(f"at most {MAX_LOGS_PER_CALL} logs per call", "logs")
        now = utcnow()
        logs = [_parse_log(item, f"logs[{i}]", now) for i, item in enumerate(request.logs)]
        return pb.CreateLogsResponse(count=await self._service.create_logs(logs))

    async def ReadLogs(self, request: pb.ReadLogsRequest, context: Context) -> pb.ReadLogsResponse:
        task_run_id = parse_optional_id(request.task_run_id, "task_run_id")
        flow_run_id = parse_optional_id(request.flow_run_id, "flow_run_id")
        if (task_run_id is None) == (flow_run_id is None):
            raise InvalidArgument(
                "exactly one of task_run_id and flow_run_id is required", "task_run_id"
            )
        logs = await self._service.read_logs(
            task_run_id=task_run_id,
            flow_run_id=flow_run_id,
            limit=parse_limit(request.HasField("limit"), request.limit),
            offset=parse_offset(request.offset),
        )
        answer = pb.ReadLogsResponse()
        answer.truncated = add_within_budget(answer.logs, logs, log_to_proto)
        return answer


def _parse_log(item: pb.LogCreate, path: str, now: Any) -> LogCreate:
    if not 0 <= item.level <= 100:
        raise InvalidArgument("must be between 0 and 100", f"{path}.level")
    task_run_id = parse_optional_id(item.task_run_id, f"{path}.task_run_id")
    flow_run_id = parse_optional_id(item.flow_run_id, f"{path}.flow_run_id")
    if task_run_id is None and flow_run_id is None:
        raise InvalidArgument("a log needs a task_run_id or a flow_run_id", path)
    return LogCreate(
        name=check_text(item.name, f"{path}.name", max_bytes=MAX_NAME_BYTES),
        level=item.level,
        message=check_text(item.message, f"{path}.message"),
        timestamp=parse_optional_timestamp(item, "timestamp", f"{path}.timestamp") or now,
        task_run_id=task_run_id,
        flow_run_id=flow_run_id,
    )
