"""Conversions between protobuf well-known types and Python values, validating as they go.

Every parse function takes the request field's path so that an error names it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from taskrun.v1 import filters_pb2, state_pb2
from taskrun_server.domain.errors import InvalidArgument
from taskrun_server.domain.filters import Operator
from taskrun_server.domain.states import StateType

_STATE_TYPE_TO_PROTO: dict[StateType, state_pb2.StateType.ValueType] = {
    t: state_pb2.StateType.Value(f"STATE_TYPE_{t.value}") for t in StateType
}
_STATE_TYPE_FROM_PROTO = {v: k for k, v in _STATE_TYPE_TO_PROTO.items()}


def has(message: Message, field: str) -> bool:
    """Presence of a message-typed or `optional` field."""
    return message.HasField(field)


# -- time -------------------------------------------------------------------------------------


def timestamp_to_proto(value: datetime | None) -> Timestamp | None:
    """A Timestamp, from the same arithmetic as `time_fields` (a third of FromDatetime's cost)."""
    fields = time_fields(value)
    return None if fields is None else Timestamp(**fields)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

TimeFields = dict[str, int]
"""A Timestamp or Duration as its constructor's keyword arguments: {"seconds", "nanos"}."""


def time_fields(value: datetime | None) -> TimeFields | None:
    """A Timestamp's fields, computed by integer arithmetic: the hot encoders build messages
    from dicts, and Timestamp.FromDatetime (pure Python) was a tenth of a list read's CPU."""
    if value is None:
        return None
    if value.tzinfo is None:  # naive means UTC, as Timestamp.FromDatetime reads it
        value = value.replace(tzinfo=UTC)
    since = value - _EPOCH
    return {"seconds": since.days * 86_400 + since.seconds, "nanos": since.microseconds * 1000}


def duration_fields(value: timedelta) -> TimeFields:
    """A Duration's fields; seconds and nanos share the sign of the whole, as Duration wants."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    seconds = abs(micros) // 1_000_000 * (1 if micros >= 0 else -1)
    return {"seconds": seconds, "nanos": (micros - seconds * 1_000_000) * 1000}


def parse_timestamp(value: Timestamp, field: str) -> datetime:
    if not 0 <= value.nanos < 1_000_000_000:
        raise InvalidArgument("nanos must be in [0, 1e9)", field)
    try:
        parsed = value.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        raise InvalidArgument("is not a valid timestamp", field) from None
    if not 1 <= parsed.year <= 9999:
        raise InvalidArgument("is out of range", field)
    return parsed


def parse_optional_timestamp(message: Message, field: str, path: str) -> datetime | None:
    if not message.HasField(field):
        return None
    value: Timestamp = getattr(message, field)
    return parse_timestamp(value, path)


def duration_to_proto(value: timedelta) -> Duration:
    """A Duration, from the same arithmetic as `duration_fields`."""
    return Duration(**duration_fields(value))


def parse_duration(value: Duration, field: str) -> timedelta:
    if abs(value.nanos) >= 1_000_000_000 or (value.seconds * value.nanos < 0):
        raise InvalidArgument("seconds and nanos must have the same sign", field)
    try:
        return value.ToTimedelta()
    except (ValueError, OverflowError):
        raise InvalidArgument("is out of range", field) from None


# -- JSON -------------------------------------------------------------------------------------


def value_to_python(value: struct_pb2.Value, field: str) -> Any:
    """A google.protobuf.Value as plain JSON-compatible Python.

    Walked by hand rather than through json_format, which raises a bare ValueError for NaN and
    infinities: JSON (and so JSONB) has no spelling for them, so they are the caller's mistake
    and must come back as INVALID_ARGUMENT naming the field.
    """
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return check_finite(value.number_value, field)
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_to_python(value.struct_value, field)
    if kind == "list_value":
        items = value.list_value.values
        return [value_to_python(item, f"{field}[{i}]") for i, item in enumerate(items)]
    return None


def python_to_value(data: Any) -> struct_pb2.Value:
    value = struct_pb2.Value()
    json_format.ParseDict(data, value)
    return value


def struct_to_python(struct: struct_pb2.Struct, field: str) -> dict[str, Any]:
    fields = struct.fields.items()
    return {key: value_to_python(item, f"{field}.{key[:32]}") for key, item in fields}


def python_to_struct(data: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(data)
    return struct


def check_finite(value: float, field: str) -> float:
    if not math.isfinite(value):
        raise InvalidArgument("must be a finite number", field)
    return value


# -- enums ------------------------------------------------------------------------------------


def state_type_to_proto(value: StateType | None) -> state_pb2.StateType.ValueType:
    return _STATE_TYPE_TO_PROTO[value] if value is not None else state_pb2.STATE_TYPE_UNSPECIFIED


def parse_state_type(value: int, field: str) -> StateType:
    try:
        return _STATE_TYPE_FROM_PROTO[value]  # type: ignore[index]
    except KeyError:
        if value == state_pb2.STATE_TYPE_UNSPECIFIED:
            raise InvalidArgument("is required", field) from None
        raise InvalidArgument(f"{value} is not a known state type", field) from None


def parse_operator(value: int, field: str) -> Operator:
    if value in (filters_pb2.OPERATOR_UNSPECIFIED, filters_pb2.OPERATOR_AND):
        return Operator.AND
    if value == filters_pb2.OPERATOR_OR:
        return Operator.OR
    raise InvalidArgument(f"{value} is not a known operator", field)
