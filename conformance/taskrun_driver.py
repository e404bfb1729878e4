"""The scenario language spoken to a taskrun server over gRPC, with the generated stubs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf import json_format

from conformance import observation
from conformance.observation import Observation
from conformance.scenario import Query, RunSpec, StateSpec
from taskrun.v1 import (
    concurrency_limits_pb2,
    concurrency_limits_pb2_grpc,
    filters_pb2,
    resources_pb2,
    resources_pb2_grpc,
    state_pb2,
    task_run_pb2,
    task_run_service_pb2,
    task_run_service_pb2_grpc,
)


def _type(name: str) -> state_pb2.StateType.ValueType:
    return state_pb2.StateType.Value(f"STATE_TYPE_{name}")


def _type_name(value: state_pb2.StateType.ValueType) -> str | None:
    return None if value == 0 else state_pb2.StateType.Name(value).removeprefix("STATE_TYPE_")


class TaskrunDriver:
    """One scenario's view of a taskrun server on `channel`."""

    def __init__(self, channel: grpc.Channel, prefix: str) -> None:
        self.prefix = prefix
        self._runs = task_run_service_pb2_grpc.TaskRunServiceStub(channel)
        self._flows = resources_pb2_grpc.FlowServiceStub(channel)
        self._flow_runs = resources_pb2_grpc.FlowRunServiceStub(channel)
        self._limits = concurrency_limits_pb2_grpc.ConcurrencyLimitServiceStub(channel)
        self._ids: dict[str, str] = {}
        self._flow_run_id: str | None = None

    def error_code(self, error: Exception) -> str:
        if isinstance(error, grpc.RpcError):
            return str(error.code().name)
        raise error

    def start_flow_run(self, state_type: str) -> None:
        flow = self._flows.CreateFlow(resources_pb2.CreateFlowRequest(name=f"{self.prefix}flow"))
        flow_run = self._flow_runs.CreateFlowRun(
            resources_pb2.CreateFlowRunRequest(flow_id=flow.flow.id, state_type=_type(state_type))
        )
        self._flow_run_id = flow_run.flow_run.id

    def set_flow_run(self, state_type: str) -> None:
        self._flow_runs.SetFlowRunState(
            resources_pb2.SetFlowRunStateRequest(
                flow_run_id=self._flow_run_id or "", state_type=_type(state_type)
            )
        )

    def create_limit(self, tag: str, limit: int) -> None:
        self._limits.CreateConcurrencyLimit(
            concurrency_limits_pb2.CreateConcurrencyLimitRequest(
                tag=self.prefix + tag, concurrency_limit=limit
            )
        )

    def slots(self, tag: str) -> int:
        answer = self._limits.ReadConcurrencyLimit(
            concurrency_limits_pb2.ReadConcurrencyLimitRequest(tag=self.prefix + tag)
        )
        return len(answer.concurrency_limit.active_slots)

    def _state(self, spec: StateSpec) -> state_pb2.StateCreate:
        details = state_pb2.StateDetails()
        for name, value in spec.details.items():
            if name == "cache_key":
                details.cache_key = self.prefix + value
            elif name == "cache_expiration":
                details.cache_expiration.FromDatetime(_in(value))
            else:
                setattr(details, name, value)
        if spec.scheduled_in is not None:
            details.scheduled_time.FromDatetime(_in(spec.scheduled_in))
        create = state_pb2.StateCreate(
            type=_type(spec.type), name=spec.name or "", state_details=details
        )
        if spec.data is not None:
            json_format.ParseDict(spec.data, create.data)
        return create

    def create(self, spec: RunSpec) -> Observation:
        request = task_run_service_pb2.CreateTaskRunRequest(
            name=f"{self.prefix}{spec.alias}",
            task_key=f"{self.prefix}{spec.alias}",
            dynamic_key="0",
            tags=[self.prefix + tag for tag in spec.tags],
            empirical_policy=task_run_pb2.TaskRunPolicy(
                retries=spec.retries or 0, retry_delay=list(spec.retry_delay)
            ),
        )
        if spec.in_flow_run and self._flow_run_id:
            request.flow_run_id = self._flow_run_id
        if spec.state is not None:
            request.state.CopyFrom(self._state(spec.state))
        answer = self._runs.CreateTaskRun(request)
        self._ids[spec.alias] = answer.task_run.id
        return {"run": self.read(spec.alias)}

    def propose(self, alias: str, spec: StateSpec, force: bool) -> Observation:
        answer = self._runs.SetTaskRunState(
            task_run_service_pb2.SetTaskRunStateRequest(
                task_run_id=self._ids[alias], state=self._state(spec), force=force
            )
        )
        status = task_run_service_pb2.SetStateStatus.Name(answer.status)
        status = status.removeprefix("SET_STATE_STATUS_")
        delay = answer.details.delay.ToTimedelta() if answer.details.HasField("delay") else None
        returned = answer.state if answer.HasField("state") else None
        return {
            "status": status,
            "state": None
            if returned is None
            else observation.state(
                _type_name(returned.type),
                returned.name,
                _details(returned.state_details),
                self.prefix,
            ),
            "delay": None if delay is None else round(delay.total_seconds()),
            "run": self.read(alias),
        }

    def query(self, query: Query) -> Observation:
        runs = filters_pb2.TaskRunFilter(tags=filters_pb2.TagsFilter(all=[f"{self.prefix}all"]))
        if query.states:
            runs.state.type.any.extend(_type(name) for name in query.states)
        if query.start_time_null is not None:
            runs.start_time.is_null = query.start_time_null
        if query.name_like is not None:
            runs.name.like = query.name_like
        request = task_run_service_pb2.ReadTaskRunsRequest(
            task_runs=runs,
            sort=filters_pb2.TaskRunSort.Value(f"TASK_RUN_SORT_{query.sort}"),
            offset=query.offset,
        )
        if query.limit is not None:
            request.limit = query.limit
        found = self._runs.ReadTaskRuns(request).task_runs
        count = self._runs.CountTaskRuns(
            task_run_service_pb2.CountTaskRunsRequest(task_runs=runs)
        ).count
        aliases = {run_id: alias for alias, run_id in self._ids.items()}
        return {"runs": [aliases.get(run.id, "?") for run in found], "count": count}

    def delete(self, alias: str) -> Observation:
        self._runs.DeleteTaskRun(
            task_run_service_pb2.DeleteTaskRunRequest(task_run_id=self._ids[alias])
        )
        return {}

    def read(self, alias: str) -> Observation:
        run = self._runs.ReadTaskRun(
            task_run_service_pb2.ReadTaskRunRequest(task_run_id=self._ids[alias])
        ).task_run
        states = self._runs.ReadTaskRunStates(
            task_run_service_pb2.ReadTaskRunStatesRequest(task_run_id=self._ids[alias])
        ).states
        return {
            "state_type": _type_name(run.state_type),
            "state_name": run.state_name,
            "run_count": run.run_count,
            "flow_run_run_count": run.flow_run_run_count,
            "start_time": run.HasField("start_time"),
            "end_time": run.HasField("end_time"),
            "expected_start_time": run.HasField("expected_start_time"),
            "next_scheduled_start_time": run.HasField("next_scheduled_start_time"),
            "total_run_time_positive": run.total_run_time.ToTimedelta() > timedelta(0),
            "details": observation.details(_details(run.state.state_details), self.prefix),
            "history": [state.name for state in states],
        }


def _details(message: state_pb2.StateDetails) -> dict[str, Any]:
    """The details as Prefect spells them: unset strings and times absent."""
    raw: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    for name in ("refresh_cache", "retriable", "deferred"):
        if message.HasField(name):
            raw[name] = getattr(message, name)
    return raw


def _in(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)
