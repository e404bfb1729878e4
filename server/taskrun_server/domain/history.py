"""Task-run history: runs bucketed by expected start time and summarised per state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from taskrun_server.domain.states import StateType

MAX_HISTORY_BUCKETS = 500
"""A bound on the work one history call may ask for."""
LAST_INSTANT = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
"""The last moment a timestamp can hold here (Python, protobuf): no bucket may end later."""
MAX_SUMMED_SECONDS = 315_576_000_000
"""The longest a protobuf Duration can be (10,000 years): sums beyond it are clamped to it."""


def clamped_sum(seconds: float | None) -> timedelta:
    """A summed run time or lateness, as a duration every layer can hold."""
    if seconds is None:
        return timedelta(0)
    return timedelta(seconds=max(min(seconds, MAX_SUMMED_SECONDS), 0))


@dataclass(slots=True, kw_only=True)
class HistoryState:
    state_type: StateType
    state_name: str
    count_runs: int
    sum_estimated_run_time: timedelta
    sum_estimated_lateness: timedelta


@dataclass(slots=True, kw_only=True)
class HistoryInterval:
    interval_start: datetime
    interval_end: datetime
    states: list[HistoryState] = field(default_factory=list)
