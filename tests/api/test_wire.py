"""Timestamps and durations on the wire: the encoders' own arithmetic agrees with protobuf's
FromDatetime and FromTimedelta."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from taskrun_server.api.wire import duration_to_proto, timestamp_to_proto


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 1, 18, 30, 5, 123456, tzinfo=UTC),
        datetime(2026, 12, 1, 18, 30, 5, 999999, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2026, 12, 1, 18, 30, 5, 1),  # naive: read as UTC, as FromDatetime reads it
        datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),  # before the epoch
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_a_timestamp_is_what_protobuf_makes_of_the_datetime(value: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(value)
    assert timestamp_to_proto(value) == expected


def test_no_datetime_is_no_timestamp() -> None:
    assert timestamp_to_proto(None) is None


@pytest.mark.parametrize(
    "value",
    [
        timedelta(seconds=90, microseconds=250),
        timedelta(0),
        timedelta(microseconds=-1),
        timedelta(seconds=-1, microseconds=300),  # -0.9997 s: both parts negative
        timedelta(days=-2, hours=5),
        timedelta(days=10_000, microseconds=999_999),
    ],
)
def test_a_duration_is_what_protobuf_makes_of_the_timedelta(value: timedelta) -> None:
    expected = Duration()
    expected.FromTimedelta(value)
    assert duration_to_proto(value) == expected
