"""The supporting resources task-run filters refer to: flows, deployments, flow runs and logs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from taskrun_server.domain.states import StateType


@dataclass(slots=True, kw_only=True)
class Flow:
    id: uuid.UUID
    created: datetime
    updated: datetime
    name: str
    tags: list[str] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class Deployment:
    id: uuid.UUID
    created: datetime
    updated: datetime
    name: str
    flow_id: uuid.UUID
    tags: list[str] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class FlowRun:
    id: uuid.UUID
    created: datetime
    updated: datetime
    name: str
    flow_id: uuid.UUID
    deployment_id: uuid.UUID | None = None
    parent_task_run_id: uuid.UUID | None = None
    tags: list[str] = field(default_factory=list)
    state_type: StateType = StateType.PENDING
    state_name: str = "Pending"
    state_timestamp: datetime | None = None
    run_count: int = 0


@dataclass(slots=True, kw_only=True)
class LogCreate:
    name: str
    level: int
    message: str
    timestamp: datetime
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None


@dataclass(slots=True, kw_only=True)
class Log:
    id: uuid.UUID
    created: datetime
    name: str
    level: int
    message: str
    timestamp: datetime
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None
