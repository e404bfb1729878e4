"""HeartbeatTaskRuns: renew the leases a worker holds, and tell it what became of its runs."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from taskrun_server.database.engine import autocommit_view
from taskrun_server.domain.states import StateType
from taskrun_server.orchestration.leases import LeaseSettings, next_heartbeat
from taskrun_server.repository import leases as leases_repo


class LeaseStatus(enum.Enum):
    HELD = "held"
    """Renewed: carry on."""
    CANCELLING = "cancelling"
    """Renewed, but the run is being cancelled: stop it and propose CANCELLED."""
    LOST = "lost"
    """Not the worker's any more: stop it and propose nothing."""


@dataclass(slots=True, frozen=True)
class HeartbeatResult:
    task_run_id: uuid.UUID
    status: LeaseStatus
    state_type: StateType | None
    lease_expires: datetime | None


@dataclass(slots=True, frozen=True)
class Heartbeat:
    results: list[HeartbeatResult]
    next_heartbeat: timedelta


class LeaseService:
    def __init__(
        self, engine: AsyncEngine, *, delivery_lease: timedelta, settings: LeaseSettings
    ) -> None:
        self._autocommit = autocommit_view(engine)
        self._delivery_lease = delivery_lease
        self._settings = settings

    async def heartbeat(self, leases: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> Heartbeat:
        """Renew every lease still held, in one statement (atomic on its own)."""
        if not leases:
            return Heartbeat([], next_heartbeat([]))
        async with self._autocommit.connect() as conn:
            renewals = await leases_repo.renew(
                conn,
                leases,
                delivery_lease=self._delivery_lease,
                default_heartbeat=self._settings.heartbeat_timeout,
            )
        results = [
            HeartbeatResult(
                task_run_id=r.task_run_id,
                status=_status(r.held, r.state_type),
                state_type=r.state_type,
                lease_expires=r.expires_at if r.held else None,
            )
            for r in renewals
        ]
        remaining = [r.remaining for r in renewals if r.held and r.remaining is not None]
        return Heartbeat(results, next_heartbeat(remaining))


def _status(held: bool, state_type: StateType | None) -> LeaseStatus:
    if not held:
        return LeaseStatus.LOST
    if state_type is StateType.CANCELLING:
        return LeaseStatus.CANCELLING
    return LeaseStatus.HELD
