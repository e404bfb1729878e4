"""Tag concurrency limits: at most N task runs carrying a tag may be RUNNING at once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(slots=True, kw_only=True)
class ConcurrencyLimit:
    id: uuid.UUID
    created: datetime
    updated: datetime
    tag: str
    concurrency_limit: int
    active_slots: list[uuid.UUID] = field(default_factory=list)
