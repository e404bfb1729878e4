"""Enums by name: "RUNNING" (any case) wherever a state type is taken, "ID_DESC" for a sort.

The generated enum values stay accepted as they are; a name that is not one raises ValueError
listing the names that are.
"""

from __future__ import annotations

from typing import TypeAlias

from taskrun.v1 import filters_pb2, state_pb2, task_run_service_pb2

StateTypeLike: TypeAlias = str | state_pb2.StateType.ValueType
SortLike: TypeAlias = str | filters_pb2.TaskRunSort.ValueType

STATE_TYPES = tuple(
    v.name.removeprefix("STATE_TYPE_") for v in state_pb2.StateType.DESCRIPTOR.values[1:]
)
"""SCHEDULED, PENDING, RUNNING, ... in the contract's order."""
SORTS = tuple(
    v.name.removeprefix("TASK_RUN_SORT_") for v in filters_pb2.TaskRunSort.DESCRIPTOR.values[1:]
)
TERMINAL_STATE_TYPES = frozenset(
    state_pb2.StateType.Value(f"STATE_TYPE_{name}")
    for name in ("COMPLETED", "FAILED", "CANCELLED", "CRASHED")
)


def state_type(value: StateTypeLike) -> state_pb2.StateType.ValueType:
    """A state type from its name ("running", "STATE_TYPE_RUNNING") or its value."""
    if isinstance(value, int):
        return value
    return state_pb2.StateType.Value(_full_name(value, "STATE_TYPE_", STATE_TYPES, "state type"))


def state_type_name(value: state_pb2.StateType.ValueType) -> str:
    """ "RUNNING" for STATE_TYPE_RUNNING; "" for unspecified."""
    if value == state_pb2.STATE_TYPE_UNSPECIFIED:
        return ""
    return state_pb2.StateType.Name(value).removeprefix("STATE_TYPE_")


def sort(value: SortLike) -> filters_pb2.TaskRunSort.ValueType:
    """A sort from its name ("expected_start_time_desc") or its value."""
    if isinstance(value, int):
        return value
    return filters_pb2.TaskRunSort.Value(_full_name(value, "TASK_RUN_SORT_", SORTS, "sort"))


def _full_name(value: str, prefix: str, names: tuple[str, ...], what: str) -> str:
    """The generated enum name for a name given in any case, with or without its prefix."""
    name = value.upper().removeprefix(prefix)
    if name not in names:
        raise ValueError(f"{value!r} is not a {what}; one of {', '.join(names)}")
    return f"{prefix}{name}"


def status_name(value: task_run_service_pb2.SetStateStatus.ValueType) -> str:
    """ "ACCEPT" for SET_STATE_STATUS_ACCEPT."""
    return task_run_service_pb2.SetStateStatus.Name(value).removeprefix("SET_STATE_STATUS_")


def is_terminal(value: state_pb2.StateType.ValueType) -> bool:
    return value in TERMINAL_STATE_TYPES
