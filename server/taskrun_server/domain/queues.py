"""What operators ask of the queue: what waits for each task key, and who holds what."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(slots=True, frozen=True)
class TaskKeyQueue:
    """Background runs of one task key: waiting to be delivered, delivered, running."""

    task_key: str
    queued: int
    """SCHEDULED with no live lease (due or not)."""
    leased: int
    """SCHEDULED, delivered, not yet settled."""
    running: int
    oldest_due: datetime | None
    """The earliest scheduled time among queued runs already due: how far behind the queue is."""
    next_due: datetime | None
    """The earliest scheduled time among queued runs not yet due."""
    started_recently: int
    """Runs of the key that started in the last `RECENT` (the drain rate)."""


@dataclass(slots=True, frozen=True)
class LeaseHolder:
    """A subscriber (a worker's stream) holding leases, on any replica."""

    owner: str
    held: int
    task_keys: tuple[str, ...]
    last_heartbeat: datetime | None


@dataclass(slots=True, frozen=True)
class Subscriber:
    """A SubscribeScheduledTasks stream open on this server process."""

    owner: str
    task_keys: tuple[str, ...]
    prefetch: int
    connected_at: datetime
    has_room: bool


@dataclass(slots=True, frozen=True)
class QueueOverview:
    keys: list[TaskKeyQueue] = field(default_factory=list)
    holders: list[LeaseHolder] = field(default_factory=list)
    subscribers: list[Subscriber] = field(default_factory=list)
