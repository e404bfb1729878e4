"""Identifiers: time-ordered UUIDv7 and strict parsing."""

from __future__ import annotations

import time
import uuid

import pytest

from taskrun_server.domain.errors import InvalidArgument
from taskrun_server.domain.identifiers import new_id, parse_id, parse_optional_id


def test_new_ids_are_version_7_with_the_rfc_variant() -> None:
    value = new_id()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_new_ids_sort_by_creation_time() -> None:
    earlier = new_id()
    time.sleep(0.002)
    later = new_id()
    assert earlier < later


def test_new_ids_are_unique() -> None:
    assert len({new_id() for _ in range(10_000)}) == 10_000


def test_parse_names_the_field_on_garbage() -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_id("nope", "task_run_id")
    assert caught.value.field == "task_run_id"


def test_empty_is_required_or_absent() -> None:
    with pytest.raises(InvalidArgument, match="required"):
        parse_id("", "id")
    assert parse_optional_id("", "id") is None


def test_ids_made_in_one_millisecond_keep_their_order() -> None:
    ids = [new_id() for _ in range(5_000)]
    assert ids == sorted(ids)
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
