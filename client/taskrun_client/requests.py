"""Request messages built from keyword arguments, shared by the async and sync clients."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from taskrun.v1 import state_pb2
from taskrun.v1 import task_run_service_pb2 as pb


def timestamp(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


def duration(value: timedelta) -> Duration:
    out = Duration()
    out.FromTimedelta(value)
    return out


def proposal(
    state: state_pb2.StateCreate | int, *, name: str = "", message: str = ""
) -> state_pb2.StateCreate:
    """A StateCreate from a StateType value (with an optional name and message) or as given."""
    if isinstance(state, state_pb2.StateCreate):
        return state
    return state_pb2.StateCreate(type=state, name=name, message=message)  # type: ignore[arg-type]


def create_task_run(task_key: str, dynamic_key: str, **fields: Any) -> pb.CreateTaskRunRequest:
    return pb.CreateTaskRunRequest(task_key=task_key, dynamic_key=dynamic_key, **fields)


def history(
    start: datetime, end: datetime, interval: timedelta, **filters: Any
) -> pb.TaskRunHistoryRequest:
    return pb.TaskRunHistoryRequest(
        history_start=timestamp(start),
        history_end=timestamp(end),
        history_interval=duration(interval),
        **filters,
    )


def set_state(
    task_run_id: str,
    state: state_pb2.StateCreate | int,
    force: bool,
    lease_id: str = "",
    **naming: str,
) -> pb.SetTaskRunStateRequest:
    return pb.SetTaskRunStateRequest(
        task_run_id=task_run_id, state=proposal(state, **naming), force=force, lease_id=lease_id
    )


def heartbeat(leases: list[tuple[str, str]]) -> pb.HeartbeatTaskRunsRequest:
    """(task run id, lease id) pairs."""
    return pb.HeartbeatTaskRunsRequest(
        leases=[pb.TaskRunLease(task_run_id=run_id, lease_id=lease) for run_id, lease in leases]
    )


def subscribe(
    task_keys: list[str], prefetch: int, client_id: str
) -> pb.SubscribeScheduledTasksRequest:
    return pb.SubscribeScheduledTasksRequest(
        task_keys=task_keys, prefetch=prefetch, client_id=client_id
    )
