"""Task runs and states between protobuf and the domain, validating requests on the way in."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from google.protobuf import struct_pb2
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from taskrun.v1 import state_pb2, task_run_pb2, task_run_service_pb2
from taskrun_server.api.wire import (
    check_finite,
    duration_fields,
    duration_to_proto,
    parse_optional_timestamp,
    parse_state_type,
    python_to_struct,
    python_to_value,
    state_type_to_proto,
    struct_to_python,
    time_fields,
    timestamp_to_proto,
    value_to_python,
)
from taskrun_server.domain.errors import InvalidArgument
from taskrun_server.domain.history import HistoryInterval
from taskrun_server.domain.identifiers import parse_id, parse_optional_id
from taskrun_server.domain.limits import (
    MAX_HEARTBEAT_LEASES,
    MAX_KEY_BYTES,
    MAX_LABELS,
    MAX_LABELS_BYTES,
    MAX_NAME_BYTES,
    MAX_PARAMETERS_BYTES,
    MAX_RETRY_JITTER_FACTOR,
    MAX_STATE_DATA_BYTES,
    MAX_TASK_INPUTS_BYTES,
    MAX_TIMEOUT_SECONDS,
    check_json,
    check_required_text,
    check_tags,
    check_text,
)
from taskrun_server.domain.states import State, StateCreate, StateDetails, StateType
from taskrun_server.domain.task_runs import (
    INPUT_KEYS,
    StoredTaskRun,
    TaskInputs,
    TaskRun,
    TaskRunCreate,
    TaskRunInput,
    TaskRunPolicy,
    estimated_run_time,
    estimated_start_time_delta,
)
from taskrun_server.orchestration.decision import Decision, SetStateStatus
from taskrun_server.repository.delivery import Delivery
from taskrun_server.service.leases import Heartbeat, LeaseStatus
from taskrun_server.service.orchestration import StateProposal

Item = TypeVar("Item")
Parsed = TypeVar("Parsed")

# -- out: domain -> protobuf --------------------------------------------------------------------


def _id(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


def _state_fields(
    state_id: str,
    state_type: StateType | None,
    name: str | None,
    timestamp: datetime | None,
    message: str | None,
    details: dict[str, Any],
) -> dict[str, Any]:
    """A state without its data (a Value cannot be built from a dict, see `state_to_proto`),
    from its stored form: a state read alone and a run's current state share this encoder."""
    return {
        "id": state_id,
        "type": state_type_to_proto(state_type),
        "name": name,
        "timestamp": time_fields(timestamp),
        "message": message,
        "state_details": _stored_details_fields(details),
    }


def state_to_proto(
    state: State, into: RepeatedCompositeFieldContainer[state_pb2.State] | None = None
) -> state_pb2.State:
    """A state; with `into`, added to that list field in place (see `add_within_budget`)."""
    fields = _state_fields(
        str(state.id),
        state.type,
        state.name,
        state.timestamp,
        state.message,
        state.state_details.to_json(),
    )
    msg = into.add(**fields) if into is not None else state_pb2.State(**fields)
    if state.data is not None:
        msg.data.CopyFrom(python_to_value(state.data))
    return msg


_NO_LABELS = struct_pb2.Struct()
"""Copied into every run without labels; never changed."""
_POLICY_FIELDS = frozenset(task_run_pb2.TaskRunPolicy.DESCRIPTOR.fields_by_name)
_DETAIL_FIELDS = frozenset(state_pb2.StateDetails.DESCRIPTOR.fields_by_name)
_DETAIL_TIMES = frozenset({"scheduled_time", "cache_expiration", "pause_timeout"})


def _stored_details_fields(stored: dict[str, Any]) -> dict[str, Any]:
    """State details as stored (JSON: ids as text, times in ISO 8601) to message fields; keys a
    newer server stored and this one does not know are left out."""
    fields: dict[str, Any] = {}
    for name, value in stored.items():
        if name in _DETAIL_TIMES:
            fields[name] = time_fields(datetime.fromisoformat(value))
        elif name in _DETAIL_FIELDS:
            fields[name] = value
    return fields


def _stored_inputs_fields(stored: dict[str, list[dict[str, str]]]) -> dict[str, Any]:
    return {
        name: {"inputs": [_stored_input_fields(i) for i in inputs]}
        for name, inputs in stored.items()
    }


def _stored_input_fields(stored: dict[str, str]) -> dict[str, Any]:
    """{"input_type": "task_run", "id": x} to {"task_run": {"id": x}}."""
    kind = stored["input_type"]
    key = INPUT_KEYS[kind]
    return {kind: {key: stored[key]}}


def stored_run_to_proto(
    run: StoredTaskRun,
    now: datetime,
    into: RepeatedCompositeFieldContainer[task_run_pb2.TaskRun] | None = None,
) -> task_run_pb2.TaskRun:
    """The wire form of a run, from the run as stored; `now` fixes the estimated fields,
    computed at read time. Built from one dict of constructor arguments: upb fills the whole
    tree in C from it, where setting fields one message at a time cost several times more.
    With `into`, the run is added to that list field in place (see `add_within_budget`)."""
    state: dict[str, Any] | None = None
    state_id = _id(run.state_id)  # once: the run and its state both name it
    if state_id is not None:
        state = _state_fields(
            state_id,
            run.state_type,
            run.state_name,
            run.state_timestamp,
            run.state_message,
            run.state_details or {},
        )
    leased = run.lease_id is not None
    fields: dict[str, Any] = {
        "id": str(run.id),
        "created": time_fields(run.created),
        "updated": time_fields(run.updated),
        "name": run.name,
        "flow_run_id": _id(run.flow_run_id),
        "task_key": run.task_key,
        "dynamic_key": run.dynamic_key,
        "cache_key": run.cache_key,
        "cache_expiration": time_fields(run.cache_expiration),
        "task_version": run.task_version,
        "empirical_policy": {
            k: v for k, v in run.empirical_policy.items() if k in _POLICY_FIELDS and v is not None
        },
        "tags": run.tags,
        # A run's labels are most often empty: a message is copied in C, a dict goes through
        # Struct's Python-level update (about 1 us a run).
        "labels": run.labels or _NO_LABELS,
        "task_inputs": _stored_inputs_fields(run.task_inputs),
        "state_id": state_id,
        "state_type": state_type_to_proto(run.state_type),
        "state_name": run.state_name,
        "run_count": run.run_count,
        "flow_run_run_count": run.flow_run_run_count,
        "expected_start_time": time_fields(run.expected_start_time),
        "next_scheduled_start_time": time_fields(run.next_scheduled_start_time),
        "start_time": time_fields(run.start_time),
        "end_time": time_fields(run.end_time),
        "total_run_time": duration_fields(run.total_run_time),
        "estimated_run_time": duration_fields(
            estimated_run_time(run.state_type, run.state_timestamp, run.total_run_time, now)
        ),
        "estimated_start_time_delta": duration_fields(
            estimated_start_time_delta(run.expected_start_time, run.start_time, run.state_type, now)
        ),
        "state": state,
        "delivery_count": run.delivery_count,
        "lease_owner": run.lease_owner if leased else None,
        "lease_expires": time_fields(run.lease_expires_at) if leased else None,
        "lease_renewed": time_fields(run.lease_renewed_at) if leased else None,
    }
    msg = into.add(**fields) if into is not None else task_run_pb2.TaskRun(**fields)
    if run.parameters is not None:
        msg.parameters.CopyFrom(python_to_struct(run.parameters))
    if run.state_data is not None and state is not None:
        msg.state.data.CopyFrom(python_to_value(run.state_data))
    return msg


def task_run_to_proto(run: TaskRun, now: datetime) -> task_run_pb2.TaskRun:
    """The wire form of a run, through its stored form: one encoder for every answer."""
    return stored_run_to_proto(run.stored(), now)


def history_to_proto(
    intervals: list[HistoryInterval],
) -> task_run_service_pb2.TaskRunHistoryResponse:
    """Built from plain fields (as runs are: see `time_fields`): a Duration made first and
    copied in cost twice as much, and a history answer has two per state of every bucket."""
    response = task_run_service_pb2.TaskRunHistoryResponse()
    for interval in intervals:
        item = response.intervals.add(
            interval_start=time_fields(interval.interval_start),
            interval_end=time_fields(interval.interval_end),
        )
        for state in interval.states:
            item.states.add(
                state_type=state_type_to_proto(state.state_type),
                state_name=state.state_name,
                count_runs=state.count_runs,
                sum_estimated_run_time=duration_fields(state.sum_estimated_run_time),
                sum_estimated_lateness=duration_fields(state.sum_estimated_lateness),
            )
    return response


# -- in: protobuf -> domain, validated ---------------------------------------------------------


def parse_state_details(msg: state_pb2.StateDetails, path: str) -> StateDetails:
    details = StateDetails(
        flow_run_id=parse_optional_id(msg.flow_run_id, f"{path}.flow_run_id"),
        task_run_id=parse_optional_id(msg.task_run_id, f"{path}.task_run_id"),
        child_flow_run_id=parse_optional_id(msg.child_flow_run_id, f"{path}.child_flow_run_id"),
        scheduled_time=parse_optional_timestamp(msg, "scheduled_time", f"{path}.scheduled_time"),
        cache_key=check_text(msg.cache_key, f"{path}.cache_key", max_bytes=MAX_KEY_BYTES) or None,
        cache_expiration=parse_optional_timestamp(
            msg, "cache_expiration", f"{path}.cache_expiration"
        ),
        untrackable_result=msg.untrackable_result,
        pause_timeout=parse_optional_timestamp(msg, "pause_timeout", f"{path}.pause_timeout"),
        pause_reschedule=msg.pause_reschedule,
        pause_key=check_text(msg.pause_key, f"{path}.pause_key") or None,
        transition_id=parse_optional_id(msg.transition_id, f"{path}.transition_id"),
        task_parameters_id=parse_optional_id(msg.task_parameters_id, f"{path}.task_parameters_id"),
        traceparent=check_text(msg.traceparent, f"{path}.traceparent") or None,
    )
    for name in ("refresh_cache", "retriable", "deferred"):
        if msg.HasField(name):
            setattr(details, name, getattr(msg, name))
    return details


def parse_state_create(msg: state_pb2.StateCreate, path: str) -> StateCreate:
    data_path = f"{path}.data"
    _check_size(msg.data.ByteSize(), MAX_STATE_DATA_BYTES, data_path)
    data = (
        check_json(value_to_python(msg.data, data_path), data_path)
        if msg.HasField("data")
        else None
    )
    return StateCreate(
        type=parse_state_type(msg.type, f"{path}.type"),
        name=check_text(msg.name, f"{path}.name", max_bytes=MAX_NAME_BYTES) or None,
        message=check_text(msg.message, f"{path}.message") or None,
        state_details=parse_state_details(msg.state_details, f"{path}.state_details"),
        data=data,
    )


def _parse_policy(msg: task_run_pb2.TaskRunPolicy, path: str) -> TaskRunPolicy:
    if msg.max_retries < 0:
        raise InvalidArgument("must not be negative", f"{path}.max_retries")
    if msg.HasField("retries") and msg.retries < 0:
        raise InvalidArgument("must not be negative", f"{path}.retries")
    if len(msg.retry_delay) > 50:
        raise InvalidArgument("has more than 50 delays", f"{path}.retry_delay")
    delays = [_parse_seconds(d, f"{path}.retry_delay[{i}]") for i, d in enumerate(msg.retry_delay)]
    seconds = _parse_seconds(msg.retry_delay_seconds, f"{path}.retry_delay_seconds")
    jitter = None
    if msg.HasField("retry_jitter_factor"):
        jitter = check_finite(msg.retry_jitter_factor, f"{path}.retry_jitter_factor")
        if not 0 <= jitter <= MAX_RETRY_JITTER_FACTOR:
            raise InvalidArgument(
                f"must be between 0 and {MAX_RETRY_JITTER_FACTOR:g}", f"{path}.retry_jitter_factor"
            )
    return TaskRunPolicy(
        max_retries=msg.max_retries,
        retry_delay_seconds=seconds,
        retries=msg.retries if msg.HasField("retries") else None,
        retry_delay=delays,
        retry_jitter_factor=jitter,
        heartbeat_timeout_seconds=_parse_timeout(msg, "heartbeat_timeout_seconds", path),
        execution_timeout_seconds=_parse_timeout(msg, "execution_timeout_seconds", path),
    )


def _parse_timeout(msg: task_run_pb2.TaskRunPolicy, name: str, path: str) -> float | None:
    if not msg.HasField(name):  # type: ignore[arg-type]
        return None
    return _parse_seconds(getattr(msg, name), f"{path}.{name}")


def _parse_seconds(value: float, field: str) -> float:
    """A delay or timeout: finite, not negative, at most a year (so that now plus it is a date
    every layer can hold)."""
    seconds = check_finite(value, field)
    if not 0 <= seconds <= MAX_TIMEOUT_SECONDS:
        raise InvalidArgument(
            f"must be between 0 and {MAX_TIMEOUT_SECONDS:,.0f} seconds (366 days)", field
        )
    return seconds


def _check_size(size: int, limit: int, field: str) -> None:
    if size > limit:
        raise InvalidArgument(f"is {size} bytes encoded; the limit is {limit}", field)


def _parse_parameters(msg: task_run_service_pb2.CreateTaskRunRequest) -> dict[str, object] | None:
    if not msg.HasField("parameters"):
        return None
    _check_size(msg.parameters.ByteSize(), MAX_PARAMETERS_BYTES, "parameters")
    parameters: dict[str, object] = check_json(
        struct_to_python(msg.parameters, "parameters"), "parameters"
    )
    return parameters


def _parse_input(msg: task_run_pb2.TaskRunInput, path: str) -> TaskRunInput:
    kind = msg.WhichOneof("input")
    if kind == "task_run":
        return TaskRunInput("task_run", str(parse_id(msg.task_run.id, f"{path}.task_run.id")))
    if kind == "parameter":
        name = check_required_text(msg.parameter.name, f"{path}.parameter.name")
        return TaskRunInput("parameter", name)
    if kind == "constant":
        return TaskRunInput(
            "constant", check_required_text(msg.constant.type, f"{path}.constant.type")
        )
    raise InvalidArgument("must set one of task_run, parameter or constant", path)


def _parse_task_inputs(inputs: Mapping[str, task_run_pb2.TaskRunInputs], path: str) -> TaskInputs:
    size = sum(len(name.encode()) + group.ByteSize() for name, group in inputs.items())
    _check_size(size, MAX_TASK_INPUTS_BYTES, path)
    parsed: TaskInputs = {}
    for name, group in inputs.items():
        item_path = f"{path}[{name[:32]!r}]"
        check_text(name, item_path, max_bytes=MAX_NAME_BYTES)
        parsed[name] = [
            _parse_input(i, f"{item_path}.inputs[{n}]") for n, i in enumerate(group.inputs)
        ]
    return parsed


def _parse_labels(msg: task_run_service_pb2.CreateTaskRunRequest) -> dict[str, object]:
    _check_size(msg.labels.ByteSize(), MAX_LABELS_BYTES, "labels")
    if len(msg.labels.fields) > MAX_LABELS:
        raise InvalidArgument(
            f"has {len(msg.labels.fields)} keys; the limit is {MAX_LABELS}", "labels"
        )
    labels = struct_to_python(msg.labels, "labels") if msg.HasField("labels") else {}
    for key, value in labels.items():
        path = f"labels[{key[:32]!r}]"
        check_text(key, path, max_bytes=MAX_NAME_BYTES)
        if isinstance(value, dict | list) or value is None:
            raise InvalidArgument("values must be strings, numbers or booleans", path)
        if isinstance(value, str):
            check_text(value, path)
    return labels


MAX_BATCH_CREATE = 1000
"""Items per BatchCreateTaskRuns: a thousand runs is one multi-row INSERT."""


MAX_BATCH_SET_STATES = 1000
"""Proposals per BatchSetTaskRunStates: one transaction, a few statements."""


def parse_set_state_request(msg: task_run_service_pb2.SetTaskRunStateRequest) -> StateProposal:
    task_run_id = parse_id(msg.task_run_id, "task_run_id")
    if not msg.HasField("state"):
        raise InvalidArgument("is required", "state")
    return StateProposal(
        task_run_id=task_run_id,
        proposed=parse_state_create(msg.state, "state"),
        force=msg.force,
        lease_id=parse_optional_id(msg.lease_id, "lease_id"),
    )


def parse_batch_set_state_request(
    msg: task_run_service_pb2.BatchSetTaskRunStatesRequest,
) -> list[StateProposal]:
    """Every proposal parsed as SetTaskRunState parses it; an error names its item."""
    return _parse_items(msg.requests, MAX_BATCH_SET_STATES, "proposals", parse_set_state_request)


def _parse_items(
    items: Sequence[Item], most: int, what: str, parse: Callable[[Item], Parsed]
) -> list[Parsed]:
    """A batch's items, each parsed as its single call parses it, an error naming the item as
    `requests[i].field`."""
    if len(items) > most:
        raise InvalidArgument(f"at most {most:,} {what} per call, got {len(items):,}", "requests")
    parsed = []
    for index, item in enumerate(items):
        try:
            parsed.append(parse(item))
        except InvalidArgument as error:
            field = f"requests[{index}].{error.field}" if error.field else f"requests[{index}]"
            raise InvalidArgument(error.message, field) from None
    return parsed


def parse_batch_create_request(
    msg: task_run_service_pb2.BatchCreateTaskRunsRequest,
) -> list[TaskRunCreate]:
    """Every item parsed as CreateTaskRun parses it; an error names its item."""
    return _parse_items(msg.requests, MAX_BATCH_CREATE, "task runs", parse_create_request)


def parse_create_request(msg: task_run_service_pb2.CreateTaskRunRequest) -> TaskRunCreate:
    return TaskRunCreate(
        id=parse_optional_id(msg.id, "id"),
        name=check_text(msg.name, "name", max_bytes=MAX_NAME_BYTES) or None,
        flow_run_id=parse_optional_id(msg.flow_run_id, "flow_run_id"),
        task_key=check_required_text(msg.task_key, "task_key", max_bytes=MAX_KEY_BYTES),
        dynamic_key=check_required_text(msg.dynamic_key, "dynamic_key", max_bytes=MAX_KEY_BYTES),
        cache_key=check_text(msg.cache_key, "cache_key", max_bytes=MAX_KEY_BYTES) or None,
        cache_expiration=parse_optional_timestamp(msg, "cache_expiration", "cache_expiration"),
        task_version=check_text(msg.task_version, "task_version", max_bytes=MAX_NAME_BYTES) or None,
        empirical_policy=_parse_policy(msg.empirical_policy, "empirical_policy"),
        tags=check_tags(msg.tags, "tags"),
        labels=_parse_labels(msg),
        task_inputs=_parse_task_inputs(msg.task_inputs, "task_inputs"),
        state=parse_state_create(msg.state, "state") if msg.HasField("state") else None,
        parameters=_parse_parameters(msg),
    )


_STATUS_TO_PROTO = {
    SetStateStatus.ACCEPT: task_run_service_pb2.SET_STATE_STATUS_ACCEPT,
    SetStateStatus.REJECT: task_run_service_pb2.SET_STATE_STATUS_REJECT,
    SetStateStatus.WAIT: task_run_service_pb2.SET_STATE_STATUS_WAIT,
    SetStateStatus.ABORT: task_run_service_pb2.SET_STATE_STATUS_ABORT,
}


def transition_to_proto(
    decision: Decision, now: datetime
) -> task_run_service_pb2.SetTaskRunStateResponse:
    details = task_run_service_pb2.OrchestrationDetails(reason=decision.reason or "")
    if decision.delay is not None:
        details.delay.CopyFrom(duration_to_proto(decision.delay))
    run = task_run_to_proto(decision.run, now)
    run.ClearField("state")  # the answer's `state` is the run's current state: never twice
    current = decision.current_state
    return task_run_service_pb2.SetTaskRunStateResponse(
        status=_STATUS_TO_PROTO[decision.status],
        state=state_to_proto(current) if current is not None else None,
        details=details,
        task_run=run,
        lease_id=_id(decision.caller_lease) or "",
    )


def delivery_to_proto(
    delivery: Delivery, now: datetime
) -> task_run_service_pb2.SubscribeScheduledTasksResponse:
    return task_run_service_pb2.SubscribeScheduledTasksResponse(
        task_run=task_run_to_proto(delivery.run, now),
        delivery_count=delivery.delivery_count,
        lease_expires=timestamp_to_proto(delivery.expires),
        lease_id=str(delivery.lease_id),
    )


def parse_heartbeat_request(
    msg: task_run_service_pb2.HeartbeatTaskRunsRequest,
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    if len(msg.leases) > MAX_HEARTBEAT_LEASES:
        raise InvalidArgument(
            f"has {len(msg.leases)} entries; the limit is {MAX_HEARTBEAT_LEASES}", "leases"
        )
    return [
        (
            parse_id(lease.task_run_id, f"leases[{i}].task_run_id"),
            parse_id(lease.lease_id, f"leases[{i}].lease_id"),
        )
        for i, lease in enumerate(msg.leases)
    ]


_LEASE_STATUS_TO_PROTO = {
    LeaseStatus.HELD: task_run_service_pb2.LEASE_STATUS_HELD,
    LeaseStatus.CANCELLING: task_run_service_pb2.LEASE_STATUS_CANCELLING,
    LeaseStatus.LOST: task_run_service_pb2.LEASE_STATUS_LOST,
}


def heartbeat_to_proto(heartbeat: Heartbeat) -> task_run_service_pb2.HeartbeatTaskRunsResponse:
    response = task_run_service_pb2.HeartbeatTaskRunsResponse(
        next_heartbeat=duration_to_proto(heartbeat.next_heartbeat)
    )
    for result in heartbeat.results:
        response.results.add(
            task_run_id=str(result.task_run_id),
            status=_LEASE_STATUS_TO_PROTO[result.status],
            state_type=state_type_to_proto(result.state_type),
            lease_expires=time_fields(result.lease_expires),
        )
    return response
