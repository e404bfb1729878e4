"""Flows, deployments, flow runs and logs from the domain to protobuf."""

from __future__ import annotations

import uuid

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from taskrun.v1 import resources_pb2 as pb
from taskrun_server.api.wire import state_type_to_proto, timestamp_to_proto
from taskrun_server.domain.resources import Deployment, Flow, FlowRun, Log


def _id(value: uuid.UUID | None) -> str:
    return str(value) if value is not None else ""


def flow_to_proto(flow: Flow) -> pb.Flow:
    return pb.Flow(
        id=str(flow.id),
        created=timestamp_to_proto(flow.created),
        updated=timestamp_to_proto(flow.updated),
        name=flow.name,
        tags=flow.tags,
    )


def deployment_to_proto(deployment: Deployment) -> pb.Deployment:
    return pb.Deployment(
        id=str(deployment.id),
        created=timestamp_to_proto(deployment.created),
        updated=timestamp_to_proto(deployment.updated),
        name=deployment.name,
        flow_id=str(deployment.flow_id),
        tags=deployment.tags,
    )


def flow_run_to_proto(run: FlowRun) -> pb.FlowRun:
    return pb.FlowRun(
        id=str(run.id),
        created=timestamp_to_proto(run.created),
        updated=timestamp_to_proto(run.updated),
        name=run.name,
        flow_id=str(run.flow_id),
        deployment_id=_id(run.deployment_id),
        parent_task_run_id=_id(run.parent_task_run_id),
        tags=run.tags,
        state_type=state_type_to_proto(run.state_type),
        state_name=run.state_name,
        state_timestamp=timestamp_to_proto(run.state_timestamp),
    )


def log_to_proto(log: Log, into: RepeatedCompositeFieldContainer[pb.Log]) -> pb.Log:
    """A log line, added to the answer's list field in place (see `add_within_budget`)."""
    return into.add(
        id=str(log.id),
        created=timestamp_to_proto(log.created),
        name=log.name,
        level=log.level,
        message=log.message,
        timestamp=timestamp_to_proto(log.timestamp),
        flow_run_id=_id(log.flow_run_id),
        task_run_id=_id(log.task_run_id),
    )
