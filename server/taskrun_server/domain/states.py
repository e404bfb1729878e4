"""States: the StateType machine's vocabulary and the State records a task run moves through."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any


class StateType(enum.StrEnum):
    """The kind of a state. Names are free text; types drive orchestration."""

    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"

    @property
    def default_name(self) -> str:
        """The name a state of this type gets when the client gives none."""
        return self.value.title()

    @property
    def is_terminal(self) -> bool:
        """Whether a run in this state has finished (for now: retries can reopen it)."""
        return self in TERMINAL_TYPES


TERMINAL_TYPES = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
)


@dataclass(slots=True, kw_only=True)
class StateDetails:
    """Facts orchestration attaches to a state. None means "not set"."""

    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None
    child_flow_run_id: uuid.UUID | None = None
    scheduled_time: datetime | None = None
    cache_key: str | None = None
    cache_expiration: datetime | None = None
    untrackable_result: bool = False
    pause_timeout: datetime | None = None
    pause_reschedule: bool = False
    pause_key: str | None = None
    refresh_cache: bool | None = None
    retriable: bool | None = None
    transition_id: uuid.UUID | None = None
    task_parameters_id: uuid.UUID | None = None
    deferred: bool | None = None
    traceparent: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict that omits unset fields, for the state_details column."""
        out: dict[str, Any] = {}
        for name in _DETAIL_NAMES:  # not dataclasses.asdict: it deep-copies, and this is hot
            value = getattr(self, name)
            if value is None or (value is False and name in _PLAIN_FLAGS):
                continue  # an optional flag set to false is kept: unset and false differ
            if isinstance(value, uuid.UUID):
                out[name] = str(value)
            elif isinstance(value, datetime):
                out[name] = value.isoformat()
            else:
                out[name] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> StateDetails:
        """The inverse of to_json; unknown keys (from newer servers) are ignored."""
        details = cls()
        if not data:
            return details
        for name, raw in data.items():  # the few keys stored, not every field: this is hot
            if name in _DETAIL_NAME_SET:
                setattr(details, name, _decode_detail(name, raw))
        return details


_DETAIL_NAMES = tuple(f.name for f in fields(StateDetails))
_DETAIL_NAME_SET = frozenset(_DETAIL_NAMES)
_PLAIN_FLAGS = frozenset(f.name for f in fields(StateDetails) if f.default is False)
"""Flags that are false unless set: false is their absence."""
_UUID_DETAILS = frozenset(
    {"flow_run_id", "task_run_id", "child_flow_run_id", "transition_id", "task_parameters_id"}
)
_TIME_DETAILS = frozenset({"scheduled_time", "cache_expiration", "pause_timeout"})


def _decode_detail(name: str, raw: Any) -> Any:
    if raw is None:
        return None
    if name in _UUID_DETAILS:
        return uuid.UUID(raw)
    if name in _TIME_DETAILS:
        return datetime.fromisoformat(raw)
    return raw


@dataclass(slots=True, kw_only=True)
class StateCreate:
    """A state a client proposes; the server gives it an id and a timestamp when it is stored."""

    type: StateType
    name: str | None = None
    message: str | None = None
    state_details: StateDetails = field(default_factory=StateDetails)
    data: Any = None


@dataclass(slots=True, kw_only=True)
class State:
    """A stored state of a task run."""

    id: uuid.UUID
    task_run_id: uuid.UUID
    type: StateType
    name: str
    timestamp: datetime
    message: str | None = None
    state_details: StateDetails = field(default_factory=StateDetails)
    data: Any = None
