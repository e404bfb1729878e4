"""Task-run history: runs bucketed by expected start time and summarised per state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from taskrun_server.domain.states import StateType

MAX_HISTORY_BUCKETS = 500
"""A bound on the work one history call may ask for."""


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
