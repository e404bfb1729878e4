"""Bounds on what one request may carry, and the checks that enforce them.

Some bounds are Postgres's own: text cannot hold NUL bytes, and a B-tree index entry must fit in
about 2.7 kB, so indexed strings are limited in bytes. The rest keep one request from costing
the server more than a request should.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskrun_server.domain.errors import InvalidArgument

MAX_KEY_BYTES = 1024
"""task_key and dynamic_key: both sit in the idempotency index."""
MAX_NAME_BYTES = 2048
"""Names sit in the name index."""
MAX_TEXT_BYTES = 1_000_000
"""Free text such as state messages and log lines."""
MAX_TAGS = 100
MAX_TAG_BYTES = 512
MAX_FILTER_VALUES = 1_000
"""Entries in one filter list (ids, names, tags, states)."""
MAX_JSON_DEPTH = 32
MAX_LOGS_PER_CALL = 1_000
MAX_PARAMETERS_BYTES = 512 * 1024
"""A run's parameters, as encoded on the wire: stored once, sent with every delivery."""
MAX_STATE_DATA_BYTES = 1024 * 1024
"""A state's data, encoded. With the other per-field limits, any one run or state answer stays
well under the 4 MiB a gRPC client accepts by default."""
MAX_LABELS_BYTES = 64 * 1024
MAX_TASK_INPUTS_BYTES = 256 * 1024
MAX_REQUEST_BYTES = 4 * 1024 * 1024
"""The largest request the server reads: nothing it accepts needs more."""
MAX_TIMEOUT_SECONDS = 366 * 24 * 3600.0
"""Heartbeat and execution timeouts, and retry delays: a year, so that deadlines stay
ordinary dates."""
MAX_RETRY_JITTER_FACTOR = 100.0
"""A delay jittered by this stays within about a century."""
MAX_LABELS = 256
"""Keys in a run's labels: decoding each costs the event loop, so their number is bounded."""
MAX_HEARTBEAT_LEASES = 1_000
"""Leases renewed by one HeartbeatTaskRuns call."""


def check_text(value: str, field: str, *, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """Reject NUL characters and oversize strings; return the value unchanged."""
    if "\x00" in value:
        raise InvalidArgument("must not contain NUL characters", field)
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise InvalidArgument(f"is {size} bytes long; the limit is {max_bytes}", field)
    return value


def check_required_text(value: str, field: str, *, max_bytes: int = MAX_TEXT_BYTES) -> str:
    if not value:
        raise InvalidArgument("is required", field)
    return check_text(value, field, max_bytes=max_bytes)


def check_tags(tags: Sequence[str], field: str) -> list[str]:
    """Tags: bounded in number and size; duplicates removed, order kept."""
    if len(tags) > MAX_TAGS:
        raise InvalidArgument(f"has {len(tags)} tags; the limit is {MAX_TAGS}", field)
    for i, tag in enumerate(tags):
        check_required_text(tag, f"{field}[{i}]", max_bytes=MAX_TAG_BYTES)
    return list(dict.fromkeys(tags))


def check_list_length(values: Sequence[Any], field: str) -> None:
    if len(values) > MAX_FILTER_VALUES:
        raise InvalidArgument(f"has {len(values)} entries; the limit is {MAX_FILTER_VALUES}", field)


def check_json(value: Any, field: str, depth: int = 0) -> Any:
    """Free-form JSON must be storable as JSONB: no NUL characters, bounded nesting. (Finite
    numbers are checked where protobuf values become Python: `api.wire.value_to_python`.)"""
    if depth > MAX_JSON_DEPTH:
        raise InvalidArgument(f"nests deeper than {MAX_JSON_DEPTH} levels", field)
    if isinstance(value, str):
        check_text(value, field)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, f"{field}.{key[:32]}")
            check_json(item, f"{field}.{key[:32]}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_json(item, f"{field}[{i}]", depth + 1)
    return value
