"""Hypothesis strategies that build any request message of the contract from its descriptor.

Values lean towards trouble: empty and oversized strings, NUL characters, ids that are UUIDs
of rows that exist, unknown enum numbers, out-of-range timestamps, deep JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor, message_factory
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import NULL_VALUE, Struct, Value
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import strategies as st

FD = descriptor.FieldDescriptor
MAX_DEPTH = 4

_json: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.floats() | st.text(max_size=20),  # NaN and infinities too
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)

# The calendar's edges, in Unix seconds: 0001-01-01 and 9999-12-31T23:59:59, where sums and
# bucket ends overflow; and the longest protobuf Duration.
FIRST_SECOND, LAST_SECOND, LONGEST = -62_135_596_800, 253_402_300_799, 315_576_000_000
_timestamps = st.builds(
    lambda seconds, nanos: Timestamp(seconds=seconds, nanos=nanos),
    st.one_of(
        st.integers(1_600_000_000, 1_900_000_000),
        st.sampled_from([FIRST_SECOND, FIRST_SECOND + 1, LAST_SECOND - 1, LAST_SECOND]),
        st.integers(-(2**62), 2**62),
    ),
    st.one_of(st.just(0), st.just(999_999_999), st.integers(-(2**31), 2**31 - 1)),
)
_durations = st.builds(
    lambda seconds, nanos: Duration(seconds=seconds, nanos=nanos),
    st.one_of(
        st.integers(0, 86_400),
        st.sampled_from([1, 31_622_400, 9000 * 365 * 86_400, LONGEST]),
        st.integers(-(2**62), 2**62),
    ),
    st.one_of(st.just(0), st.integers(-(2**31), 2**31 - 1)),
)
# Finite but extreme: delays and factors that overflow dates when added to now.
_extreme_floats = st.sampled_from([1e12, 3e11, 1e300, -1e300, 1.7976931348623157e308, 5e-324])


def _struct(value: dict[str, Any]) -> Struct:
    out = Struct()
    out.update(value)
    return out


def _value(value: Any) -> Value:
    out = Value()
    if isinstance(value, dict):
        out.struct_value.update(value)
    elif isinstance(value, list):
        out.list_value.extend(value)
    elif value is None:
        out.null_value = NULL_VALUE
    elif isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, float):
        out.number_value = value
    else:
        out.string_value = str(value)
    return out


def strings(known_ids: Sequence[str]) -> st.SearchStrategy[str]:
    troublesome = st.sampled_from(
        ["", "\x00", "a" * 3000, "a" * 200_000, "ünï©ødé", " ", "%", "_", "'"]
    )
    ids = st.sampled_from(list(known_ids)) if known_ids else st.nothing()
    return st.one_of(ids, st.uuids().map(str), troublesome, st.text(max_size=40))


def _scalar(field: descriptor.FieldDescriptor, ids: Sequence[str]) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FD.TYPE_STRING:
        return strings(ids)
    if kind == FD.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == FD.TYPE_BOOL:
        return st.booleans()
    if kind in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32) | _extreme_floats
    if kind == FD.TYPE_ENUM:
        return st.integers(-3, 40)  # unknown numbers included: proto3 enums are open
    if kind in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32):
        return st.one_of(st.integers(-5, 300), st.integers(-(2**31), 2**31 - 1))
    if kind in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if kind in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    return st.one_of(st.integers(-5, 300), st.integers(-(2**63), 2**63 - 1))


def messages(
    desc: descriptor.Descriptor, ids: Sequence[str], depth: int = 0
) -> st.SearchStrategy[Message]:
    """Any message of this type, every field optionally set."""
    if desc.full_name == "google.protobuf.Timestamp":
        return _timestamps
    if desc.full_name == "google.protobuf.Duration":
        return _durations
    if desc.full_name == "google.protobuf.Struct":
        return st.dictionaries(st.text(max_size=10), _json, max_size=4).map(_struct)
    if desc.full_name == "google.protobuf.Value":
        return _json.map(_value)
    cls = message_factory.GetMessageClass(desc)
    fields = {
        field.name: st.none() | _field(field, ids, depth)
        for field in desc.fields
        if field.type != FD.TYPE_MESSAGE or depth < MAX_DEPTH
    }
    return st.fixed_dictionaries(fields).map(lambda values: _build(cls, values))


def _field(
    field: descriptor.FieldDescriptor, ids: Sequence[str], depth: int
) -> st.SearchStrategy[Any]:
    if field.type == FD.TYPE_MESSAGE:
        nested = field.message_type
        assert nested is not None
        if nested.GetOptions().map_entry:
            value_field = nested.fields_by_name["value"]
            return st.dictionaries(st.text(max_size=10), _field(value_field, ids, depth + 1))
        single = messages(nested, ids, depth + 1)
    else:
        single = _scalar(field, ids)
    if field.is_repeated:
        return st.lists(single, max_size=4)
    return single


def _is_map(field: Any) -> bool:
    return field.message_type is not None and bool(field.message_type.GetOptions().map_entry)


def _build(cls: type[Message], values: dict[str, Any]) -> Message:
    out = cls()
    for name, value in values.items():
        if value is None:
            continue
        field = out.DESCRIPTOR.fields_by_name[name]
        target = getattr(out, name)
        if field.type == FD.TYPE_MESSAGE and _is_map(field):
            for key, item in value.items():
                if isinstance(item, Message):
                    target[key].CopyFrom(item)
                else:
                    target[key] = item
        elif field.is_repeated:
            if field.type == FD.TYPE_MESSAGE:
                for item in value:
                    target.add().CopyFrom(item)
            else:
                target.extend(value)
        elif field.type == FD.TYPE_MESSAGE:
            target.CopyFrom(value)
        else:
            setattr(out, name, value)
    return out
