"""Request messages built from keyword arguments: what the async client sends (the sync client
is the async one run on a thread of its own, so both send the same)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from taskrun.v1 import filters_pb2, state_pb2, task_run_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_client.naming import StateTypeLike, state_type


def timestamp(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


def duration(value: timedelta) -> Duration:
    out = Duration()
    out.FromTimedelta(value)
    return out


def proposal(
    state: state_pb2.StateCreate | StateTypeLike, *, name: str = "", message: str = ""
) -> state_pb2.StateCreate:
    """A StateCreate from a state type (by name or value, with an optional name and message),
    or the StateCreate as given."""
    if isinstance(state, state_pb2.StateCreate):
        return state
    return state_pb2.StateCreate(type=state_type(state), name=name, message=message)


def create_task_run(
    task_key: str,
    dynamic_key: str,
    *,
    name: str = "",
    id: str = "",
    flow_run_id: str = "",
    tags: Sequence[str] = (),
    labels: Mapping[str, Any] | None = None,
    parameters: Mapping[str, Any] | struct_pb2.Struct | None = None,
    state: state_pb2.StateCreate | StateTypeLike | None = None,
    empirical_policy: task_run_pb2.TaskRunPolicy | None = None,
    cache_key: str = "",
    task_version: str = "",
) -> pb.CreateTaskRunRequest:
    request = pb.CreateTaskRunRequest(
        task_key=task_key,
        dynamic_key=dynamic_key,
        name=name,
        id=id,
        flow_run_id=flow_run_id,
        tags=tags,
        cache_key=cache_key,
        task_version=task_version,
        empirical_policy=empirical_policy,
        state=proposal(state) if state is not None else None,
    )
    if labels:
        request.labels.update(labels)
    if isinstance(parameters, struct_pb2.Struct):
        request.parameters.CopyFrom(parameters)
    elif parameters is not None:
        request.parameters.update(parameters)
    return request


class Filters:
    """The four filters every task-run read, count and history takes."""

    def __init__(
        self,
        task_runs: filters_pb2.TaskRunFilter | None = None,
        flow_runs: filters_pb2.FlowRunFilter | None = None,
        flows: filters_pb2.FlowFilter | None = None,
        deployments: filters_pb2.DeploymentFilter | None = None,
    ) -> None:
        self.task_runs = task_runs
        self.flow_runs = flow_runs
        self.flows = flows
        self.deployments = deployments

    def fields(self) -> dict[str, Any]:
        """As request fields (only the filters given: an empty filter still restricts)."""
        given = {
            "task_runs": self.task_runs,
            "flow_runs": self.flow_runs,
            "flows": self.flows,
            "deployments": self.deployments,
        }
        return {name: value for name, value in given.items() if value is not None}


def history(
    start: datetime, end: datetime, interval: timedelta, filters: Filters
) -> pb.TaskRunHistoryRequest:
    return pb.TaskRunHistoryRequest(
        history_start=timestamp(start),
        history_end=timestamp(end),
        history_interval=duration(interval),
        **filters.fields(),
    )


def set_state(
    task_run_id: str,
    state: state_pb2.StateCreate | StateTypeLike,
    force: bool,
    lease_id: str = "",
    *,
    name: str = "",
    message: str = "",
) -> pb.SetTaskRunStateRequest:
    return pb.SetTaskRunStateRequest(
        task_run_id=task_run_id,
        state=proposal(state, name=name, message=message),
        force=force,
        lease_id=lease_id,
    )


def heartbeat(leases: Sequence[tuple[str, str]]) -> pb.HeartbeatTaskRunsRequest:
    """(task run id, lease id) pairs."""
    return pb.HeartbeatTaskRunsRequest(
        leases=[pb.TaskRunLease(task_run_id=run_id, lease_id=lease) for run_id, lease in leases]
    )


def subscribe(
    task_keys: Sequence[str], prefetch: int, client_id: str
) -> pb.SubscribeScheduledTasksRequest:
    return pb.SubscribeScheduledTasksRequest(
        task_keys=task_keys, prefetch=prefetch, client_id=client_id
    )


def view(full: bool) -> pb.TaskRunView.ValueType:
    return pb.TASK_RUN_VIEW_FULL if full else pb.TASK_RUN_VIEW_BASIC
